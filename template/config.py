"""One typed settings object per process, resolved once from flags, environment and ``.env``.

Precedence: command-line flag > environment variable > ``.env`` file > default. The flags are
the original Dojo ones (``--netuid``, ``--wallet.name``, ``--subtensor.network``, ``--axon.port``,
…) so existing pm2 commands keep working. Every leaf setting has a flag ``--<section>.<name>``
(top-level ones are ``--<name>``) and an environment variable ``<SECTION>_<NAME>`` in upper
case, unless the field names another (``DOJO_API_KEY``, ``WANDB_API_KEY``, …).

A bad or unknown value ends the process with exit code 2 and a message that names the flag
and what it accepts (:class:`ConfigError` carries the message; :func:`parse_settings` exits).

A neuron's settings model extends :class:`NeuronConfig` beside its neuron
(``dojo.miner.config.MinerConfig``, ``dojo.validator.config.ValidatorConfig``), with sections
that are :class:`Section` models.

A ``dojo`` subcommand whose process has its own settings model (the worker platform, the
synthetic service) resolves it the same way: :func:`add_options` adds the model's flags to the
subcommand's parser and :func:`resolve_args` resolves the parsed namespace. A field may name
its flag (``json_schema_extra={"flag": "--public-url"}``) as well as its variable; a list
field takes its flag once per item and its variable comma-separated.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar, get_origin

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticUndefined

from template.validation import validation_messages

NETWORK_NAMES = ("finney", "test", "local", "archive")
# The password of a URL (scheme://user:password@host), masked in the start-up log.
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


class ConfigError(ValueError):
    """A setting was missing, unknown or invalid; the message names the flag."""


class Section(BaseModel):
    """A group of settings (``--<section>.<name>``); an unknown key is an error, and every
    default is validated as a given value is."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class WalletSettings(Section):
    name: str = Field("default", min_length=1, description="coldkey (wallet) name")
    hotkey: str = Field("default", min_length=1, description="hotkey name")
    path: str = Field("~/.bittensor/wallets", min_length=1, description="wallet directory")


def check_network(value: str, *, chain_must_exist: bool = True) -> str:
    """A network name from :data:`NETWORK_NAMES`, or a local-chain directory (made absolute);
    with ``chain_must_exist`` false, any value written as a path (the chain is checked when
    it opens)."""
    if value in NETWORK_NAMES:
        return value
    path = Path(value).expanduser()
    written_as_path = "/" in value or os.sep in value or value.startswith(("~", "."))
    if (path / "chain.sqlite").is_file() or (written_as_path and not chain_must_exist):
        return str(path.resolve())
    raise ValueError(
        "accepts finney, test, local, or a local-chain directory created by "
        f"`dojo chain init --dir DIR`; {value!r} is neither"
    )


def check_chain_endpoint(value: str | None) -> str | None:
    if value is not None and not value.startswith(("ws://", "wss://")):
        raise ValueError("accepts a ws:// or wss:// URL")
    return value


# The chain settings' types, for every process that opens the chain; a server that reports a
# missing chain when it starts takes a NetworkOrPath.
Network = Annotated[str, AfterValidator(check_network)]
NetworkOrPath = Annotated[str, AfterValidator(lambda value: check_network(value, chain_must_exist=False))]
ChainEndpoint = Annotated[str | None, AfterValidator(check_chain_endpoint)]


class SubtensorSettings(Section):
    network: Network = Field(
        "finney", description="finney, test, local, or a local-chain directory (dojo chain init)"
    )
    chain_endpoint: ChainEndpoint = Field(None, description="ws:// or wss:// endpoint of a subtensor node")


class AxonSettings(Section):
    port: int = Field(9602, ge=1, le=65535, description="port the endpoint listens on")
    ip: str = Field("0.0.0.0", description="address the endpoint binds")
    external_ip: str | None = Field(None, description="address published on chain")
    external_port: int | None = Field(None, ge=1, le=65535, description="port published on chain")
    max_body_bytes: int = Field(1 << 20, ge=1024, description="largest request body accepted")


class LoggingSettings(Section):
    debug: bool = Field(False, description="debug logging")
    trace: bool = Field(False, description="trace logging")


class BlacklistSettings(Section):
    force_validator_permit: bool = Field(True, description="callers must hold a validator permit")
    minimum_stake: float = Field(0.0, ge=0, description="least stake a caller must hold")


