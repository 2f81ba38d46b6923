"""The time a neuron keeps its deadlines by, as an object it can be handed.

:class:`Clock` is the wall clock (aware UTC) and waits that end early when the neuron
stops. :class:`AdjustableClock` runs at the same pace but can be moved forward at once
(:meth:`AdjustableClock.advance`), ending the waits it overtakes: a test passes a deadline
without sleeping through it, and what it then checks happened because the deadline passed.

>>> import asyncio
>>> clock = AdjustableClock()
>>> before = clock.now()
>>> clock.advance(3600)
>>> round((clock.now() - before).total_seconds())
3600
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone

__all__ = ["AdjustableClock", "Clock", "utcnow"]


def utcnow() -> datetime:
    """Now, aware UTC: the one "now" of the neurons' messages and databases."""
    return datetime.now(timezone.utc)


class Clock:
    """The wall clock, and waits a stop event cuts short."""

    def now(self) -> datetime:
        """The time, aware UTC."""
        return utcnow()

    async def wait(self, seconds: float, stop: asyncio.Event) -> None:
        """Wait ``seconds`` (nothing for 0 or less), or until ``stop`` is set."""
        if seconds > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)


class AdjustableClock(Clock):
    """The wall clock plus an offset that :meth:`advance` grows: time goes on as usual and
    jumps when told. A wait ends when this clock, not the wall clock, reaches its end."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return super().now() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward; waits that end by then end now."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._offset += timedelta(seconds=seconds)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait(self, seconds: float, stop: asyncio.Event) -> None:
        end = self.now() + timedelta(seconds=seconds)
        while not stop.is_set():
            left = (end - self.now()).total_seconds()
            if left <= 0:
                return
            moved = asyncio.ensure_future(self._moved.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({moved, stopped}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                moved.cancel()
                stopped.cancel()
