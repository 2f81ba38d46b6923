"""The validator against miners that misbehave: every outcome recorded, no loop stalled.

Each miner here is a real signed endpoint on loopback (``SignedServer``) registered and
served on a local chain, with handlers that answer well, refuse, time out, answer with
garbage or are not there at all. The validator is the real ``ValidatorNeuron``; its loops'
steps are called one by one so that each outcome can be checked in its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger
from sqlalchemy import select
from sqlalchemy.orm import Session

from commons.protocol import (
    Ack,
    FeedbackReply,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    ScoringResult,
    TaskResultReply,
    TaskResultRequest,
    WorkerResult,
)
from commons.synthetic_api import SyntheticAPIClient
from dojo.export import ExportOptions, ScheduledExport, export_dataset
from dojo.localnet.net import free_port
from dojo.synthetic.settings import ServiceSettings
from dojo.validator.config import ValidatorConfig
from dojo.validator.models import (
    Assignment,
    CollectStatus,
    MinerResult,
    MinerScore,
    SendStatus,
    Task,
    TaskStatus,
    WeightSet,
)
from dojo.validator.neuron import EARLY_LOOK_INTERVAL, ValidatorNeuron
from dojo.workers import ValidatorDatabaseOracle
from template.chain import Metagraph
from template.chain.local import LocalChain
from template.clock import AdjustableClock, utcnow
from template.config import resolve
from template.transport import HandlerRefusal, SignedServer
from tests.dojo.synthetic.test_service import running as running_service

NETUID = 1
# --neuron.timeout where no call is meant to time out: a bound on a hang, which no answer on
# loopback comes near however busy the machine. A test in which a call must time out gives a
# short one, and its slow miner holds its answer until the test releases it.
CALL_TIMEOUT = "30"
# The bound on a wait for something the test expects to happen.
WAIT_WITHIN = 60.0


def validator_flags(tmp_path: Path) -> dict[str, str]:
    """The command-line flags of a validator on the test's local chain, wallet and data folder,
    with a free axon port and W&B off."""
    return {
        "--netuid": str(NETUID),
        "--subtensor.network": str(tmp_path / "chain"),
        "--wallet.name": "validator",
        "--wallet.path": str(tmp_path / "wallets"),
        "--axon.ip": "127.0.0.1",
        "--axon.port": str(free_port()),
        "--neuron.data_dir": str(tmp_path / "validator"),
        "--wandb.off": "true",
    }


class FakeMiner:
    """A miner endpoint whose answers the test chooses; it remembers what it was sent."""

    def __init__(self, name: str, wallet: Any, chain: LocalChain, behaviour: str):
        self.name = name
        self.wallet = wallet
        self.hotkey = wallet.hotkey.ss58_address
        self.behaviour = behaviour
        self.port = free_port()
        self.sent: dict[str, FeedbackRequest] = {}
        self.received: dict[str, float] = {}  # request id -> when it came (time.monotonic)
        self.scores: list[ScoringResult] = []
        self.result_calls = 0
        self.oracle: Any = None
        # A slow or silent miner answers only once released (or after a minute); ``answered``
        # says the slow one did.
        self.release = asyncio.Event()
        self.answered = False
        self.serving: asyncio.Task[None] | None = None  # the server's task, once it serves
        self.server = SignedServer(wallet.hotkey, chain.metagraph, handler_timeout=10)
        self.server.route(Heartbeat, self.heartbeat)
        self.server.route(FeedbackRequest, self.feedback)
        self.server.route(TaskResultRequest, self.results)
        self.server.route(ScoringResult, self.scoring)

    async def heartbeat(self, request: Heartbeat, caller: Any) -> HeartbeatReply:
        return HeartbeatReply(hotkey=self.hotkey)

    async def feedback(self, request: FeedbackRequest, caller: Any) -> FeedbackReply:
        if self.behaviour == "refuses":
            raise HandlerRefusal(503, "worker platform unavailable")
        self.sent[request.request_id] = request
        self.received[request.request_id] = time.monotonic()
        if self.behaviour == "slow":
            try:
                await self._held()
            finally:
                self.answered = True
        request_id = "someone-else" if self.behaviour == "wrong_id" else request.request_id
        return FeedbackReply(request_id=request_id, dojo_task_id=f"dojo-{request.request_id}")

    async def _held(self) -> None:
        """Until the test releases this miner (the fixture does at the end), at most a minute."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.release.wait(), WAIT_WITHIN)

    def _ranking(self, request: FeedbackRequest, best_first: bool = True) -> dict[str, float]:
        # The workers' side of the simulation learns the truth from the validator's database,
        # as the simulated workers do; nothing the validator sent carries it.
        truth = self.oracle.true_ranks([c.completion_id for c in request.completions])
        assert truth is not None and len(truth) == len(request.completions)
        n = len(truth)
        return {cid: float(rank if best_first else n + 1 - rank) for cid, rank in truth.items()}

    async def results(self, request: TaskResultRequest, caller: Any) -> TaskResultReply:
        self.result_calls += 1
        sent = self.sent.get(request.request_id)
        if sent is None:
            raise HandlerRefusal(404, "unknown request")
        now = utcnow()
        good = [
            WorkerResult(
                worker_id=f"w{i:024x}", criteria_type="ranking", values=self._ranking(sent), submitted_at=now
            )
            for i in range(3)
        ]
        if self.behaviour == "flaky" and self.result_calls == 1:
            raise HandlerRefusal(502, "platform hiccup")  # a 5xx: the validator asks again later
        if self.behaviour == "garbage":
            bad = dict(good[0].values)
            bad["not-a-completion"] = bad.pop(next(iter(bad)))
            good[1] = good[1].model_copy(update={"values": bad})
        if self.behaviour == "duplicate_worker":
            good[2] = good[2].model_copy(update={"worker_id": f"w{0:024x}"})
        if self.behaviour == "partial":
            good[0] = good[0].model_copy(update={"values": dict(list(good[0].values.items())[:-1])})
        if self.behaviour == "liar":
            good = [g.model_copy(update={"values": self._ranking(sent, best_first=False)}) for g in good]
        if self.behaviour == "silent":
            await self._held()
        if self.behaviour == "empty":
            good = []
        if self.behaviour == "invents_workers":  # a thousand workers it was never asked for
            good = [g.model_copy(update={"worker_id": f"w{i:024x}"}) for i in range(1_000) for g in good[:1]]
        if self.behaviour == "forges_log":  # a worker id that ends the line and writes another
            forged = [g.model_construct(**{**dict(g), "worker_id": FORGED}) for g in good[:2]]
            return TaskResultReply.model_construct(request_id=request.request_id, results=forged)
        if self.behaviour == "names_workers":  # not the pseudonym form
            good = [g.model_copy(update={"worker_id": f"alice-{i}"}) for i, g in enumerate(good)]
        if self.behaviour == "filling" and self.result_calls == 1:
            good = good[:2]  # the third worker is still at it
        return TaskResultReply(request_id=request.request_id, results=good)

    async def scoring(self, request: ScoringResult, caller: Any) -> Ack:
        self.scores.append(request)
        return Ack()


