"""The real worker platform on loopback, for the client and CLI tests.

``dojo.platform.create_app`` under uvicorn in a thread, on a socket bound before the app is
built, so that the platform's public URL (signed into every login message) is the very
URL the client dials. A LocalChain in the test's directory holds the registrations.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

NETUID = 7


@dataclass
class LivePlatform:
    url: str
    chain: Any  # template.chain.local.LocalChain

    def register(self, wallet: Any, stake: float = 0.0) -> None:
        self.chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=stake)


@contextmanager
def live_platform(directory: Path, **overrides: Any) -> Iterator[LivePlatform]:
    from dojo.platform import PlatformSettings, create_app
    from template.chain.local import LocalChain

    chain = LocalChain.init(directory / "chain", netuid=NETUID, block_time=1.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = PlatformSettings(
        **{
            "database_url": f"sqlite:///{directory / 'platform.sqlite'}",
            "host": "127.0.0.1",
            "port": port,
            "netuid": NETUID,
            "registration_refresh_seconds": 0.0,
            **overrides,
        }
    )
    app = create_app(settings, chain=chain)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-platform", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the platform server did not start")
        time.sleep(0.01)
    try:
        yield LivePlatform(settings.base_url, chain)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        chain.close()
