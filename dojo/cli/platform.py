"""``dojo platform``: run the worker platform, migrate its database, invite workers.

- ``dojo platform serve [--db URL] [--host H] [--port 8080] [--public-url URL]
  --subtensor.network N --netuid U`` — the Dojo API and web UI; migrations run first.
- ``dojo platform migrate [--db URL]`` — upgrade the database schema and exit.
- ``dojo platform invite --wallet.name W [--wallet.hotkey H] [--platform URL]`` — ask the
  running platform (logged in with the miner's hotkey, as ``dojo api-key`` does) for a
  one-time invite link that logs a worker in (no wallet needed) and joins them to the
  miner's team, and print it.
- ``dojo platform invite --db URL --miner HOTKEY [--public-url URL | --host H --port P]
  --subtensor.network N --netuid U`` — the same, written straight into the database, for an
  operator on the platform's host: the hotkey must be registered on the subnet, and the
  link names the URL the platform serves at: the one ``serve`` recorded in that database
  when it started, unless ``--public-url`` or ``--host``/``--port`` say otherwise.

``--db`` takes a SQLAlchemy URL (``sqlite:///path``, ``postgresql://user@host/db``) or a
file path; without it ``DATABASE_URL`` or ``~/.dojo/platform.sqlite``. The settings resolve
as the neurons' do (:mod:`template.config`): flag > environment variable > ``.env`` >
default, each flag's variable named in ``--help`` and in :mod:`dojo.platform.settings`; a
bad value exits 2 naming both.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TypedDict

from template.heap import freeze_heap

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dojo.platform.settings import PlatformSettings
    from dojo.platform.storage.db import Database

SETTINGS_ENV = "DOJO_PLATFORM_SETTINGS"


# The flags of the platform's database, address and chain: ``serve``'s, and ``invite --db``'s
# (which writes the link the platform at that address serves).
HOST_SETTINGS = ("database_url", "host", "port", "public_url", "network", "chain_endpoint", "netuid")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from dojo.cli._deferred import DeferredParser

    group = subparsers.add_parser("platform", help="the worker platform: serve, migrate, invite")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=DeferredParser)

    serve = commands.add_parser("serve", help="run the Dojo API and the web UI")
    serve.defer(
        lambda parser: _add_settings(
            parser,
            (
                *HOST_SETTINGS,
                "forwarded_allow_ips",
                "min_time_left_seconds",
                "login_rate_limit",
                "hot_path_connections",
                "docs",
            ),
        )
    )
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the platform database to the latest schema")
    migrate.defer(lambda parser: _add_settings(parser, ("database_url",)))
    migrate.set_defaults(handler=_migrate)

    invite = commands.add_parser(
        "invite",
        help="print a one-time invite link for a worker",
        description="Ask the platform for a one-time invite link, logged in with the miner's hotkey "
        "(--wallet.*); or, on the platform's host, write it into the database (--db with --miner).",
    )
    _add_invite_flags(invite)
    invite.defer(_add_invite_host_flags)
    invite.set_defaults(handler=_invite)


def _add_settings(
    parser: argparse.ArgumentParser, names: tuple[str, ...], group: argparse._ArgumentGroup | None = None
) -> None:
    from dojo.platform.settings import PlatformSettings
    from template.config import add_options

    add_options(parser, PlatformSettings, names, group=group)


def _settings(args: argparse.Namespace, prog: str) -> PlatformSettings | int:
    """The settings ``args`` and the environment give, or the exit code after saying what is wrong."""
    from dojo.platform.settings import PlatformSettings
    from template.config import ConfigError, print_config_error, resolve_args

    try:
        return resolve_args(PlatformSettings, args)
    except ConfigError as exc:
        return print_config_error(prog, exc)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from loguru import logger

    from dojo.platform.storage.db import Database
    from template.chain import ChainError

    settings = _settings(args, "dojo platform serve")
    if isinstance(settings, int):
        return settings
    # Each process is handed its share of the hot path's connections.
    settings = settings.model_copy(
        update={"hot_path_connections": settings.hot_path_connections_for(max(1, args.workers))}
    )
    print("worker platform settings:\n" + settings.describe(), flush=True)
    database = Database(settings.database_url)
    try:
        database.migrate()
        _record_base_url(database, settings)
    finally:
        database.dispose()
    settings = settings.model_copy(update={"migrate_on_start": False})
    if args.workers > 1:
        from template.serving import balanced, serve_processes

        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        app_path = "dojo.cli.platform:app_from_environment"
        options = uvicorn_options(settings, args.log_level)
        if balanced():  # each process its own socket: connections spread among them
            return serve_processes(uvicorn.Config(app_path, factory=True, **options), args.workers)
        uvicorn.run(app_path, factory=True, workers=args.workers, **options)
        return 0
    from dojo.platform.http.app import create_app

    try:
        app = create_app(settings)
    except (ChainError, ValueError) as exc:
        logger.error("cannot start the platform: {}", exc)
        return 1
    freeze_heap()
    uvicorn.run(app, **uvicorn_options(settings, args.log_level))
    return 0


def _record_base_url(database: Database, settings: PlatformSettings) -> None:
    """Write down the URL this platform serves at, for ``invite --db`` on the same host
    (which otherwise could only guess the default port). A port the system picks (0) is
    known only once bound, and no link could name it."""
    from dojo.platform.storage import state

    if settings.public_url or settings.port:
        with database.session() as db:
            state.record(db, state.BASE_URL, settings.base_url)


class UvicornOptions(TypedDict):
    """The keyword arguments of ``uvicorn.run`` that ``serve`` sets."""

    host: str
    port: int
    log_level: str
    server_header: bool
    proxy_headers: bool
    forwarded_allow_ips: str


def uvicorn_options(settings: PlatformSettings, log_level: str) -> UvicornOptions:
    """How ``serve`` runs uvicorn for ``settings``.

    Proxy headers only from the proxies the operator names: uvicorn's default believes
    ``X-Forwarded-For`` from 127.0.0.1, so on a host without a proxy any local client (or
    anything relaying through loopback) could claim a new address on every request and so
    escape the log-in rate limit, which counts per client address.
    """
    trusted = settings.forwarded_allow_ips
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "server_header": False,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or "",
    }


def app_from_environment() -> FastAPI:
    """The app for each process of ``serve --workers N`` (settings passed in the environment)."""
    from dojo.platform.http.app import create_app
    from dojo.platform.settings import PlatformSettings

    app = create_app(PlatformSettings.model_validate_json(os.environ[SETTINGS_ENV]))
    freeze_heap()
    return app


def _migrate(args: argparse.Namespace) -> int:
    from dojo.platform.storage.db import Database, current_revision

    settings = _settings(args, "dojo platform migrate")
    if isinstance(settings, int):
        return settings
    database = Database(settings.database_url)
    try:
        database.migrate()
        print(f"platform database at revision {current_revision(database.engine)}")
    finally:
        database.dispose()
    return 0


def _add_invite_flags(invite: argparse.ArgumentParser) -> None:
    from dojo.cli.keys import add_account_flags

    add_account_flags(invite)
    for action in invite._actions:
        if action.dest == "wallet_name":
            action.required = False  # not with --db; _invite_through_api asks for it


def _add_invite_host_flags(invite: argparse.ArgumentParser) -> None:
    host = invite.add_argument_group(
        "on the platform's host (--db)",
        "write the invite into the platform's database; the link names the URL that serve, given the same flags, serves at",
    )
    host.add_argument("--miner", default=None, help="the miner's hotkey (SS58) the worker joins")
    _add_settings(invite, HOST_SETTINGS, host)


def _invite(args: argparse.Namespace) -> int:
    """Exit codes as ``dojo api-key``: 0 printed, 1 refused or unreachable, 2 usage."""
    return _invite_on_host(args) if args.db else _invite_through_api(args)


def _invite_problem(message: str, code: int) -> int:
    print(f"dojo platform invite: {message}", file=sys.stderr)
    return code


def _invite_through_api(args: argparse.Namespace) -> int:
    from typing import Any

    from dojo.cli.keys import EXIT_OK, EXIT_USAGE, run_with_account

    if not args.wallet_name:
        return _invite_problem(
            "give the miner's wallet (--wallet.name, --wallet.hotkey) to ask the platform for an invite, "
            "or --db and --miner on the platform's host",
            EXIT_USAGE,
        )

    async def run(account: Any) -> int:
        if args.miner and args.miner != account.address:
            return _invite_problem(
                f"--miner {args.miner} is not the wallet's hotkey {account.address}; an invite through "
                "the platform is for the hotkey that logs in",
                EXIT_USAGE,
            )
        invite = await account.invite()
        print(invite.url)
        print(f"One use, valid until {invite.expires_at.isoformat()}.", file=sys.stderr)
        return EXIT_OK

    return run_with_account(args, run)


def _quiet_log() -> None:
    """Log lines as an operator's command should print them: what happened (INFO and up)
    in a line each; the platform's DEBUG lines (registration snapshots) stay out."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{message}", backtrace=False, diagnose=False)


