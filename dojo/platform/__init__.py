"""The worker platform: the Dojo API (miners, keys, tasks, results) and the web UI.

``create_app(settings)`` builds the FastAPI application; ``dojo platform serve`` runs it
under uvicorn. The package by role, each layer importing only those below it:

- ``http``          the app (``app``), the JSON routes under ``/api/v1`` (``api``), the web UI
                    (``web``, which calls the services directly from its page routes), the
                    queue's plain-ASGI hot path (``hotpath``), FastAPI dependencies (``deps``)
                    and ``/docs`` (``apidocs``)
- ``services``      log-in (``auth``), ``keys``, the miner's ``tasks``, the worker's ``queue``
                    (``pgqueue`` on PostgreSQL), ``subscriptions``, ``drafts``, the miner's
                    ``dashboard`` and ``team``, ``agreement``, the hotkey ``registry``, the
                    log-in ``limits``
- ``storage``       the database (``db``), its tables (``models``), ``migrations``, SQLite's
                    writers (``groupcommit``), statements on the driver (``rawsql``), the
                    platform's own values (``state``)
- ``settings``      :class:`PlatformSettings`, resolved once per process
- ``schemas``       the bodies of the workers' API, the dashboard and the team (the miner's
                    are :mod:`commons.dojo_wire`'s)
- ``errors``        :class:`PlatformError` and its subclasses, each with its HTTP status
- ``security``      secrets and key hashing, CSRF, headers, body caps
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["PlatformSettings", "create_app", "serve_command"]

if TYPE_CHECKING:
    from dojo.platform.http.app import create_app
    from dojo.platform.settings import PlatformSettings


def __getattr__(name: str) -> Any:
    # Lazy so that `dojo --help` and the models do not import FastAPI.
    if name == "create_app":
        from dojo.platform.http.app import create_app

        return create_app
    if name == "PlatformSettings":
        from dojo.platform.settings import PlatformSettings

        return PlatformSettings
    raise AttributeError(name)


def serve_command(db: str | Path, port: int, chain_dir: str | Path, netuid: int, *options: str) -> list[str]:
    """The command line of ``dojo platform serve`` at 127.0.0.1:``port`` on the database ``db``
    and the local chain in ``chain_dir``, logging warnings and worse; ``options``: more flags.
    (The localnet, the benchmarks and the replica tests start the platform with it.)"""
    return [
        sys.executable,
        "-m",
        "dojo",
        "platform",
        "serve",
        "--db",
        str(db),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--subtensor.network",
        str(chain_dir),
        "--netuid",
        str(netuid),
        "--log-level",
        "warning",
        *options,
    ]
