"""One typed settings object per process, resolved once from flags, environment and ``.env``.

Precedence: command-line flag > environment variable > ``.env`` file > default. The flags are
the original Dojo ones (``--netuid``, ``--wallet.name``, ``--subtensor.network``, ``--axon.port``,
…) so existing pm2 commands keep working. Every leaf setting has a flag ``--<section>.<name>``
(top-level ones are ``--<name>``) and an environment variable ``<SECTION>_<NAME>`` in upper
case, unless the field names another (``DOJO_API_KEY``, ``WANDB_API_KEY``, …).

A bad or unknown value ends the process with exit code 2 and a message that names the flag
and what it accepts (:class:`ConfigError` carries the message; :func:`parse_settings` exits).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

NETWORK_NAMES = ("finney", "test", "local", "archive")
# The password of a URL (scheme://user:password@host), masked in the start-up log.
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


class ConfigError(ValueError):
    """A setting was missing, unknown or invalid; the message names the flag."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class WalletSettings(_Section):
    name: str = Field("default", min_length=1, description="coldkey (wallet) name")
    hotkey: str = Field("default", min_length=1, description="hotkey name")
    path: str = Field("~/.bittensor/wallets", min_length=1, description="wallet directory")


class SubtensorSettings(_Section):
    network: str = Field(
        "finney", description="finney, test, local, or a local-chain directory (dojo chain init)"
    )
    chain_endpoint: str | None = Field(None, description="ws:// or wss:// endpoint of a subtensor node")

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if value in NETWORK_NAMES:
            return value
        path = Path(value).expanduser()
        if (path / "chain.sqlite").is_file():
            return str(path.resolve())
        raise ValueError(
            "accepts finney, test, local, or a local-chain directory created by "
            f"`dojo chain init --dir DIR`; {value!r} is neither"
        )

    @field_validator("chain_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("ws://", "wss://")):
            raise ValueError("accepts a ws:// or wss:// URL")
        return value


class AxonSettings(_Section):
    port: int = Field(9602, ge=1, le=65535, description="port the endpoint listens on")
    ip: str = Field("0.0.0.0", description="address the endpoint binds")
    external_ip: str | None = Field(None, description="address published on chain")
    external_port: int | None = Field(None, ge=1, le=65535, description="port published on chain")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted")


class LoggingSettings(_Section):
    debug: bool = Field(False, description="debug logging")
    trace: bool = Field(False, description="trace logging")


class BlacklistSettings(_Section):
    force_validator_permit: bool = Field(True, description="callers must hold a validator permit")
    minimum_stake: float = Field(0.0, ge=0, description="least stake a caller must hold")


class NeuronSettings(_Section):
    type: Literal["miner", "validator"] = Field("miner", description="miner or validator")
    epoch_length: int = Field(100, ge=1, description="blocks between metagraph resyncs and weight updates")
    sample_size: int = Field(8, ge=1, le=1024, description="miners queried per task (validator)")
    moving_average_alpha: float = Field(
        0.1, gt=0, le=1, description="weight of a new score in the moving average (validator)"
    )
    heartbeat_interval: float = Field(30.0, gt=0, description="seconds between heartbeats (validator)")
    timeout: float = Field(12.0, gt=0, description="per-call timeout in seconds (validator)")
    data_dir: str = Field("~/.dojo", min_length=1, description="directory for databases and state")
    database_url: str | None = Field(
        None,
        description="database URL (postgresql://… or sqlite:///…); default: a SQLite file in the data dir",
        json_schema_extra={"env": "DATABASE_URL"},
    )
    task_interval: float = Field(300.0, gt=0, description="seconds between new synthetic tasks (validator)")
    task_deadline: float = Field(
        14400.0, gt=0, le=5 * 86400, description="seconds workers have for a task before collection (validator)"
    )
    collection_grace: float = Field(
        3600.0, ge=0, description="seconds after the deadline during which collection is retried (validator)"
    )
    scoring_interval: float = Field(60.0, gt=0, description="seconds between scoring rounds (validator)")


class MinerNeuronSettings(NeuronSettings):
    # Not DATABASE_URL: a miner often runs its worker platform beside it, whose database
    # that variable names, and the two must never share one.
    database_url: str | None = Field(
        None,
        description="database URL (postgresql://… or sqlite:///…); default: a SQLite file in the data dir",
        json_schema_extra={"env": "MINER_DATABASE_URL"},
    )


class WandbSettings(_Section):
    off: bool = Field(False, description="do not log scoring rounds to Weights & Biases")
    project: str = Field("dojo", min_length=1, description="Weights & Biases project")
    entity: str | None = Field(None, description="Weights & Biases entity (team or user)")


class ExportSettings(_Section):
    interval: float = Field(
        0.0, ge=0, description="seconds between exports of the task database as a dataset (validator); 0 = off"
    )
    dir: str | None = Field(None, description="where dataset exports go (validator); default: <data dir>/export")
    keep: int = Field(3, ge=1, le=1000, description="dated dataset exports kept; older ones are removed (validator)")


class NeuronConfig(_Section):
    """Settings common to miners and validators."""

    netuid: int = Field(52, ge=0, le=65535, description="subnet uid")
    wallet: WalletSettings = WalletSettings()
    subtensor: SubtensorSettings = SubtensorSettings()
    axon: AxonSettings = AxonSettings()
    logging: LoggingSettings = LoggingSettings()
    blacklist: BlacklistSettings = BlacklistSettings()
    neuron: NeuronSettings = NeuronSettings()

    @property
    def data_dir(self) -> Path:
        return Path(self.neuron.data_dir).expanduser()


class MinerConfig(NeuronConfig):
    neuron: MinerNeuronSettings = MinerNeuronSettings()
    scoring_method: Literal["dojo"] = Field("dojo", description="dojo")
    dojo_api_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="worker platform URL",
        json_schema_extra={"env": "DOJO_API_BASE_URL"},
    )
    dojo_api_key: SecretStr | None = Field(
        None, description="API key from `dojo api-key generate`", json_schema_extra={"env": "DOJO_API_KEY"}
    )
    task_max_results: int = Field(
        3, ge=1, le=100, description="worker results wanted per task", json_schema_extra={"env": "TASK_MAX_RESULTS"}
    )


