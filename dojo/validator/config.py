"""The validator's settings: every flag of ``main_validator.py``, resolved by
:mod:`template.config` (flag > environment variable > ``.env`` > default)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from commons.synthetic_api import Mix
from dojo.validator.neuron_settings import ValidatorNeuronSettings
from template.config import AxonSettings, NeuronConfig, Section


class SyntheticSettings(Section):
    mix: Mix | None = Field(
        None,
        description="content kinds of synthetic tasks and their shares, e.g. code:1,text:1,dialogue:1,image:1; "
        "default: the synthetic API's own mix, code alone in-process (validator)",
    )


class WandbSettings(Section):
    off: bool = Field(False, description="do not log scoring rounds to Weights & Biases")
    project: str = Field("dojo", min_length=1, description="Weights & Biases project")
    entity: str | None = Field(None, description="Weights & Biases entity (team or user)")


class ExportSettings(Section):
    interval: float = Field(
        0.0,
        ge=0,
        description="seconds between exports of the task database as a dataset (validator); 0 = off",
    )
    dir: str | None = Field(
        None, description="where dataset exports go (validator); default: <data dir>/export"
    )
    keep: int = Field(
        3, ge=1, le=1000, description="dated dataset exports kept; older ones are removed (validator)"
    )


class OrganicSettings(Section):
    """The organic API (validator): outside callers submit their own tasks (docs/organic.md)."""

    enabled: bool = Field(False, description="serve the organic API (validator)")
    host: str = Field("127.0.0.1", description="address the organic API binds (validator)")
    port: int = Field(9604, ge=1, le=65535, description="port of the organic API (validator)")
    caller_netuids: list[int] = Field(
        default_factory=list,
        description="subnets whose validators may call with a hotkey signature (validator); none: API keys only",
    )
    min_stake: float = Field(
        1000.0,
        ge=0,
        description="least stake of a hotkey caller on one of --organic.caller_netuids (validator)",
    )
    hotkey_rate: int = Field(600, ge=1, description="requests per minute of each hotkey caller (validator)")
    hotkey_daily_quota: int = Field(
        10_000, ge=1, description="tasks per UTC day of each hotkey caller (validator)"
    )
    min_miner_score: float = Field(
        0.1,
        ge=0,
        le=1,
        description="organic tasks go only to miners whose moving score is above this (validator)",
    )
    max_share: float = Field(
        0.5, gt=0, le=1, description="largest share of the tasks sent that may be organic (validator)"
    )
    tasks_per_round: int = Field(
        1, ge=1, le=256, description="tasks sent per task round, organic and synthetic together (validator)"
    )
    queue_timeout: float = Field(
        86400.0, gt=0, description="seconds an organic task may wait for miners before it expires (validator)"
    )
    allow_private_callbacks: bool = Field(
        False,
        description="accept callback URLs on loopback and private networks (validator; local networks only)",
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest organic request body (validator)")
    webhook_retry_base: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds before a failed webhook's first retry; doubling after (validator)",
    )


class ValidatorConfig(NeuronConfig):
    axon: AxonSettings = AxonSettings(port=9603)
    neuron: ValidatorNeuronSettings = ValidatorNeuronSettings(type="validator")
    scoring_method: Literal["dojo"] = Field("dojo", description="dojo")
    synthetic_api_url: str | None = Field(
        None,
        description="synthetic API URL; tasks are generated in-process when unset",
        json_schema_extra={"env": "SYNTHETIC_API_URL"},
    )
    synthetic_api_token: SecretStr | None = Field(
        None,
        description="bearer token the synthetic API requires (its own SYNTHETIC_API_TOKEN)",
        json_schema_extra={"env": "SYNTHETIC_API_TOKEN"},
    )
    wandb_api_key: SecretStr | None = Field(
        None, description="Weights & Biases key", json_schema_extra={"env": "WANDB_API_KEY"}
    )
    synthetic: SyntheticSettings = SyntheticSettings()
    wandb: WandbSettings = WandbSettings()
    export: ExportSettings = ExportSettings()
    organic: OrganicSettings = OrganicSettings()
