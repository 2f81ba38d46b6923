"""A miner's reply is capped, compressed and decoded: bombs and floods are refused with bounded memory.

The miner is a real signed endpoint on loopback (``tests.hostile_miner``: it verifies the
validator's btauth/1 signature as a miner does) and the caller the real ``SignedClient``.
Memory is the process's peak resident size over the call, read from ``/proc/self/status``
after resetting the peak (``/proc/self/clear_refs``), so the figure is the call's alone.
"""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commons.protocol import (
    MAX_SMALL_REPLY_BYTES,
    MAX_TASK_RESULT_REPLY_BYTES,
    Heartbeat,
    HeartbeatReply,
    TaskResultReply,
    TaskResultRequest,
)
from template.http_body import BodyTooLarge, BodyUndecodable, ByteBudget, CappedBody, read_capped
from template.transport import SignedClient, Status, Target
from tests.hostile_miner import HostileMiner, PeakRss

MiB = 1024 * 1024
# What a refused reply may add to the peak: its cap (11 MiB for a task result) and the
# decoder's steps, with room for the allocator. Reading a bomb whole takes over 1 GiB.
RSS_BOUND = 64 * MiB


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        pytest.skip(f"the peak resident size cannot be reset here: {exc}")


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.fixture
async def miner(make_wallet) -> AsyncIterator[object]:
    started: list[HostileMiner] = []

    async def _start(behaviour: str, **kw: int) -> HostileMiner:
        m = HostileMiner(make_wallet(), behaviour, **kw)
        await m.start()
        started.append(m)
        return m

    yield _start
    for m in started:
        await m.stop()


async def _call(make_wallet, miner: HostileMiner, request, reply_model):
    async with SignedClient(make_wallet().hotkey, timeout=60) as client:
        _reset_peak_rss()
        before = _rss("VmRSS")
        outcome = await client.call(Target(miner.hotkey, miner.url), request, reply_model)
        grew = _rss("VmHWM") - before
    assert miner.refused_signatures == 0
    return outcome, grew


async def test_a_gzip_bomb_task_result_reply_is_refused_with_bounded_memory(make_wallet, miner):
    bomb = await miner("bomb_results")
    outcome, grew = await _call(make_wallet, bomb, TaskResultRequest(request_id="r1"), TaskResultReply)
    assert outcome.status is Status.TOO_LARGE, outcome
    assert outcome.reply is None
    assert f"inflates (gzip) to more than {MAX_TASK_RESULT_REPLY_BYTES} bytes" in outcome.detail
    assert grew < RSS_BOUND, f"the peak grew by {grew / MiB:.0f} MiB"
    # The validator hung up long before the bomb's end: it read about a thousandth of the cap's worth.
    assert bomb.bytes_sent < 32 * MiB


async def test_a_gzip_bomb_heartbeat_reply_is_refused_at_a_few_kib(make_wallet, miner):
    bomb = await miner("bomb_heartbeat")
    outcome, grew = await _call(make_wallet, bomb, Heartbeat(), HeartbeatReply)
    assert outcome.status is Status.TOO_LARGE, outcome
    assert f"more than {MAX_SMALL_REPLY_BYTES} bytes" in outcome.detail
    assert grew < RSS_BOUND, f"the peak grew by {grew / MiB:.0f} MiB"


async def test_a_plain_flood_is_refused_on_the_wire(make_wallet, miner):
    flood = await miner("flood_results")
    outcome, grew = await _call(make_wallet, flood, TaskResultRequest(request_id="r1"), TaskResultReply)
    assert outcome.status is Status.TOO_LARGE, outcome
    assert f"more than {MAX_TASK_RESULT_REPLY_BYTES} bytes on the wire" in outcome.detail
    assert grew < RSS_BOUND, f"the peak grew by {grew / MiB:.0f} MiB"
    assert flood.bytes_sent < 200 * MiB


async def test_a_small_gzip_reply_is_decoded_and_accepted(make_wallet, miner):
    # The same stream as a bomb, 100 KiB of whitespace inside: within the cap, so a reply.
    honest = await miner("bomb", bomb_bytes=100 * 1024)
    outcome, _ = await _call(make_wallet, honest, Heartbeat(), HeartbeatReply)
    assert outcome.status is Status.TOO_LARGE  # 100 KiB is over a heartbeat's 4 KiB
    outcome, _ = await _call(make_wallet, honest, TaskResultRequest(request_id="r1"), TaskResultReply)
    assert outcome.status is Status.OK, outcome
    assert outcome.reply is not None and outcome.reply.request_id == "r1"


