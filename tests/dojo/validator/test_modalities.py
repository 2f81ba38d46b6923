"""Every content kind from the validator to miners: the kind drawn from ``--synthetic.mix`` and
recorded with the task, images written anew before they are sent, model labels a miner's own,
and a miner that predates a kind refusing it cleanly (422, by the protocol's rules) and scoring
0 on it while it keeps taking the kinds it knows."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commons.protocol import FeedbackRequest, ImageContent
from dojo.validator.models import Assignment, CollectStatus, SendStatus, Task, TaskCompletion
from template.transport import SignedServer
from tests.dojo.validator import released_protocol as v1
from tests.dojo.validator.test_neuron import FakeMiner, _collect_until_settled, network  # noqa: F401


class OldMiner(FakeMiner):
    """A miner of the release before images: its endpoint validates with that protocol."""

    def __init__(self, name: str, wallet: Any, chain: Any, behaviour: str) -> None:
        super().__init__(name, wallet, chain, behaviour)
        self.server = SignedServer(wallet.hotkey, chain.metagraph, handler_timeout=10)
        self.server.route(v1.Heartbeat, self.heartbeat)
        self.server.route(v1.FeedbackRequest, self.feedback_v1)
        self.server.route(v1.TaskResultRequest, self.results)
        self.server.route(v1.ScoringResult, self.scoring)

    async def feedback_v1(self, request: Any, caller: Any) -> Any:
        # What it accepted, read again with today's models, for the results it will give.
        return await self.feedback(FeedbackRequest.model_validate(request.model_dump()), caller)


async def test_each_kind_is_drawn_from_the_mix_and_recorded(network):  # noqa: F811
    neuron, miners = await network(
        ["good", "good"], **{"--synthetic.mix": "text:1,dialogue:1,image:1,code:0"}
    )
    for _ in range(9):
        await neuron.task_round()
    with Session(neuron.store.engine) as db:
        kinds = Counter(db.scalars(select(Task.task_type)))
        assert set(kinds) <= {"text", "dialogue", "image"} and sum(kinds.values()) == 9
        contents = {c.content["kind"] for c in db.scalars(select(TaskCompletion))}
    assert contents == set(kinds)
    sent = [r for m in miners for r in m.sent.values()]
    assert {r.task_type for r in sent} == set(kinds)
    for request in sent:
        assert {c.content.kind for c in request.completions} == {request.task_type}
        # Labels are the miner's own random ones, never the generator's.
        assert all(c.model.startswith("model-") and "procedural" not in c.model for c in request.completions)
        assert len({c.model for c in request.completions}) == len(request.completions)


async def test_a_miner_that_predates_images_refuses_them_cleanly_and_scores_zero_on_them(network):  # noqa: F811
    neuron, miners = await network(["good", "good", "good"], **{"--synthetic.mix": "image:1"})
    chain = neuron.chain
    # Replace the third miner's endpoint by one of the previous release.
    old = miners[2]
    old.server.stop()
    assert old.serving is not None
    await asyncio.wait_for(old.serving, 10)  # its port is free once its server has returned
    upgraded_port = old.port
    stale = OldMiner("old", old.wallet, chain, "good")
    stale.port = upgraded_port
    ready = asyncio.Event()
    serving = asyncio.create_task(stale.server.serve("127.0.0.1", stale.port, ready))
    await asyncio.wait_for(ready.wait(), 10)
    stale.oracle = miners[0].oracle
    try:
        await neuron.heartbeat_round()
        assert len(neuron.active_uids) == 3  # same protocol version: it stays active
        image_task = await neuron.task_round()
        with Session(neuron.store.engine) as db:
            rows = {
                a.miner_hotkey: a
                for a in db.scalars(select(Assignment).where(Assignment.task_id == image_task))
            }
            completions = db.scalars(select(TaskCompletion).where(TaskCompletion.task_id == image_task)).all()
        refused = rows[stale.hotkey]
        assert refused.send_status == SendStatus.REFUSED
        assert "422" in refused.send_detail and "image" in refused.send_detail
        assert all(rows[m.hotkey].send_status == SendStatus.ACCEPTED for m in miners[:2])
        # What the upgraded miners got is the validator's own re-encoding of each image.
        sent = next(iter(miners[0].sent.values()))
        assert all(isinstance(c.content, ImageContent) for c in sent.completions)
        assert {c.content["data"] for c in completions} == {c.content.data for c in sent.completions}
        # The old miner still takes the kinds it knows.
        neuron.config.synthetic.__dict__["mix"] = "code:1"
        code_task = await neuron.task_round()
        with Session(neuron.store.engine) as db:
            old_code = db.scalars(
                select(Assignment).where(
                    Assignment.task_id == code_task, Assignment.miner_hotkey == stale.hotkey
                )
            ).one()
        assert old_code.send_status == SendStatus.ACCEPTED
        neuron.clock.advance(1.2)  # past the 1 s deadline
        await _collect_until_settled(neuron)
        await neuron.scoring_round()
        with Session(neuron.store.engine) as db:
            scores = {
                (a.task_id, a.miner_hotkey): (a.collect_status, a.score)
                for a in db.scalars(select(Assignment))
            }
        assert scores[(image_task, stale.hotkey)][1] == 0.0
        assert scores[(image_task, stale.hotkey)][0] != CollectStatus.COLLECTED
        assert scores[(code_task, stale.hotkey)][1] > 0.5
        assert all(scores[(image_task, m.hotkey)][1] > 0.5 for m in miners[:2])
    finally:
        stale.server.stop()
        await asyncio.wait_for(serving, 10)
