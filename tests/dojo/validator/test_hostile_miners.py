"""The validator against miners whose replies attack its memory: each is that miner's failure.

The miners are real signed endpoints on loopback (``tests.hostile_miner``), registered and
served on a local chain; the validator is the real ``ValidatorNeuron``, its loops' steps called
one by one so that each outcome can be read from its database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dojo.validator.config import ValidatorConfig
from dojo.validator.models import Assignment, CollectStatus, SendStatus
from dojo.validator.neuron import ValidatorNeuron
from template.chain.local import LocalChain
from template.clock import AdjustableClock
from template.config import resolve
from tests.dojo.validator.test_neuron import validator_flags
from tests.hostile_miner import HostileMiner, PeakRss

NETUID = 1
MiB = 1024 * 1024


@pytest.fixture
async def subnet(tmp_path: Path, make_wallet) -> AsyncIterator[Callable[..., Any]]:
    miners: list[HostileMiner] = []
    neurons: list[ValidatorNeuron] = []

    async def build(behaviours: list[str]) -> tuple[ValidatorNeuron, list[HostileMiner]]:
        chain = LocalChain.init(tmp_path / "chain", netuid=NETUID, block_time=0.2, weights_rate_limit=1)
        validator = make_wallet("validator")
        chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, stake=1000.0)
        for behaviour in behaviours:
            wallet = make_wallet()
            chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
            miner = HostileMiner(wallet, behaviour)
            await miner.start()
            chain.serve_axon(wallet, "127.0.0.1", miner.port)
            miners.append(miner)
        settings = {
            **validator_flags(tmp_path),
            "--neuron.timeout": "10",
            "--neuron.task_deadline": "1",
            "--neuron.collection_grace": "30",
            "--neuron.epoch_length": "1",
        }
        config = resolve(
            ValidatorConfig, [x for kv in settings.items() for x in kv], environ={}, env_file=None
        )
        neuron = ValidatorNeuron(
            config, chain=LocalChain(tmp_path / "chain", NETUID), clock=AdjustableClock()
        )
        neurons.append(neuron)
        return neuron, miners

    yield build
    for miner in miners:
        await miner.stop()
    for neuron in neurons:
        await neuron.shutdown()


async def test_bombs_and_floods_are_the_miners_failure_and_the_validator_stays_small(subnet):
    neuron, miners = await subnet(["honest", "bomb_heartbeat", "bomb_results", "flood_results", "honest"])
    by_behaviour = {m.behaviour: m for m in miners}
    uid = {m.hotkey: n.uid for m in miners for n in neuron.metagraph.neurons if n.hotkey == m.hotkey}

    # A heartbeat bomb: the miner is not active, and the validator is none the worse.
    with PeakRss() as heartbeat_peak:
        active = await neuron.heartbeat_round()
    if not heartbeat_peak.available:
        pytest.skip("the peak resident size cannot be reset here")
    assert heartbeat_peak.grew < 32 * MiB, (
        f"the heartbeat round's peak grew by {heartbeat_peak.grew / MiB:.0f} MiB"
    )
    assert uid[by_behaviour["bomb_heartbeat"].hotkey] not in active
    assert active == {uid[m.hotkey] for m in miners if m.behaviour != "bomb_heartbeat"}

    await neuron.task_round()
    rows = _assignments(neuron)
    assert by_behaviour["bomb_heartbeat"].hotkey not in rows
    assert all(a.send_status == SendStatus.ACCEPTED for a in rows.values())

    # Past the 1 s deadline, collect until no assignment is pending.
    neuron.clock.advance(1.2)
    give_up = time.monotonic() + 60
    with PeakRss() as collection_peak:
        while any(a.collect_status == CollectStatus.PENDING for a in _assignments(neuron).values()):
            assert time.monotonic() < give_up, "the collection did not settle"
            await neuron.collect_due()
            await asyncio.sleep(0.2)
    grew = collection_peak.grew

    rows = _assignments(neuron)
    honest = [m for m in miners if m.behaviour == "honest"]
    assert all(rows[m.hotkey].collect_status == CollectStatus.COLLECTED for m in honest)
    for behaviour, words in (("bomb_results", "inflates (gzip)"), ("flood_results", "on the wire")):
        row = rows[by_behaviour[behaviour].hotkey]
        # Refused once and for all, with the reason: not retried, as a timeout would be.
        assert row.collect_status == CollectStatus.NO_RESULT, (behaviour, row.collect_detail)
        assert row.collect_detail.startswith("too_large 200: ") and words in row.collect_detail
        assert row.collect_attempts == 1
    # Two replies at their 11 MiB cap at once, and the decoder's steps; reading either whole takes gigabytes.
    assert grew < 64 * MiB, f"the collection's peak grew by {grew / MiB:.0f} MiB"

    # Scored as any miner without results: zero.
    await neuron.scoring_round()
    rows = _assignments(neuron)
    assert rows[by_behaviour["bomb_results"].hotkey].score == 0.0
    assert rows[by_behaviour["flood_results"].hotkey].score == 0.0


def _assignments(neuron: ValidatorNeuron) -> dict[str, Assignment]:
    with Session(neuron.store.engine) as db:
        return {a.miner_hotkey: a for a in db.scalars(select(Assignment))}
