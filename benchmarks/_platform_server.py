"""The worker platform for the benchmarks that drive it over HTTP (``benchmarks/platform.py``,
``benchmarks/task_page_images.py``): its database with a miner and workers, and ``dojo platform
serve`` in its own process."""

from __future__ import annotations

import http.client
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dojo.platform.settings import PlatformSettings
    from dojo.platform.storage.db import Database
    from dojo.platform.storage.models import Miner

ROOT = Path(__file__).resolve().parents[1]


def prepare_platform(database_url: str, chain_dir: Path) -> tuple[PlatformSettings, Database, str]:
    """A local chain in ``chain_dir`` (netuid 1) with one registered miner, and the platform's
    database at ``database_url`` migrated: its settings, the database and the miner's hotkey."""
    from bittensor import sp_core

    from dojo.platform.settings import PlatformSettings
    from dojo.platform.storage.db import Database
    from template.chain.local import LocalChain

    keypair = sp_core.Keypair.create_from_mnemonic(sp_core.Keypair.generate_mnemonic())
    chain = LocalChain.init(chain_dir, netuid=1, block_time=12.0)
    chain.register(keypair.ss58_address, keypair.ss58_address, stake=1.0)
    database = Database(database_url, pool_size=2)
    database.migrate()
    return PlatformSettings(database_url=database_url), database, keypair.ss58_address


def worker_token(db: Session, settings: PlatformSettings, miner: Miner) -> str:
    """The session token of a new worker subscribed to ``miner``."""
    from dojo.platform.services import auth
    from dojo.platform.storage.models import Subscription

    worker = auth._new_worker(db)
    db.add(Subscription(worker_id=worker.id, miner_id=miner.id, key_id=None, name="bench"))
    return auth.open_worker_session_for(db, settings, worker).token


def serve_platform(
    database_url: str, chain_dir: Path, port: int, processes: int | None = None
) -> subprocess.Popen[bytes]:
    """The platform on ``database_url`` (already migrated) at 127.0.0.1:``port``, with
    ``processes`` server processes (its default when None), once it answers;
    RuntimeError with its stderr when it exits first, or after 120 s."""
    from dojo.platform import serve_command

    command = serve_command(database_url, port, chain_dir, 1)
    if processes is not None:
        command += ["--workers", str(processes)]
    env = {**os.environ, "LOGURU_LEVEL": "WARNING"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the platform exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        # Answered, not only connected: the processes' sockets accept before their apps serve.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the platform did not start within 120 s")