@pytest.fixture
async def network(tmp_path: Path, make_wallet):
    """Builds a local chain, a validator and one fake miner per behaviour; stops them all after."""
    tasks: list[asyncio.Task] = []
    miners: list[FakeMiner] = []
    neurons: list[ValidatorNeuron] = []

    async def build(
        behaviours: list[str], env_file: Path | None = None, block_time: float = 0.2, **flags: str
    ) -> tuple[ValidatorNeuron, list[FakeMiner]]:
        chain = LocalChain.init(
            tmp_path / "chain", netuid=NETUID, block_time=block_time, weights_rate_limit=1, exist_ok=True
        )
        validator = make_wallet("validator")
        chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, stake=1000.0)
        serving: set[int] = set()
        for i, behaviour in enumerate(behaviours):
            wallet = make_wallet(f"miner{i}")
            uid = chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address)
            miner = FakeMiner(f"miner{i}", wallet, chain, behaviour)
            if behaviour != "down":
                serving.add(uid)
                ready = asyncio.Event()
                miner.serving = asyncio.create_task(miner.server.serve("127.0.0.1", miner.port, ready))
                tasks.append(miner.serving)
                await asyncio.wait_for(ready.wait(), 10)
            chain.serve_axon(wallet, "127.0.0.1", miner.port)
            miners.append(miner)
        settings = {
            **validator_flags(tmp_path),
            "--neuron.timeout": CALL_TIMEOUT,
            "--neuron.task_deadline": "1",
            "--neuron.collection_grace": "2",
            "--neuron.epoch_length": "1",
            **flags,
        }
        config = resolve(
            ValidatorConfig, [x for kv in settings.items() for x in kv], environ={}, env_file=env_file
        )
        # A clock the test moves past deadlines, instead of sleeping through them.
        neuron = ValidatorNeuron(
            config,
            chain=LocalChain(tmp_path / "chain", NETUID),
            clock=AdjustableClock(),
            export=ScheduledExport(),
        )
        neurons.append(neuron)
        for miner in miners:
            miner.oracle = ValidatorDatabaseOracle(neuron.store.url)
        # Every miner that serves is seen active before the test starts: with a test's short
        # --neuron.timeout a busy machine may make one miss a round, so ask again until none has.
        deadline = time.monotonic() + WAIT_WITHIN
        while not serving <= await neuron.heartbeat_round():
            assert time.monotonic() < deadline, f"uids {sorted(serving)} did not all answer a heartbeat"
        return neuron, miners

    yield build
    for miner in miners:
        miner.release.set()
        miner.server.stop()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
    for neuron in neurons:
        await neuron.shutdown()