async def test_the_cap_follows_the_reply_model_and_can_be_given_per_call(make_wallet, miner):
    honest = await miner("honest")
    async with SignedClient(make_wallet().hotkey) as client:
        target = Target(honest.hotkey, honest.url)
        ok = await client.call(target, Heartbeat(), HeartbeatReply)
        small = await client.call(target, Heartbeat(), HeartbeatReply, max_reply_bytes=20)
    assert ok.status is Status.OK and ok.reply is not None and ok.reply.hotkey == honest.hotkey
    assert small.status is Status.TOO_LARGE
    assert "declares" in small.detail and "at most 20" in small.detail


def test_the_task_result_cap_holds_the_largest_reply_the_protocol_allows():
    from datetime import datetime, timezone

    from commons.protocol import MAX_COMPLETIONS, MAX_RATIONALE, MAX_RESULTS, WorkerResult

    widest = "\U0001f600"  # 4 bytes in UTF-8
    results = [
        WorkerResult(
            worker_id=widest * 128,
            criteria_type="multi-score",
            values={f"{'c' * 60}{i:04d}": -1.2345678901234567e-300 for i in range(MAX_COMPLETIONS)},
            submitted_at=datetime.now(timezone.utc),
            rationale=widest * MAX_RATIONALE,
        )
    ] * MAX_RESULTS
    reply = TaskResultReply(request_id="r" * 64, results=results)
    size = len(reply.model_dump_json().encode())
    assert size <= MAX_TASK_RESULT_REPLY_BYTES / 2  # and the margin on top
    assert 16 * MiB > MAX_TASK_RESULT_REPLY_BYTES


async def _chunks(data: bytes, step: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def test_codings_not_asked_for_and_corrupt_streams_are_refused():
    with pytest.raises(BodyUndecodable, match="'br' was not asked for"):
        await read_capped(_chunks(b"x"), 100, content_encoding="br")
    with pytest.raises(BodyUndecodable, match="corrupt"):
        await read_capped(_chunks(b"not gzip at all"), 100, content_encoding="gzip")
    # deflate: a zlib stream, or a raw one, both read.
    text = b'{"ok": true}'
    assert await read_capped(_chunks(zlib.compress(text)), 100, content_encoding="deflate") == text
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert (
        await read_capped(_chunks(raw.compress(text) + raw.flush()), 100, content_encoding="deflate") == text
    )
    # Two codings, one over the other: each is undone, each within the cap.
    twice = zlib.compress(zlib.compress(b" " * 10_000))
    with pytest.raises(BodyTooLarge):
        await read_capped(_chunks(twice), 5_000, content_encoding="deflate, deflate")
    assert len(await read_capped(_chunks(twice), 10_000, content_encoding="deflate, deflate")) == 10_000


def test_a_capped_body_never_decodes_much_past_its_cap():
    bomb = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = bomb.compress(b" " * (50 * MiB)) + bomb.flush()
    assert len(data) < 100_000
    body = CappedBody(200_000, "gzip", what="the reply")
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="the reply inflates"):
            body.feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 * MiB, f"{peak} bytes allocated to refuse a 50 MiB bomb with a 200 kB cap"


async def test_replies_read_at_once_hold_no_more_than_the_clients_budget_together(make_wallet, miner):
    # Eight miners each answer a valid task result reply of 10 MiB (padding within the 11 MiB
    # cap), all at once. Read side by side they would hold 80 MiB; the budget is 24 MiB.
    miners = [await miner("flood_results", flood_bytes=10 * MiB) for _ in range(8)]
    targets = [Target(m.hotkey, m.url) for m in miners]
    budget = 24 * MiB
    async with SignedClient(make_wallet().hotkey, timeout=60, max_buffered_bytes=budget) as client:
        with PeakRss() as peak:
            outcomes = await client.fanout(targets, TaskResultRequest(request_id="r1"), TaskResultReply)
        assert client.budget.free == budget  # every reservation given back
    assert [o.status for o in outcomes] == [Status.OK] * 8, [o.detail for o in outcomes]
    if not peak.available:
        pytest.skip("the peak resident size cannot be reset here")
    assert peak.grew < 56 * MiB, f"the peak grew by {peak.grew / MiB:.0f} MiB"


async def test_a_byte_budget_serves_any_waiter_that_fits_and_survives_cancellation():
    budget = ByteBudget(100)
    assert await budget.take(80) == 80
    big = asyncio.ensure_future(budget.take(50))  # does not fit: waits
    small = asyncio.ensure_future(budget.take(20))  # fits beside the 80: not queued behind the 50
    assert await asyncio.wait_for(small, 5) == 20
    assert not big.done()
    budget.give(20)
    budget.give(80)
    assert await asyncio.wait_for(big, 5) == 50
    assert budget.free == 50
    waiting = asyncio.ensure_future(budget.take(60))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    budget.give(50)
    assert budget.free == 100
    assert await budget.take(1_000) == 100  # more than the budget: cut to it
