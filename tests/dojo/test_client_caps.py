"""Every HTTP client in dojo caps what it reads: a gzip bomb is refused with that client's error.

The server is real (``tests.hostile_miner.BombServer`` on loopback): 1 GiB of JSON whitespace
in about 1 MiB of gzip. The LLM client, the simulated workers (platform and Label Studio), the
miner's Label Studio backend (through the official SDK, given a capped httpx client) and the
validator's webhook sender each refuse it or drain only a little of it, and the process's peak
may grow by little.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from dojo.miner.backends import label_studio as ls_backend
from dojo.miner.backends._base import BackendBroken
from dojo.synthetic import llm
from dojo.synthetic.backend import TaskBudget
from dojo.synthetic.llm import ChatClient, ChatError, LLMSettings
from dojo.workers import Behaviour, SimulatedWorker
from dojo.workers._label_studio import LabelStudioAnnotator
from dojo.workers._worker import MAX_REPLY_BYTES as WORKER_REPLY_BYTES
from tests.hostile_miner import BombServer, PeakRss

MiB = 1024 * 1024
RSS_BOUND = 128 * MiB  # a 32 MiB cap (the LLM's) and the decoder's steps, with room for the allocator


class _Answer(BaseModel):
    text: str


def _bounded(peak: PeakRss) -> None:
    if not peak.available:
        pytest.skip("the peak resident size cannot be reset here")
    assert peak.grew < RSS_BOUND, f"the peak grew by {peak.grew / MiB:.0f} MiB"


async def test_the_llm_client_refuses_a_gzip_bomb_without_retrying():
    async with BombServer() as bomb:
        chat = ChatClient(LLMSettings(base_url=bomb.url, api_key="k", max_retries=3))
        with (
            PeakRss() as peak,
            pytest.raises(ChatError, match=f"inflates \\(gzip\\) to more than {llm.MAX_REPLY_BYTES} bytes"),
        ):
            await chat.post_json("/embeddings", {"input": ["x"]}, None, "embeddings")
        await chat.aclose()
    _bounded(peak)
    assert bomb.requests == 1


async def test_the_llm_client_refuses_a_bombed_chat_answer():
    async with BombServer() as bomb:
        chat = ChatClient(LLMSettings(base_url=bomb.url, api_key="k"))
        with pytest.raises(ChatError, match="more than"):
            await chat.ask("m", [{"role": "user", "content": "hi"}], _Answer, TaskBudget(60.0, 10**6))
        await chat.aclose()


async def _errors_seen(stats, stop: asyncio.Event, count: int) -> None:
    # The worker's errors are a counter with no event to wait on: look at it often.
    while stats.errors < count:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    stop.set()


async def test_a_simulated_worker_counts_a_bombed_platform_as_errors_and_goes_on():
    async with BombServer() as bomb:
        worker = SimulatedWorker(bomb.url, Behaviour("honest"), name="w", subscription_key="sk")
        stop = asyncio.Event()
        with PeakRss() as peak:
            await asyncio.wait_for(asyncio.gather(worker.run(stop), _errors_seen(worker.stats, stop, 2)), 60)
    _bounded(peak)
    assert worker.stats.errors >= 2 and bomb.requests >= 2
    assert bomb.bytes_sent < 2 * WORKER_REPLY_BYTES


async def test_a_label_studio_annotator_counts_a_bombed_server_as_errors():
    async with BombServer() as bomb:
        annotator = LabelStudioAnnotator(bomb.url, Behaviour("honest"), name="a")
        stop = asyncio.Event()
        with PeakRss() as peak:
            await asyncio.wait_for(
                asyncio.gather(annotator.run(stop), _errors_seen(annotator.stats, stop, 1)), 60
            )
    _bounded(peak)


async def test_the_label_studio_backend_refuses_a_bomb_through_the_sdk():
    async with BombServer() as bomb:
        backend = ls_backend.LabelStudioBackend(bomb.url, "token", miner_hotkey="5Miner")
        with (
            PeakRss() as peak,
            pytest.raises(BackendBroken, match=f"more than {ls_backend.MAX_REPLY_BYTES} bytes"),
        ):
            await backend.project("text", 3)
        await backend.aclose()
    _bounded(peak)