def _assignments(neuron: ValidatorNeuron) -> dict[str, Assignment]:
    with Session(neuron.store.engine) as db:
        return {a.miner_hotkey: a for a in db.scalars(select(Assignment))}


async def _collect_until_settled(neuron: ValidatorNeuron, seconds: float = WAIT_WITHIN) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await neuron.collect_due()
        with Session(neuron.store.engine) as db:
            if all(t.status == TaskStatus.COLLECTED for t in db.scalars(select(Task))):
                return
        await asyncio.sleep(0.3)
    raise AssertionError("the tasks were not collected in time")


async def test_another_validator_answering_heartbeats_is_not_sampled_as_a_miner(network, tmp_path):
    """On a subnet of several validators each one's endpoint answers heartbeats; one with a
    permit and more stake than --neuron.vpermit_tao_limit is a validator, sent no task."""
    neuron, miners = await network(["good", "good"], **{"--neuron.vpermit_tao_limit": "500"})
    assert neuron.active_uids == {1, 2}
    chain = LocalChain(tmp_path / "chain", NETUID)
    other = miners[1].wallet  # staked now: a validator holding a permit, still answering heartbeats
    chain.register(other.hotkey.ss58_address, other.coldkeypub.ss58_address, stake=1000.0)
    await neuron.resync()
    assert neuron.metagraph.get(other.hotkey.ss58_address).validator_permit
    assert await neuron.heartbeat_round() == {1}
    await neuron.task_round()
    assert set(_assignments(neuron)) == {miners[0].wallet.hotkey.ss58_address}


async def test_every_send_outcome_is_recorded_and_a_slow_miner_stalls_nothing(network):
    # The fan-out's time-out is 3 s (three times --neuron.timeout); the others answer at once.
    neuron, miners = await network(
        ["good", "refuses", "slow", "wrong_id", "down"], **{"--neuron.timeout": "1"}
    )
    by_name = {m.name: m for m in miners}
    assert neuron.active_uids == {1, 2, 3, 4}  # the miner that is down did not answer its heartbeat
    neuron.active_uids = {1, 2, 3, 4, 5}  # send to it anyway: it was up at the last heartbeat
    task_id = await neuron.task_round()
    # Done within the call's timeout, while the slow miner still holds its answer back.
    slow = by_name["miner2"]
    assert slow.sent and not slow.answered
    slow.release.set()
    rows = _assignments(neuron)
    status = {m.name: rows[m.hotkey].send_status for m in miners}
    assert status == {
        "miner0": SendStatus.ACCEPTED,
        "miner1": SendStatus.REFUSED,
        "miner2": SendStatus.TIMEOUT,
        "miner3": SendStatus.REFUSED,
        "miner4": SendStatus.UNREACHABLE,
    }
    assert rows[by_name["miner0"].hotkey].dojo_task_id.startswith("dojo-")
    assert "503" in rows[by_name["miner1"].hotkey].send_detail
    with Session(neuron.store.engine) as db:
        assert db.get(Task, task_id).status == TaskStatus.WAITING
    # Each miner got its own request id and completion ids, and no ground truth.
    requests = [m.sent for m in miners if m.sent]
    ids = [set(c.completion_id for c in r.completions) for s in requests for r in s.values()]
    assert len(ids) == 3 and not (ids[0] & ids[1]) and not (ids[0] & ids[2])
    body = next(iter(by_name["miner0"].sent.values())).model_dump_json()
    assert "ground_truth" not in body