def _invite_on_host(args: argparse.Namespace) -> int:
    from dojo.platform.errors import PlatformError
    from dojo.platform.services import auth
    from dojo.platform.services.registry import HotkeyRegistry
    from dojo.platform.storage import state
    from dojo.platform.storage.db import Database
    from template.chain import ChainError, open_chain

    if not args.miner:
        return _invite_problem("--db needs --miner HOTKEY: the miner whose team the worker joins", 2)
    settings = _settings(args, "dojo platform invite")
    if isinstance(settings, int):
        return settings
    _quiet_log()
    try:
        auth.check_hotkey(args.miner)
    except PlatformError as exc:
        return _invite_problem(exc.detail, 2)
    # The platform lets only registered miners log in; an invite must not open a back door.
    try:
        chain = open_chain(settings.network, settings.netuid, settings.chain_endpoint)
    except (ChainError, ValueError) as exc:
        return _invite_problem(f"cannot open the chain to check the hotkey's registration: {exc}", 1)
    try:
        registered = HotkeyRegistry(chain).is_registered(args.miner)
    except ChainError as exc:
        return _invite_problem(f"cannot read the subnet's registrations: {exc}", 1)
    finally:
        chain.close()
    if not registered:
        return _invite_problem(
            f"hotkey {args.miner} is not registered on subnet {settings.netuid}; register it first", 1
        )
    database = Database(settings.database_url)
    try:
        database.migrate()
        with database.session() as db:
            if not {"public_url", "host", "port"} & settings.model_fields_set:
                # Where the platform on this database said it serves, rather than the default port.
                served_at = state.recorded(db, state.BASE_URL)
                if served_at:
                    settings = settings.model_copy(update={"public_url": served_at})
                else:
                    print(
                        f"dojo platform invite: no platform has served from this database yet; the link "
                        f"assumes {settings.base_url} (give --public-url, or --host and --port, to change it)",
                        file=sys.stderr,
                    )
            url = auth.create_invite(db, settings, args.miner)
    except PlatformError as exc:
        return _invite_problem(exc.detail, 2)
    finally:
        database.dispose()
    print(url)
    return 0