class ValidatorConfig(NeuronConfig):
    axon: AxonSettings = AxonSettings(port=9603)
    neuron: NeuronSettings = NeuronSettings(type="validator")
    scoring_method: Literal["dojo"] = Field("dojo", description="dojo")
    synthetic_api_url: str | None = Field(
        None,
        description="synthetic API URL; tasks are generated in-process when unset",
        json_schema_extra={"env": "SYNTHETIC_API_URL"},
    )
    openrouter_api_key: SecretStr | None = Field(
        None, description="OpenRouter key for the llm backend", json_schema_extra={"env": "OPENROUTER_API_KEY"}
    )
    wandb_api_key: SecretStr | None = Field(
        None, description="Weights & Biases key", json_schema_extra={"env": "WANDB_API_KEY"}
    )
    wandb: WandbSettings = WandbSettings()
    export: ExportSettings = ExportSettings()


# --- resolution ---------------------------------------------------------------------------

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class _Option:
    """One leaf setting: its path in the model, its flag and its environment variable."""

    def __init__(self, path: tuple[str, ...], annotation: Any, field: Any):
        self.path = path
        self.flag = "--" + ".".join(path)
        extra = field.json_schema_extra or {}
        self.env = extra.get("env") or "_".join(path).upper()
        self.is_bool = annotation is bool
        self.help = field.description or ""


def _options(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[_Option]:
    found: list[_Option] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(_options(annotation, (*prefix, name)))
        else:
            found.append(_Option((*prefix, name), annotation, field))
    return found


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(option: _Option, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{option.flag} (env {option.env}): accepts true or false; got {raw!r}")


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 itself; keep its wording, add ours
        raise ConfigError(f"{message}. Run with --help for the accepted flags.")


def build_parser(model: type[BaseModel], prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog, description=model.__doc__, argument_default=argparse.SUPPRESS, allow_abbrev=False
    )
    parser.add_argument("--env-file", dest="__env_file", metavar="PATH", help="read settings from this .env file")
    for option in _options(model):
        if option.is_bool:
            parser.add_argument(
                option.flag, dest=option.flag, nargs="?", const="true", metavar="BOOL",
                help=f"{option.help} [env {option.env}]",
            )
        else:
            parser.add_argument(option.flag, dest=option.flag, metavar="VALUE", help=f"{option.help} [env {option.env}]")
    return parser


def resolve(
    model: type[ConfigT],
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = ".env",
) -> ConfigT:
    """Resolve ``model`` from ``argv``, the environment and an optional ``.env`` file.

    Raises :class:`ConfigError` naming the flag for an unknown flag or an invalid value.
    """
    parser = build_parser(model)
    given = vars(parser.parse_args(list(argv)))
    env_path = given.pop("__env_file", env_file)
    env: dict[str, str] = {}
    if env_path and Path(env_path).is_file():
        env.update({k: v for k, v in dotenv_values(env_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    options = _options(model)
    by_flag = {o.flag: o for o in options}
    # Start from each section's default instance, so a subclass's defaults (the validator's
    # port 9603) survive a flag that sets another key of the same section.
    tree: dict[str, Any] = {
        name: field.default.model_dump()
        for name, field in model.model_fields.items()
        if isinstance(field.default, BaseModel)
    }
    for option in options:
        if option.env in env:
            raw = env[option.env]
            _set(tree, option.path, _bool(option, raw) if option.is_bool else raw)
    for flag, raw in given.items():
        option = by_flag[flag]
        _set(tree, option.path, _bool(option, raw) if option.is_bool else raw)
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, options)) from None


def _explain(exc: ValidationError, options: list[_Option]) -> str:
    by_path = {o.path: o for o in options}
    lines = []
    for error in exc.errors():
        path = tuple(str(p) for p in error["loc"])
        option = by_path.get(path)
        where = f"{option.flag} (env {option.env})" if option else ".".join(path)
        msg = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        lines.append(f"{where}: {msg}; got {got!r}" if not isinstance(got, dict) else f"{where}: {msg}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def parse_settings(model: type[ConfigT], argv: Sequence[str] | None = None, prog: str | None = None) -> ConfigT:
    """Resolve settings for a process entry point; print the error and exit 2 when invalid."""
    try:
        return resolve(model, sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"{prog or Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def describe(settings: BaseModel) -> str:
    """The settings as ``--flag = value`` lines, secrets masked, for the start-up log."""
    lines = []
    for option in _options(type(settings)):
        value: Any = settings
        for key in option.path:
            value = getattr(value, key)
        if isinstance(value, SecretStr):
            value = "********" if value.get_secret_value() else ""
        elif isinstance(value, str) and "://" in value:
            value = _URL_PASSWORD.sub(r"\1********@", value)
        lines.append(f"{option.flag} = {value}")
    return "\n".join(lines)