async def test_bad_results_are_refused_with_the_reason_and_score_zero(network):
    neuron, miners = await network(
        ["good", "good", "garbage", "duplicate_worker", "partial", "empty", "liar"]
    )
    await neuron.task_round()
    neuron.clock.advance(1.2)  # past the 1 s deadline
    await _collect_until_settled(neuron)
    rows = _assignments(neuron)
    outcome = {m.behaviour: (rows[m.hotkey].collect_status, rows[m.hotkey].collect_detail) for m in miners}
    assert outcome["good"][0] == CollectStatus.COLLECTED
    assert outcome["garbage"][0] == CollectStatus.INVALID and "not given" in outcome["garbage"][1]
    assert (
        outcome["duplicate_worker"][0] == CollectStatus.INVALID and "twice" in outcome["duplicate_worker"][1]
    )
    assert outcome["partial"][0] == CollectStatus.INVALID and "misses" in outcome["partial"][1]
    assert outcome["empty"][0] == CollectStatus.NO_RESULT
    assert outcome["liar"][0] == CollectStatus.COLLECTED
    round_id = await neuron.scoring_round()
    assert round_id == 1
    await neuron.send_scores()
    rows = _assignments(neuron)
    scores = {m.behaviour: rows[m.hotkey].score for m in miners}
    assert scores["good"] > 0.5
    for refused in ("garbage", "duplicate_worker", "partial", "empty", "liar"):
        assert scores[refused] == 0.0, (refused, scores)
    # Each miner is told its own score, and only its own.
    for miner in miners:
        assert [(s.hotkey, s.score) for s in miner.scores] == [(miner.hotkey, rows[miner.hotkey].score)]
    # A second scoring pass finds nothing new and sends nothing twice.
    assert await neuron.scoring_round() is None
    await neuron.send_scores()
    assert all(len(m.scores) == 1 for m in miners)


async def test_invented_workers_are_refused_and_never_reach_the_export(network, tmp_path):
    neuron, miners = await network(["good", "good", "invents_workers", "names_workers"])
    await neuron.task_round()
    neuron.clock.advance(1.2)  # past the 1 s deadline
    await _collect_until_settled(neuron)
    rows = _assignments(neuron)
    outcome = {m.behaviour: (rows[m.hotkey].collect_status, rows[m.hotkey].collect_detail) for m in miners}
    assert outcome["invents_workers"][0] == CollectStatus.INVALID
    assert "names 1000 workers" in outcome["invents_workers"][1]
    assert outcome["names_workers"][0] == CollectStatus.INVALID
    assert "not a worker pseudonym" in outcome["names_workers"][1]
    assert await neuron.scoring_round() == 1
    rows = _assignments(neuron)
    assert rows[miners[2].hotkey].score == 0.0 and rows[miners[3].hotkey].score == 0.0
    summary = await asyncio.to_thread(
        export_dataset,
        neuron.store.url,
        tmp_path / "export",
        ExportOptions(format="jsonl", min_agreement=0.0),
    )
    assert summary.tasks == 1
    [task] = [json.loads(line) for line in (tmp_path / "export" / "tasks.jsonl").read_text().splitlines()]
    # Only the two honest miners' answers, with their three workers each.
    assert sorted(len(m["workers"]) for m in task["miners"]) == [3, 3]


