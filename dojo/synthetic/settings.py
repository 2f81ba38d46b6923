"""The synthetic service's settings, resolved once from flags, environment and ``.env``.

Precedence: flag > environment variable > ``.env`` > default. Environment variables:
``SYNTHETIC_BACKEND``, ``SYNTHETIC_HOST``, ``SYNTHETIC_PORT``, ``SYNTHETIC_DB``,
``SYNTHETIC_API_TOKEN``, ``SYNTHETIC_QUEUE_SIZE``, ``SYNTHETIC_SEED``,
``SYNTHETIC_COMPLETIONS``, ``SYNTHETIC_SIMILARITY``, ``SYNTHETIC_TASK_SECONDS``,
``SYNTHETIC_TASK_TOKENS``, and for the llm backend those read by
:func:`dojo.synthetic.llm.settings_from_env`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

DEFAULT_PORT = 5003
DEFAULT_DB = "~/.dojo/synthetic.sqlite"


class SettingsError(ValueError):
    """A setting is missing or invalid; the message says which and what to do."""


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["procedural", "llm"] = "procedural"
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    db: str = DEFAULT_DB
    token: SecretStr | None = None
    queue_size: int = Field(32, ge=0, le=10_000)
    seed: str | None = None
    completions: int = Field(4, ge=2, le=10)
    similarity: float = Field(0.8, gt=0, le=1)
    task_seconds: float = Field(600.0, gt=0)
    task_tokens: int | None = Field(None, gt=0)
    llm_provider: str | None = None
    llm_base_url: str | None = None
    llm_models: list[str] = Field(default_factory=list)

    def masked(self) -> dict[str, Any]:
        """For the start-up log line: everything, the token hidden."""
        shown = self.model_dump()
        shown["token"] = "***" if self.token else None
        return shown

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_ENV = {
    "backend": "SYNTHETIC_BACKEND",
    "host": "SYNTHETIC_HOST",
    "port": "SYNTHETIC_PORT",
    "db": "SYNTHETIC_DB",
    "token": "SYNTHETIC_API_TOKEN",
    "queue_size": "SYNTHETIC_QUEUE_SIZE",
    "seed": "SYNTHETIC_SEED",
    "completions": "SYNTHETIC_COMPLETIONS",
    "similarity": "SYNTHETIC_SIMILARITY",
    "task_seconds": "SYNTHETIC_TASK_SECONDS",
    "task_tokens": "SYNTHETIC_TASK_TOKENS",
    "llm_provider": "SYNTHETIC_LLM_PROVIDER",
    "llm_base_url": "SYNTHETIC_LLM_BASE_URL",
    "llm_models": "SYNTHETIC_LLM_MODELS",
}


def environment(env_file: str | Path | None = ".env") -> dict[str, str]:
    """The process environment over the ``.env`` file's values."""
    merged: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def resolve_settings(flags: Mapping[str, Any], environ: Mapping[str, str]) -> ServiceSettings:
    """Flags (``None`` = not given) over environment over defaults; raises :class:`SettingsError`."""
    values: dict[str, Any] = {}
    for name, var in _ENV.items():
        if flags.get(name) not in (None, []):
            values[name] = flags[name]
        elif environ.get(var):
            raw = environ[var]
            values[name] = [m.strip() for m in raw.split(",") if m.strip()] if name == "llm_models" else raw
    try:
        settings = ServiceSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        raise SettingsError(
            f"--{name.replace('_', '-')} / {_ENV.get(name, '?')}: {error['msg']} (got {error.get('input')!r})"
        ) from exc
    if not settings.loopback and settings.token is None:
        raise SettingsError(
            f"the synthetic API hands out ground truth: listening on {settings.host} needs a bearer token "
            "(--token or SYNTHETIC_API_TOKEN), or listen on 127.0.0.1"
        )
    return settings
