"""The synthetic service's settings, resolved once from flags, environment and ``.env``.

``dojo synthetic serve`` resolves them with :mod:`template.config`, as the neurons resolve
theirs: flag > environment variable > ``.env`` > default; a bad value exits 2 naming the flag
and the variable. Environment variables (each declared on its field):
``SYNTHETIC_BACKEND``, ``SYNTHETIC_HOST``, ``SYNTHETIC_PORT``, ``SYNTHETIC_DB``,
``SYNTHETIC_API_TOKEN``, ``SYNTHETIC_API_OPEN``, ``SYNTHETIC_ALLOWED_HOSTS``, ``SYNTHETIC_QUEUE_SIZE``, ``SYNTHETIC_SEED``,
``SYNTHETIC_COMPLETIONS``, ``SYNTHETIC_MIX``, ``SYNTHETIC_SIMILARITY``,
``SYNTHETIC_SEMANTIC_SIMILARITY``, ``SYNTHETIC_TASK_SECONDS``,
``SYNTHETIC_TASK_TOKENS``, ``SYNTHETIC_LLM_PROVIDER``, ``SYNTHETIC_LLM_BASE_URL``,
``SYNTHETIC_LLM_MODELS`` (comma-separated; the flag ``--llm-model`` once per model),
``SYNTHETIC_LLM_IMAGE_MODEL``, ``SYNTHETIC_LLM_VISION_MODEL``, ``SYNTHETIC_LLM_EMBEDDING_MODEL``,
and the llm backend's key: ``SYNTHETIC_LLM_API_KEY``, or the provider's own
``OPENROUTER_API_KEY``, ``TOGETHER_API_KEY`` or ``OPENAI_API_KEY``
(:func:`dojo.synthetic.llm.llm_settings` makes the backend's settings of them).

The service hands out tasks with their ground truth, so it requires a bearer token
(``--token``) unless told explicitly to serve without one (``--no-token``, for a local
network on loopback, which ``dojo localnet`` passes), and only ever on loopback without one.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from commons.synthetic_api import Mix
from template.config import ConfigError, resolve_args

DEFAULT_PORT = 5003
DEFAULT_DB = "~/.dojo/synthetic.sqlite"

# A setting is missing or invalid; the message names the flag and the variable.
SettingsError = ConfigError


def _named(env: str, flag: str | None = None) -> dict[str, Any]:
    """A field's variable (and flag, when not ``--<name>``)."""
    return {"env": env, "flag": flag} if flag else {"env": env}


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["procedural", "llm"] = Field(
        "procedural",
        description="generator: procedural or llm",
        json_schema_extra=_named("SYNTHETIC_BACKEND"),
    )
    host: str = Field(
        "127.0.0.1", description="address to listen on", json_schema_extra=_named("SYNTHETIC_HOST")
    )
    port: int = Field(
        DEFAULT_PORT, ge=0, le=65535, description="port", json_schema_extra=_named("SYNTHETIC_PORT")
    )
    db: str = Field(DEFAULT_DB, description="task database file", json_schema_extra=_named("SYNTHETIC_DB"))
    token: SecretStr | None = Field(
        None,
        description="bearer token clients must send (required unless --no-token)",
        json_schema_extra=_named("SYNTHETIC_API_TOKEN"),
    )
    no_token: bool = Field(
        False,
        description="serve without a token, on loopback only (a local network)",
        json_schema_extra=_named("SYNTHETIC_API_OPEN", "--no-token"),
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the service answers besides loopback ones (the name clients use); "
        "repeat for several, * for any",
        json_schema_extra=_named("SYNTHETIC_ALLOWED_HOSTS", "--allowed-host"),
    )
    queue_size: int = Field(
        32,
        ge=0,
        le=10_000,
        description="tasks kept ready",
        json_schema_extra=_named("SYNTHETIC_QUEUE_SIZE", "--queue-size"),
    )
    seed: str | None = Field(
        None, description="seed, for reproducible tasks", json_schema_extra=_named("SYNTHETIC_SEED")
    )
    completions: int = Field(
        4, ge=2, le=10, description="completions per task", json_schema_extra=_named("SYNTHETIC_COMPLETIONS")
    )
    mix: Mix = Field(
        "code:1",
        description="content kinds and their shares, e.g. code:1,text:1,dialogue:1,image:1",
        json_schema_extra=_named("SYNTHETIC_MIX"),
    )
    similarity: float = Field(
        0.8,
        gt=0,
        le=1,
        description="filter threshold, TF-IDF cosine",
        json_schema_extra=_named("SYNTHETIC_SIMILARITY"),
    )
    semantic_similarity: float = Field(
        0.8,
        gt=0,
        le=1,
        description="filter threshold, embedding cosine (llm backend with an embedding model)",
        json_schema_extra=_named("SYNTHETIC_SEMANTIC_SIMILARITY", "--semantic-similarity"),
    )
    task_seconds: float = Field(
        600.0,
        gt=0,
        description="time limit per task",
        json_schema_extra=_named("SYNTHETIC_TASK_SECONDS", "--task-seconds"),
    )
    task_tokens: int | None = Field(
        None,
        gt=0,
        description="token limit per task (llm)",
        json_schema_extra=_named("SYNTHETIC_TASK_TOKENS", "--task-tokens"),
    )
    llm_provider: str | None = Field(
        None,
        description="openrouter (default), together, openai, vllm, ollama",
        json_schema_extra=_named("SYNTHETIC_LLM_PROVIDER", "--llm-provider"),
    )
    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL",
        json_schema_extra=_named("SYNTHETIC_LLM_BASE_URL", "--llm-base-url"),
    )
    llm_models: list[str] = Field(
        default_factory=list,
        description="model id; repeat for several",
        json_schema_extra=_named("SYNTHETIC_LLM_MODELS", "--llm-model"),
    )
    llm_image_model: str | None = Field(
        None,
        description="images endpoint model (llm; none: images drawn offline)",
        json_schema_extra=_named("SYNTHETIC_LLM_IMAGE_MODEL", "--llm-image-model"),
    )
    llm_vision_model: str | None = Field(
        None,
        description="model that checks generated images (default the first --llm-model)",
        json_schema_extra=_named("SYNTHETIC_LLM_VISION_MODEL", "--llm-vision-model"),
    )
    llm_embedding_model: str | None = Field(
        None,
        description="embedding model of the duplicate filter (llm; none: TF-IDF)",
        json_schema_extra=_named("SYNTHETIC_LLM_EMBEDDING_MODEL", "--llm-embedding-model"),
    )
    llm_api_key: SecretStr | None = Field(
        None,
        description="the llm endpoint's key, whatever the provider",
        json_schema_extra=_named("SYNTHETIC_LLM_API_KEY", "--llm-api-key"),
    )
    openrouter_api_key: SecretStr | None = Field(
        None,
        description="OpenRouter's key (provider openrouter)",
        json_schema_extra=_named("OPENROUTER_API_KEY", "--openrouter-api-key"),
    )
    together_api_key: SecretStr | None = Field(
        None,
        description="Together's key (provider together)",
        json_schema_extra=_named("TOGETHER_API_KEY", "--together-api-key"),
    )
    openai_api_key: SecretStr | None = Field(
        None,
        description="OpenAI's key (provider openai)",
        json_schema_extra=_named("OPENAI_API_KEY", "--openai-api-key"),
    )

    def masked(self) -> dict[str, Any]:
        """For the start-up log line: everything, the token and keys hidden."""
        shown = self.model_dump()
        for name, value in shown.items():
            if isinstance(value, SecretStr):
                shown[name] = "***"
        return shown

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