FORGED = "w1\n2026-01-01 00:00:00.000 | ERROR   | validator | forged line\x1b[2J"


async def test_a_worker_id_that_would_forge_a_log_line_is_refused_and_logged_quoted(network):
    neuron, miners = await network(["good", "forges_log"], **{"--logging.debug": "true"})
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    try:
        await neuron.task_round()
        neuron.clock.advance(1.2)  # past the 1 s deadline
        await _collect_until_settled(neuron)
    finally:
        logger.remove(sink)
    rows = _assignments(neuron)
    assert rows[miners[1].hotkey].collect_status != CollectStatus.COLLECTED
    with Session(neuron.store.engine) as db:
        assert all(FORGED not in w for w in db.scalars(select(MinerResult.worker_id)))
    text = "".join(lines)
    uid = rows[miners[1].hotkey].miner_uid
    assert any(f"uid {uid} task" in line for line in lines)  # the refusal is logged
    assert "\x1b" not in text and not any(line.startswith("2026-01-01") for line in text.splitlines())


async def test_the_synthetic_api_token_in_dotenv_reaches_a_token_protected_service(network, tmp_path):
    service = ServiceSettings(db=str(tmp_path / "synthetic.sqlite"), queue_size=0, token="s3cret-token")
    async with running_service(service) as url:
        env_file = tmp_path / ".env"
        env_file.write_text(f'SYNTHETIC_API_URL="{url}"\nSYNTHETIC_API_TOKEN="s3cret-token"\n')
        neuron, _ = await network(["good"], env_file=env_file)
        assert neuron.config.synthetic_api_url == url
        source = neuron.task_source()
        assert isinstance(source, SyntheticAPIClient)
        assert await neuron.task_round() is not None  # the service answered 200, not 401
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/health")).json()["tasks"]["code"]["generated"] == 1


async def test_collection_is_retried_within_the_grace_then_given_up(network):
    # A call times out after 2 s; the grace is the clock's, which the test moves past.
    neuron, miners = await network(
        ["good", "good", "flaky", "silent"],
        **{"--neuron.timeout": "2", "--neuron.collection_grace": "60"},
    )
    await neuron.task_round()
    neuron.clock.advance(1.2)  # past the 1 s deadline
    await neuron.collect_due()
    by_behaviour = {m.behaviour: _assignments(neuron)[m.hotkey] for m in miners}
    # A 502 and no answer in time: each asked again within the grace.
    for behaviour in ("flaky", "silent"):
        assert by_behaviour[behaviour].collect_status == CollectStatus.PENDING
        assert by_behaviour[behaviour].collect_attempts == 1
    neuron.clock.advance(60)  # past the grace, where the last try comes however far the backoff
    await neuron.collect_due()
    rows = _assignments(neuron)
    by_behaviour = {m.behaviour: rows[m.hotkey] for m in miners}
    # A 502 is the miner's answer (5xx: transient), so it is asked again and answers.
    assert by_behaviour["flaky"].collect_status == CollectStatus.COLLECTED
    assert by_behaviour["flaky"].collect_attempts == 2
    # A miner that never answers in time is given up on once the grace is over.
    assert by_behaviour["silent"].collect_status == CollectStatus.NO_RESULT
    assert by_behaviour["silent"].collect_attempts == 2
    assert "grace" in by_behaviour["silent"].collect_detail


