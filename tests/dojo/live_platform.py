"""The real worker platform on loopback, for the client and CLI tests.

``dojo.platform.create_app`` under uvicorn in a thread (the platform tests' ``LiveServer``),
on a socket bound before the app is built, so that the platform's public URL (signed into every login message) is the very
URL the client dials. A LocalChain in the test's directory holds the registrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from tests.dojo.platform._support import LiveServer, bound_socket

    chain = LocalChain.init(directory / "chain", netuid=NETUID, block_time=1.0)
    sock = bound_socket()
    settings = PlatformSettings(
        **{
            "database_url": f"sqlite:///{directory / 'platform.sqlite'}",
            "host": "127.0.0.1",
            "port": sock.getsockname()[1],
            "netuid": NETUID,
            "registration_refresh_seconds": 0.0,
            **overrides,
        }
    )
    server = LiveServer(create_app(settings, chain=chain), sock)
    try:
        server.start()
    except RuntimeError:
        sock.close()
        raise
    try:
        yield LivePlatform(settings.base_url, chain)
    finally:
        server.stop()
        chain.close()