class SampleSettings(BaseModel):
    """``dojo synthetic sample``'s settings that it shares with the service."""

    model_config = ConfigDict(extra="forbid")

    mix: Mix = Field(
        "code:1",
        description="content kinds and their shares, e.g. text:1 or code:1,image:1",
        json_schema_extra=_named("SYNTHETIC_MIX"),
    )
    completions: int = Field(
        4, ge=2, le=10, description="completions per task", json_schema_extra=_named("SYNTHETIC_COMPLETIONS")
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ServiceSettings:
    """The settings of ``dojo synthetic serve``: its flags over the environment over ``.env``."""
    return _checked(resolve_args(ServiceSettings, args, environ))


def _checked(settings: ServiceSettings) -> ServiceSettings:
    problem = token_problem(settings)
    if problem is not None:
        raise SettingsError(problem)
    return settings


def token_problem(settings: ServiceSettings) -> str | None:
    """Why these settings may not serve, or None: ground truth needs a token, unless
    ``--no-token`` says explicitly to go without one on loopback."""
    if settings.token is not None and settings.no_token:
        return "--token (SYNTHETIC_API_TOKEN) and --no-token (SYNTHETIC_API_OPEN) contradict each other; give one"
    if settings.token is None and not settings.loopback:
        return (
            f"the synthetic API hands out ground truth: listening on {settings.host} needs a bearer token "
            "(--token or SYNTHETIC_API_TOKEN), or listen on 127.0.0.1"
        )
    if settings.token is None and not settings.no_token:
        return (
            "the synthetic API hands out ground truth: give it a bearer token (--token or SYNTHETIC_API_TOKEN, "
            "and the same SYNTHETIC_API_TOKEN to the validator), or serve without one on loopback with "
            "--no-token (SYNTHETIC_API_OPEN=1)"
        )
    return None


# The Host names a service on loopback answers to; any other is a page of a rebound domain.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(settings: ServiceSettings) -> list[str]:
    """The ``Host`` names the service answers: loopback names, the address it listens on (when
    it is one address), and ``--allowed-host``."""
    hosts = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    if settings.host not in ("0.0.0.0", "::", ""):
        hosts.append(settings.host)
    return list(dict.fromkeys(hosts))