async def test_a_task_whose_places_are_all_filled_is_collected_and_scored_before_its_deadline(network):
    neuron, miners = await network(
        ["good", "filling", "garbage"],
        **{"--neuron.task_deadline": "600", "--neuron.collect_at_results": "3"},
    )
    task_id = await neuron.task_round()
    looked_at = neuron.clock.now()
    await neuron.collect_due()
    rows = {m.behaviour: _assignments(neuron)[m.hotkey] for m in miners}
    # Three workers' sound rankings: no more can come, so they are taken now.
    assert rows["good"].collect_status == CollectStatus.COLLECTED
    # Two of three, or results that break a rule: looked at again, judged no earlier than due.
    for behaviour in ("filling", "garbage"):
        assert rows[behaviour].collect_status == CollectStatus.PENDING
        assert rows[behaviour].collect_attempts == 0 and rows[behaviour].collect_detail is None
        assert rows[behaviour].next_collect_at >= looked_at + timedelta(seconds=EARLY_LOOK_INTERVAL)
    with Session(neuron.store.engine) as db:
        assert db.get(Task, task_id).status == TaskStatus.WAITING
        assert len(db.scalars(select(MinerResult)).all()) == 3

    # The garbage-sending miner's results come in sound on its next look (as the filling one's).
    miners[2].behaviour = "good"
    with Session(neuron.store.engine) as db, db.begin():
        for a in db.scalars(select(Assignment).where(Assignment.collect_status == CollectStatus.PENDING)):
            a.next_collect_at = utcnow() - timedelta(seconds=1)
    await neuron.collect_due()
    with Session(neuron.store.engine) as db:
        task = db.get(Task, task_id)
        assert task.status == TaskStatus.COLLECTED and task.expire_at > utcnow() + timedelta(seconds=500)
        assert len(db.scalars(select(MinerResult)).all()) == 9
    assert [m.result_calls for m in miners] == [1, 2, 2]  # nothing asked again once collected
    assert await neuron.scoring_round() == 1


async def test_weights_follow_the_scores_and_a_replaced_hotkey_starts_from_zero(network):
    # With wandb on and no WANDB_API_KEY: an offline run beside the database.
    neuron, miners = await network(
        ["good", "good", "liar"], **{"--neuron.epoch_length": "1000", "--wandb.off": "false"}
    )
    for _ in range(2):
        await neuron.task_round()
    neuron.clock.advance(1.2)
    await _collect_until_settled(neuron)
    await neuron.scoring_round()
    assert await neuron.maybe_set_weights() is True
    weights = neuron.chain.weights_of(neuron.uid)
    assert set(weights) == {1, 2} and 3 not in weights  # the liar scored 0: no weight
    with Session(neuron.store.engine) as db:
        [attempt] = db.scalars(select(WeightSet)).all()
        assert attempt.outcome == "set" and dict(zip(attempt.uids, attempt.weights, strict=True)) == weights
        assert attempt.version_key > 0
    # Within the rate limit nothing is tried again.
    assert await neuron.maybe_set_weights() is False
    # uid 1 is now held by another hotkey: its moving score is forgotten at the resync.
    metagraph = neuron.chain.metagraph()
    replaced = tuple(
        n
        if n.uid != 1
        else type(n)(**{**n.__dict__, "hotkey": "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM"})
        for n in metagraph.neurons
    )
    await neuron.on_resync(Metagraph(netuid=metagraph.netuid, block=metagraph.block, neurons=replaced))
    with Session(neuron.store.engine) as db:
        assert miners[0].hotkey not in {s.miner_hotkey for s in db.scalars(select(MinerScore))}
    await asyncio.to_thread(neuron.wandb.close, WAIT_WITHIN)
    assert neuron.wandb.logged == 2 and not neuron.wandb.failed  # one round, one weight setting
    assert list((neuron.config.data_dir / "wandb").glob("offline-run-*/*.wandb"))


async def test_no_scores_is_logged_when_it_becomes_true_then_once_an_epoch(network):
    from loguru import logger

    # An hour a block: the chain's blocks (1 + (now - genesis) // block time) stand still but
    # when the test moves them on, turning back the genesis of the chain the validator reads.
    neuron, _ = await network(["good"], block_time=3600.0, **{"--neuron.epoch_length": "5"})
    chain = neuron.chain
    assert isinstance(chain, LocalChain)

    def blocks_pass(n: int) -> None:
        chain.genesis_time -= n * chain.block_time

    said: list[str] = []
    sink = logger.add(lambda m: said.append(m.record["message"]), level="DEBUG")
    try:
        assert await neuron.maybe_set_weights() is False
        for _ in range(9):  # the weights loop polls every block, and more than once a block
            assert await neuron.maybe_set_weights() is False
        assert said.count("no scores yet; no weights to set") == 1
        blocks_pass(4)  # still within the epoch of the first line
        assert await neuron.maybe_set_weights() is False
        assert said.count("no scores yet; no weights to set") == 1
        blocks_pass(1)  # an epoch after the first line
        assert await neuron.maybe_set_weights() is False
        assert said.count("no scores yet; no weights to set") == 2
    finally:
        logger.remove(sink)