class NeuronSettings(Section):
    """The settings of any neuron (``--neuron.*``); a neuron's own extend them beside it
    (``dojo.validator.neuron_settings.ValidatorNeuronSettings``)."""

    type: Literal["miner", "validator"] = Field("miner", description="miner or validator")
    epoch_length: int = Field(100, ge=1, description="blocks between metagraph resyncs and weight updates")
    data_dir: str = Field("~/.dojo", min_length=1, description="directory for databases and state")
    database_url: str | None = Field(
        None,
        description="database URL (postgresql://… or sqlite:///…); default: a SQLite file in the data dir",
        json_schema_extra={"env": "DATABASE_URL"},
    )


class NeuronConfig(Section):
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


# --- resolution ---------------------------------------------------------------------------

ConfigT = TypeVar("ConfigT", bound=BaseModel)
# Namespace attributes: the flags given on the command line ({path: raw value}), --env-file.
_GIVEN = "__config_given"
_ENV_FILE = "__env_file"
_OPTIONS = "__config_options"  # the settings add_options gave flags
EXIT_USAGE = 2


class _Option:
    """One leaf setting: its path in the model, its flag and its environment variable."""

    def __init__(self, path: tuple[str, ...], annotation: Any, field: Any):
        self.path = path
        extra = field.json_schema_extra or {}
        self.flag = extra.get("flag") or "--" + ".".join(path)
        self.env = extra.get("env") or "_".join(path).upper()
        self.annotation = annotation
        self.is_bool = annotation is bool
        self.is_list = get_origin(annotation) is list
        self.help = field.description or ""
        self.default = None if field.default is PydanticUndefined else field.default

    @property
    def dest(self) -> str:
        """A subcommand's namespace attribute: the flag's last part (--subtensor.network: network)."""
        return self.flag.removeprefix("--").rsplit(".", 1)[-1].replace("-", "_")

    def named(self, flag: str | None) -> _Option:
        """This setting under another flag (``dojo miner status --db`` for ``--neuron.database_url``)."""
        if not flag:
            return self
        other = copy.copy(self)
        other.flag = flag
        return other

    def from_env(self, raw: str) -> Any:
        if self.is_bool:
            return _bool(self, raw)
        if self.is_list:
            return [item.strip() for item in raw.split(",") if item.strip()]
        return raw

    def from_flag(self, raw: Any) -> Any:
        return _bool(self, raw) if self.is_bool and isinstance(raw, str) else raw

    def typed(self, raw: Any) -> Any:
        """The value as the model types it, or ``raw`` when it does not parse."""
        try:
            return TypeAdapter(self.annotation).validate_python(self.from_flag(raw))
        except (ValidationError, ConfigError):
            return raw


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


class _Given(argparse.Action):
    """Records a flag as given, for resolution, and puts its value on the namespace as the
    model types it (the text itself when it does not parse: resolution names the flag)."""

    def __init__(self, option_strings: Sequence[str], dest: str, option: _Option, **kwargs: Any):
        super().__init__(option_strings, dest, **kwargs)
        self.option = option

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given: dict[tuple[str, ...], Any] = getattr(namespace, _GIVEN, None) or {}
        raw = [*given.get(self.option.path, []), values] if self.option.is_list else values
        given[self.option.path] = raw
        setattr(namespace, _GIVEN, given)
        setattr(namespace, self.dest, self.option.typed(raw))


def _add_argument(parser: argparse._ActionsContainer, option: _Option, **kwargs: Any) -> None:
    default = kwargs.get("default")
    shown = f" (default {default})" if default not in (None, []) and "default" not in option.help else ""
    kwargs.update(action=_Given, option=option, help=f"{option.help}{shown} [env {option.env}]")
    if option.is_bool:
        parser.add_argument(option.flag, nargs="?", const="true", metavar="BOOL", **kwargs)
    else:
        parser.add_argument(option.flag, metavar="VALUE", **kwargs)


