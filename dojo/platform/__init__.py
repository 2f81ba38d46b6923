"""The worker platform: the Dojo API (miners, keys, tasks, results) and the web UI.

``create_app(settings)`` builds the FastAPI application; ``dojo platform serve`` runs it
under uvicorn. Module map (the UI in ``dojo.platform.web`` calls the service modules
directly from its page routes):

- ``settings``      :class:`PlatformSettings`, resolved once per process
- ``db``            engine, sessions (SQLite WAL / PostgreSQL) and migrations
- ``models``        SQLAlchemy tables
- ``errors``        :class:`PlatformError` and its subclasses, each with its HTTP status
- ``security``      secrets and key hashing, CSRF, rate limits, headers, body caps
- ``registry``      the metagraph snapshot that answers "is this hotkey registered?"
- ``auth``          miner and worker log-in (challenges, signatures, sessions, invites)
- ``keys``          API keys and subscription keys
- ``tasks``         create-tasks, task status, task results (miner side)
- ``queue``         next task, submit, skip (worker side)
- ``subscriptions`` a worker's subscriptions and the tasks they give access to
- ``dashboard``     the miner dashboard: results and agreement per task
- ``deps``          FastAPI dependencies: database session, current miner / worker
- ``api``           the JSON routes under ``/api/v1``
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["PlatformSettings", "create_app"]

if TYPE_CHECKING:
    from dojo.platform.app import create_app
    from dojo.platform.settings import PlatformSettings


def __getattr__(name: str) -> Any:
    # Lazy so that `dojo --help` and the models do not import FastAPI.
    if name == "create_app":
        from dojo.platform.app import create_app

        return create_app
    if name == "PlatformSettings":
        from dojo.platform.settings import PlatformSettings

        return PlatformSettings
    raise AttributeError(name)