async def test_wandb_rounds_name_running_totals_as_totals(network):
    neuron, _ = await network(["good", "good"], **{"--wandb.off": "false"})
    logged: list[dict[str, float]] = []
    log_round = neuron.wandb.log_round

    def recording(round_id, metrics, scores):
        logged.append(dict(metrics))
        log_round(round_id, metrics, scores)

    neuron.wandb.log_round = recording
    for _ in range(2):  # two tasks in the first round, one in the second
        await neuron.task_round()
    neuron.clock.advance(1.2)
    await _collect_until_settled(neuron)
    await neuron.scoring_round()
    await neuron.task_round()
    neuron.clock.advance(1.2)
    deadline = time.monotonic() + WAIT_WITHIN
    while (await asyncio.to_thread(neuron.store.status))["tasks"]["collected"] < 1:
        assert time.monotonic() < deadline, "the third task was not collected in time"
        await neuron.collect_due()
        await asyncio.sleep(0.3)
    await neuron.scoring_round()
    first, second = logged
    assert (first["tasks_in_round"], second["tasks_in_round"]) == (2, 1)
    assert (first["total_tasks_created"], second["total_tasks_created"]) == (2, 3)
    assert (first["total_tasks_scored"], second["total_tasks_scored"]) == (2, 3)
    assert second["total_tasks_collected"] == 3
    assert not {"tasks_sent", "tasks_collected", "tasks_scored"} & set(second), (
        "a running total under a round's name"
    )
    await asyncio.to_thread(neuron.wandb.close, 60.0)
    assert (neuron.wandb.logged, neuron.wandb.failed) == (2, False)
    # wandb's service process writes the run's file on its own time, after run.finish has
    # returned: wait until it has.
    [run_file] = (neuron.config.data_dir / "wandb").glob("offline-run-*/*.wandb")
    deadline = time.monotonic() + 60
    while b"round/total_tasks_created" not in run_file.read_bytes():
        assert time.monotonic() < deadline, "wandb's service did not write the rounds to the run's file"
        await asyncio.sleep(0.1)


def test_weight_attempts_are_stored_as_json_lists(tmp_path):
    # The weight_sets columns readers use are plain JSON arrays.
    from dojo.validator.store import TaskStore

    store = TaskStore(tmp_path / "v.sqlite")
    store.record_weights(
        attempted_at=utcnow(),
        block=3,
        uids=[1],
        weights=[65535],
        hotkeys=["hk"],
        version_key=1,
        outcome="set",
        detail=None,
        attempts=1,
    )
    with store.engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT uids, weights FROM weight_sets").one()
    assert json.loads(raw[0]) == [1] and json.loads(raw[1]) == [65535]
    store.close()


async def test_a_task_source_that_is_down_costs_one_round_and_nothing_else(network):
    neuron, miners = await network(
        ["good", "good"], **{"--synthetic_api_url": f"http://127.0.0.1:{free_port()}"}
    )
    assert await neuron.task_round() is None  # logged; the next tick tries again
    with Session(neuron.store.engine) as db:
        assert db.scalars(select(Task)).all() == []
    # The other loops' steps go on.
    assert await neuron.collect_due() == 0
    assert await neuron.scoring_round() is None


def test_the_duplicate_filter_remembers_instructions_across_restarts(tmp_path):
    from dojo.synthetic import default_task_source
    from dojo.synthetic.store import SyntheticStore

    async def one_task() -> str:
        source = default_task_source(url="", store_path=tmp_path / "synthetic.sqlite")
        try:
            return (await source.next_task()).prompt
        finally:
            await source.aclose()

    first = asyncio.run(one_task())
    second = asyncio.run(one_task())  # a new process would open the same file
    store = SyntheticStore(tmp_path / "synthetic.sqlite")
    try:
        remembered = [text for _, text in store.accepted_instructions()]
    finally:
        store.close()
    assert first in remembered and second in remembered and first != second
