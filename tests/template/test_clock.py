"""The clock a neuron keeps its deadlines by: the wall clock, or one a test moves forward."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from template.clock import AdjustableClock, Clock


def test_the_clock_is_aware_utc_wall_time() -> None:
    before = datetime.now(timezone.utc)
    now = Clock().now()
    assert now.tzinfo is not None and now.utcoffset().total_seconds() == 0
    assert before <= now <= datetime.now(timezone.utc)


async def test_a_wait_ends_when_the_stop_event_is_set() -> None:
    stop = asyncio.Event()
    for clock in (Clock(), AdjustableClock()):
        waiting = asyncio.create_task(clock.wait(3600, stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(waiting, 10)
        stop.clear()


async def test_advancing_past_a_wait_ends_it_and_moves_now() -> None:
    clock, stop = AdjustableClock(), asyncio.Event()
    before = clock.now()
    waiting = asyncio.create_task(clock.wait(3600, stop))
    await asyncio.sleep(0)
    clock.advance(1800)  # half-way: the wait goes on with what is left
    clock.advance(1800)
    await asyncio.wait_for(waiting, 10)
    assert 3600 <= (clock.now() - before).total_seconds() < 3600 + 60
    await asyncio.wait_for(clock.wait(0, stop), 10)  # nothing left to wait


def test_the_clock_does_not_go_back() -> None:
    with pytest.raises(ValueError, match="does not go back"):
        AdjustableClock().advance(-1)
