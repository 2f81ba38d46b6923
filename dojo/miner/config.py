"""The miner's settings: every flag of ``main_miner.py``, resolved by :mod:`template.config`
(flag > environment variable > ``.env`` > default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from dojo.validator.neuron_settings import ValidatorNeuronSettings
from template.config import NeuronConfig, Section


# The miner has always accepted the validator's --neuron.* flags (and their variables), which
# it does not use, so that a command line or a .env shared by both neurons keeps working.
class MinerNeuronSettings(ValidatorNeuronSettings):
    # Not DATABASE_URL: a miner often runs its worker platform beside it, whose database
    # that variable names, and the two must never share one.
    database_url: str | None = Field(
        None,
        description="database URL (postgresql://… or sqlite:///…); default: a SQLite file in the data dir",
        json_schema_extra={"env": "MINER_DATABASE_URL"},
    )


class LabelStudioSettings(Section):
    """The miner's Label Studio backend (``--worker_platform label-studio``)."""

    url: str = Field(
        "http://127.0.0.1:8081",
        description="Label Studio server URL",
        json_schema_extra={"env": "LABEL_STUDIO_URL"},
    )
    api_key: SecretStr | None = Field(
        None,
        description="Label Studio API token (Account & Settings, or LABEL_STUDIO_USER_TOKEN at its first start)",
        json_schema_extra={"env": "LABEL_STUDIO_API_KEY"},
    )
    project_prefix: str = Field(
        "Dojo",
        min_length=1,
        max_length=40,
        description="title prefix of the miner's projects, one per content kind",
    )
    poll_interval: float = Field(
        15.0, gt=0, le=3600, description="seconds between reads of open tasks' annotations"
    )
    webhook_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="port for Label Studio's ANNOTATION_CREATED webhook (off when unset)",
    )
    webhook_host: str = Field("127.0.0.1", description="address the webhook listener binds")
    webhook_url: str | None = Field(
        None, description="the webhook listener's URL as Label Studio reaches it; default http://HOST:PORT"
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="secret Label Studio sends in the webhook's header; required with a webhook port",
        json_schema_extra={"env": "LABEL_STUDIO_WEBHOOK_SECRET"},
    )

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> LabelStudioSettings:
        if self.webhook_port is not None and not (
            self.webhook_secret and self.webhook_secret.get_secret_value()
        ):
            raise ValueError(
                "--label_studio.webhook_port needs --label_studio.webhook_secret (env LABEL_STUDIO_WEBHOOK_SECRET): "
                "Label Studio does not sign its webhooks, so the listener only trusts that header"
            )
        return self


class MinerConfig(NeuronConfig):
    neuron: MinerNeuronSettings = MinerNeuronSettings()
    scoring_method: Literal["dojo"] = Field("dojo", description="dojo")
    worker_platform: Literal["dojo", "label-studio"] = Field(
        "dojo",
        description="where tasks are worked: dojo (the Dojo platform) or label-studio",
        json_schema_extra={"env": "WORKER_PLATFORM"},
    )
    label_studio: LabelStudioSettings = LabelStudioSettings()
    dojo_api_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="worker platform URL",
        json_schema_extra={"env": "DOJO_API_BASE_URL"},
    )
    dojo_api_key: SecretStr | None = Field(
        None, description="API key from `dojo api-key generate`", json_schema_extra={"env": "DOJO_API_KEY"}
    )
    task_max_results: int = Field(
        # At most commons.protocol.MAX_WORKERS_PER_TASK: validators refuse a reply naming more workers.
        3,
        ge=1,
        le=10,
        description="worker results wanted per task",
        json_schema_extra={"env": "TASK_MAX_RESULTS"},
    )

    @model_validator(mode="after")
    def _api_key_is_a_header_value(self) -> MinerConfig:
        # The key travels in an HTTP header: a character outside printable ASCII would make
        # every call to the platform fail. Checked on the whole model so that the error
        # carries no input, and the key never reaches the message or the log.
        key = self.dojo_api_key.get_secret_value() if self.dojo_api_key is not None else ""
        for position, char in enumerate(key, start=1):
            if not ("!" <= char <= "~"):
                what = "a space" if char.isspace() else f"the character U+{ord(char):04X}"
                raise ValueError(
                    f"--dojo_api_key (env DOJO_API_KEY): accepts printable ASCII without spaces, as "
                    f"`dojo api-key generate` prints it (dojo_api_...); this key has {what} at position {position}"
                )
        return self
