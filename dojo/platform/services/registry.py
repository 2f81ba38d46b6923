"""Is this hotkey registered on the subnet? Answered from a metagraph snapshot.

The snapshot is refreshed when it is older than ``refresh_seconds`` (the next request that
asks refreshes it, one at a time), so log-ins do not each hit the chain. A hotkey missing
from a snapshot older than ``miss_refresh_seconds`` triggers one early refresh, so a miner
who has just registered need not wait out the full interval. If a refresh fails the last
snapshot keeps answering (with a warning); with none at all the error propagates.
"""

from __future__ import annotations

import threading
import time

from loguru import logger

from template.chain import Chain, ChainError


class HotkeyRegistry:
    def __init__(self, chain: Chain, refresh_seconds: float = 12.0, miss_refresh_seconds: float = 2.0):
        self.chain = chain
        self.netuid = chain.netuid
        self.refresh_seconds = refresh_seconds
        self.miss_refresh_seconds = min(miss_refresh_seconds, refresh_seconds)
        self._hotkeys: frozenset[str] | None = None
        self._taken_at = 0.0
        self._lock = threading.Lock()

    def is_registered(self, hotkey: str) -> bool:
        """Blocking (it may read the chain): call from a worker thread in async code."""
        hotkeys = self._snapshot(max_age=self.refresh_seconds)
        if hotkey in hotkeys:
            return True
        return hotkey in self._snapshot(max_age=self.miss_refresh_seconds)

    def _snapshot(self, max_age: float) -> frozenset[str]:
        if self._hotkeys is not None and time.monotonic() - self._taken_at <= max_age:
            return self._hotkeys
        with self._lock:
            if self._hotkeys is not None and time.monotonic() - self._taken_at <= max_age:
                return self._hotkeys
            try:
                metagraph = self.chain.metagraph()
            except ChainError as exc:  # the adapters raise nothing else for a chain fault: fall back, loudly
                if self._hotkeys is None:
                    raise
                logger.warning(
                    "metagraph refresh failed, keeping the snapshot from {:.0f} s ago: {}: {}",
                    time.monotonic() - self._taken_at,
                    type(exc).__name__,
                    exc,
                )
                return self._hotkeys
            self._hotkeys = frozenset(metagraph.hotkeys)
            self._taken_at = time.monotonic()
            logger.debug(
                "metagraph snapshot: {} hotkeys on subnet {} at block {}",
                len(self._hotkeys),
                self.netuid,
                metagraph.block,
            )
            return self._hotkeys