def _add_env_file(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--env-file",
        dest=_ENV_FILE,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="read settings from this .env file",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 itself; keep its wording, add ours
        raise ConfigError(f"{message}. Run with --help for the accepted flags.")


def positive_float(text: str) -> float:
    """``text`` as a number more than 0, for ``type=`` of a command line's own option (``dojo
    localnet``, ``python -m dojo.workers``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def build_parser(model: type[BaseModel], prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog, description=model.__doc__, argument_default=argparse.SUPPRESS, allow_abbrev=False
    )
    _add_env_file(parser)
    for option in _options(model):
        _add_argument(parser, option, dest=option.flag)
    return parser


def add_options(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    names: Iterable[str] | Mapping[str, str] | None = None,
    *,
    group: argparse._ArgumentGroup | None = None,
) -> None:
    """Add ``--env-file`` and the flags of ``model``'s settings ``names`` to a subcommand's
    parser (listed in ``group`` of it when given), for :func:`resolve_args`.

    ``names`` are dotted paths (default: every setting), or map each to the flag that sets it
    instead of its own. Each value lands on the namespace attribute named by the flag's last
    part (``--subtensor.network``: ``network``, ``--public-url``: ``public_url``), typed as
    the model types it; one not given holds the field's default (``None`` for a computed one).
    """
    by_name = {".".join(o.path): o for o in _options(model)}
    flags = names if isinstance(names, Mapping) else {}
    options = [by_name[name].named(flags.get(name)) for name in (by_name if names is None else names)]
    parser.set_defaults(**{_OPTIONS: [*(parser.get_default(_OPTIONS) or []), *options]})
    container = parser if group is None else group
    _add_env_file(container)
    for option in options:
        default = [] if option.is_list and option.default is None else option.default
        _add_argument(container, option, dest=option.dest, default=default)


def environment(
    environ: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = ".env"
) -> dict[str, str]:
    """The environment (``os.environ`` unless given) over the ``.env`` file's values."""
    env: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    return env


def _resolve(
    model: type[ConfigT],
    options: Sequence[_Option],
    given: Mapping[tuple[str, ...], Any],
    env: Mapping[str, str],
) -> ConfigT:
    # Start from each section's default instance, so a subclass's defaults (the validator's
    # port 9603) survive a flag that sets another key of the same section.
    tree: dict[str, Any] = {
        name: field.default.model_dump()
        for name, field in model.model_fields.items()
        if isinstance(field.default, BaseModel)
    }
    for option in options:
        if option.env in env:
            _set(tree, option.path, option.from_env(env[option.env]))
    for option in options:
        if option.path in given:
            _set(tree, option.path, option.from_flag(given[option.path]))
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, [*_options(model), *options])) from None


def resolve(
    model: type[ConfigT],
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = ".env",
) -> ConfigT:
    """Resolve ``model`` from ``argv``, the environment and an optional ``.env`` file.

    Raises :class:`ConfigError` naming the flag for an unknown flag or an invalid value.
    """
    args = build_parser(model).parse_args(list(argv))
    env = environment(environ, getattr(args, _ENV_FILE, env_file))
    return _resolve(model, _options(model), getattr(args, _GIVEN, {}), env)


def resolve_args(
    model: type[ConfigT],
    args: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = ".env",
) -> ConfigT:
    """Resolve ``model`` from a namespace parsed with :func:`add_options`' flags, the
    environment and ``.env``, with :func:`resolve`'s precedence and errors.

    Only the settings given flags by :func:`add_options` are read (errors name those
    flags); the others keep their defaults. An empty variable counts as unset.
    """
    options: list[_Option] = getattr(args, _OPTIONS, [])
    env = environment(environ, getattr(args, _ENV_FILE, env_file))
    return _resolve(model, options, getattr(args, _GIVEN, {}), {k: v for k, v in env.items() if v})


def resolve_values(model: type[ConfigT], values: Mapping[str, Any], environ: Mapping[str, str]) -> ConfigT:
    """Resolve ``model`` from ``values`` by dotted path (``None`` or empty: not given) over
    ``environ`` over defaults, as :func:`resolve_args` does for flags."""
    given = {tuple(k.split(".")): v for k, v in values.items() if v not in (None, [])}
    return _resolve(model, _options(model), given, {k: v for k, v in environ.items() if v})


def _explain(exc: ValidationError, options: list[_Option]) -> str:
    by_path = {o.path: o for o in options}

    def where(loc: tuple[Any, ...]) -> str:
        path = tuple(str(p) for p in loc)
        option = by_path.get(path)
        return f"{option.flag} (env {option.env})" if option else ".".join(path)

    lines = validation_messages(exc, where=where, with_input=True)
    return "invalid settings:\n  " + "\n  ".join(lines)


def print_config_error(prog: str, exc: ConfigError) -> int:
    """Say ``exc`` on stderr as ``prog: error: …``; the exit code for it (2)."""
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


def parse_settings(
    model: type[ConfigT], argv: Sequence[str] | None = None, prog: str | None = None
) -> ConfigT:
    """Resolve settings for a process entry point; print the error and exit 2 when invalid."""
    try:
        return resolve(model, sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        raise SystemExit(print_config_error(prog or Path(sys.argv[0]).name, exc)) from None


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
