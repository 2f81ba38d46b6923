"""``dojo platform``: run the worker platform, migrate its database, invite workers.

- ``dojo platform serve [--db URL] [--host H] [--port 8080] [--public-url URL]
  --subtensor.network N --netuid U`` — the Dojo API and web UI; migrations run first.
- ``dojo platform migrate [--db URL]`` — upgrade the database schema and exit.
- ``dojo platform invite --miner HOTKEY [--db URL] [--public-url URL]`` — print a one-time
  invite link that logs a worker in (no wallet needed) and joins them to the miner's team.

``--db`` takes a SQLAlchemy URL (``sqlite:///path``, ``postgresql://user@host/db``) or a
file path; without it ``DATABASE_URL`` or ``~/.dojo/platform.sqlite``.
"""

from __future__ import annotations

import argparse
import os
import sys

SETTINGS_ENV = "DOJO_PLATFORM_SETTINGS"


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("platform", help="the worker platform: serve, migrate, invite")
    commands = group.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the Dojo API and the web UI")
    _add_db(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    _add_public_url(serve)
    serve.add_argument(
        "--subtensor.network",
        dest="network",
        default=os.environ.get("SUBTENSOR_NETWORK", "finney"),
        help="finney, test, local, or a local-chain directory (default finney)",
    )
    serve.add_argument(
        "--subtensor.chain_endpoint",
        dest="chain_endpoint",
        default=None,
        help="ws:// endpoint of a subtensor node",
    )
    serve.add_argument("--netuid", type=int, default=int(os.environ.get("NETUID", "52")), help="subnet uid")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the platform database to the latest schema")
    _add_db(migrate)
    migrate.set_defaults(handler=_migrate)

    invite = commands.add_parser("invite", help="print a one-time invite link for a worker")
    invite.add_argument("--miner", required=True, help="the miner's hotkey (SS58) the worker joins")
    _add_db(invite)
    _add_public_url(invite)
    invite.set_defaults(handler=_invite)


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help="database URL or SQLite path (default: DATABASE_URL or ~/.dojo)"
    )


def _add_public_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--public-url",
        dest="public_url",
        default=os.environ.get("PUBLIC_URL"),
        help="base URL workers and miners reach the platform at (default http://HOST:PORT)",
    )


def _settings(args: argparse.Namespace, **extra: object):  # type: ignore[no-untyped-def]
    from dojo.platform.settings import PlatformSettings, normalize_database_url

    values = {key: value for key, value in extra.items() if value is not None}
    if args.db:
        values["database_url"] = normalize_database_url(args.db)
    if getattr(args, "public_url", None):
        values["public_url"] = args.public_url
    return PlatformSettings(**values)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from loguru import logger
    from pydantic import ValidationError

    from dojo.platform.db import Database
    from template.chain import ChainError

    try:
        settings = _settings(
            args,
            host=args.host,
            port=args.port,
            network=args.network,
            netuid=args.netuid,
            chain_endpoint=args.chain_endpoint,
        )
    except ValidationError as exc:
        print(f"dojo platform serve: {exc}", file=sys.stderr)
        return 2
    print("worker platform settings:\n" + settings.describe(), flush=True)
    database = Database(settings.database_url)
    try:
        database.migrate()
    finally:
        database.dispose()
    settings = settings.model_copy(update={"migrate_on_start": False})
    if args.workers > 1:
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run(
            "dojo.cli.platform:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_level=args.log_level,
            server_header=False,
        )
        return 0
    from dojo.platform.app import create_app

    try:
        app = create_app(settings)
    except (ChainError, ValueError) as exc:
        logger.error("cannot start the platform: {}", exc)
        return 1
    _freeze_heap()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, server_header=False)
    return 0


def _freeze_heap() -> None:
    """Take what start-up allocated (modules, the app, ORM metadata) out of the garbage
    collector's view. Under load a full collection over all of it took 100–140 ms each
    time, stalling every request in flight; objects made later are collected as ever."""
    import gc

    gc.collect()
    gc.freeze()


def app_from_environment():  # type: ignore[no-untyped-def]
    """The app for each process of ``serve --workers N`` (settings passed in the environment)."""
    from dojo.platform.app import create_app
    from dojo.platform.settings import PlatformSettings

    app = create_app(PlatformSettings.model_validate_json(os.environ[SETTINGS_ENV]))
    _freeze_heap()
    return app


def _migrate(args: argparse.Namespace) -> int:
    from dojo.platform.db import Database, current_revision

    settings = _settings(args)
    database = Database(settings.database_url)
    try:
        database.migrate()
        print(f"platform database at revision {current_revision(database.engine)}")
    finally:
        database.dispose()
    return 0


def _invite(args: argparse.Namespace) -> int:
    from dojo.platform import auth
    from dojo.platform.db import Database
    from dojo.platform.errors import PlatformError

    settings = _settings(args)
    database = Database(settings.database_url)
    try:
        database.migrate()
        with database.session() as db:
            url = auth.create_invite(db, settings, args.miner)
    except PlatformError as exc:
        print(f"dojo platform invite: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        database.dispose()
    print(url)
    return 0
