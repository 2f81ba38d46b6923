"""Simulated workers (``dojo.workers``) against the real worker platform.

The platform runs under uvicorn on loopback (``tests/dojo/live_platform.py``) with a
LocalChain holding the miners' registrations; each test makes a miner with real hotkey
log-in and keys, creates tasks through ``commons.dojo_api``, runs a team, and reads what
the workers submitted back through the miner's ``task_results``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import dojo.workers
from commons.dojo_api import DojoAPI
from commons.dojo_wire import TaskResultOut
from dojo.localnet.net import free_port
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.workers import (
    Behaviour,
    DictOracle,
    SimulatedTeam,
    ValidatorDatabaseOracle,
    ValidatorDatabasesOracle,
    WorkerSpecError,
    parse_mix,
    result_data,
)
from template.storage import make_engine

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def platform_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("platform")


@pytest.fixture(scope="module")
def platform(platform_dir):
    from tests.dojo.live_platform import live_platform

    # Every test logs workers in from 127.0.0.1; the log-in rate limit is tested on its own.
    # The simulated workers take tasks seconds before their deadline (a person could not).
    with live_platform(platform_dir, login_rate_limit=100_000, min_time_left_seconds=0) as live:
        yield live


@dataclass
class Miner:
    url: str
    hotkey: str
    api_key: str
    subscription_key: str

    async def create_task(
        self,
        cids: list[str],
        *,
        criteria: list[dict[str, Any]] | None = None,
        max_results: int = 1,
        expire_in: float = 3600,
    ) -> str:
        async with DojoAPI(self.url, api_key=self.api_key) as api:
            [task_id] = await api.create_task(
                title="Rank the completions",
                body="Which answer is best?",
                expire_at=datetime.now(timezone.utc) + timedelta(seconds=expire_in),
                task_data=[
                    {
                        "prompt": "Write a bouncing ball",
                        "responses": [
                            {"model": f"model-{i}", "completion": f"print({i})", "cid": cid}
                            for i, cid in enumerate(cids)
                        ],
                        "task": "CODE_GENERATION",
                        "criteria": criteria or [{"type": "ranking"}],
                    }
                ],
                max_results=max_results,
            )
        return task_id

    async def results(self, task_id: str) -> list[TaskResultOut]:
        async with DojoAPI(self.url, api_key=self.api_key) as api:
            return await api.task_results(task_id)


async def new_miner(platform: Any, wallet: Any) -> Miner:
    platform.register(wallet)
    async with DojoAPI(platform.url) as api:
        await api.login(wallet.hotkey)
        api_key = await api.generate_api_key()
        subscription_key = await api.generate_subscription_key()
    return Miner(platform.url, wallet.hotkey.ss58_address, api_key.key, subscription_key.key)


@pytest.fixture
async def miner(platform, make_wallet) -> Miner:
    return await new_miner(platform, make_wallet(hotkey="hot"))


def ids(n: int) -> list[str]:
    """Completion ids unique across the module, as the validator's per-miner ids are."""
    return [f"{uuid.uuid4().hex[:10]}-{i}" for i in range(n)]


def ranking(result: TaskResultOut, kind: str = "ranking") -> dict[str, float]:
    [item] = [item for item in result.result_data if item.type == kind]
    return item.value


def team(miner: Miner, behaviours: Any, oracle: Any = None, **kwargs: Any) -> SimulatedTeam:
    options = {"think_time": (0.0, 0.0), "poll_interval": 0.1, "seed": 7, **kwargs}
    return SimulatedTeam(miner.url, miner.subscription_key, behaviours, oracle, **options)


async def run_until(
    workers: SimulatedTeam, done: Callable[[], Awaitable[bool]], timeout: float = 10.0
) -> None:
    """Run the team until ``done()`` holds, then stop it; fail if it never does."""
    stop = asyncio.Event()
    runner = asyncio.create_task(workers.run(stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not await done():
            assert not runner.done(), workers.stats().to_dict()
            assert loop.time() < deadline, workers.stats().to_dict()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)


def has_results(miner: Miner, task_id: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(await miner.results(task_id)) >= count

    return check


# --- behaviours on the platform -------------------------------------------------------------


async def test_honest_reverse_constant_and_random_answer_as_they_should(miner):
    cids = ids(5)
    truth = dict(zip(cids, [3, 1, 5, 2, 4], strict=True))
    behaviours = parse_mix("honest(noise=0),reverse,constant,random:2")
    workers = team(miner, behaviours, DictOracle(truth))
    task_id = await miner.create_task(cids, max_results=5)

    await run_until(workers, has_results(miner, task_id, 5))

    by_worker = {r.worker_id: ranking(r) for r in await miner.results(task_id)}
    answers = [
        by_worker[worker_pseudonym_for_miner(w.stats.worker_id, miner.hotkey)] for w in workers.workers
    ]
    assert answers[0] == truth
    assert answers[1] == {cid: 6 - rank for cid, rank in truth.items()}
    assert answers[2] == {cid: i for i, cid in enumerate(cids, start=1)}  # the order shown
    for answer in answers[3:]:
        assert set(answer) == set(cids) and sorted(answer.values()) == [1, 2, 3, 4, 5]
    stats = workers.stats()
    assert [w.submitted for w in stats.workers] == [1] * 5
    assert stats.total("errors") == 0 and stats.total("skipped") == 0


async def test_lazy_worker_skips_what_it_does_not_take(miner):
    cids = ids(3)
    truth = dict(zip(cids, [2, 3, 1], strict=True))
    workers = team(miner, "lazy(participation=0),lazy(participation=1,noise=0)", DictOracle(truth))
    task_id = await miner.create_task(cids, max_results=2)

    async def done() -> bool:
        return workers.workers[0].stats.skipped >= 1 and len(await miner.results(task_id)) >= 1

    await run_until(workers, done)
    [result] = await miner.results(task_id)
    assert result.worker_id == worker_pseudonym_for_miner(workers.workers[1].stats.worker_id, miner.hotkey)
    assert ranking(result) == truth
    lazy = workers.workers[0].stats
    assert lazy.submitted == 0 and lazy.skipped == 1 and lazy.errors == 0


async def test_a_team_fills_a_task_once_each_and_no_more(miner):
    cids = ids(4)
    workers = team(miner, "honest(noise=0.5):3", DictOracle(dict(zip(cids, [1, 2, 3, 4], strict=True))))
    full = await miner.create_task(cids, max_results=3)
    pair = await miner.create_task(ids(3), max_results=2)  # unknown to the oracle: ranked at random

    async def done() -> bool:
        return len(await miner.results(full)) >= 3 and len(await miner.results(pair)) >= 2

    stop = asyncio.Event()
    runner = asyncio.create_task(workers.run(stop))
    try:
        for _ in range(200):
            if await done():
                break
            await asyncio.sleep(0.05)
        # Every worker then asks twice more and finds nothing left for it: nobody answers again.
        seen = [w.idle for w in workers.stats().workers]
        for _ in range(200):
            if all(w.idle >= n + 2 for w, n in zip(workers.stats().workers, seen, strict=True)):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the workers did not all come back for more: {workers.stats().to_dict()}")
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)

    filled, paired = await miner.results(full), await miner.results(pair)
    assert len(filled) == 3 and len({r.worker_id for r in filled}) == 3
    assert len(paired) == 2 and len({r.worker_id for r in paired}) == 2
    stats = workers.stats()
    assert stats.total("submitted") == 5 and all(w.submitted <= 2 for w in stats.workers)
    assert stats.total("errors") == 0
    async with DojoAPI(miner.url, api_key=miner.api_key) as api:
        assert (await api.task_status(full)).status == "COMPLETED"


async def test_multi_score_answers_order_like_the_ranking(miner):
    cids = ids(4)
    truth = dict(zip(cids, [4, 2, 1, 3], strict=True))
    criteria = [{"type": "ranking"}, {"type": "multi-score", "min": 1, "max": 10}]
    workers = team(miner, "honest(noise=0),random", DictOracle(truth))
    task_id = await miner.create_task(cids, criteria=criteria, max_results=2)

    await run_until(workers, has_results(miner, task_id, 2))

    for result in await miner.results(task_id):
        ranks, scores = ranking(result), ranking(result, "multi-score")
        assert all(1 <= s <= 10 for s in scores.values())
        assert sorted(cids, key=ranks.__getitem__) == sorted(cids, key=lambda c: -scores[c])
        assert max(scores.values()) == 10 and min(scores.values()) == 1
    honest = worker_pseudonym_for_miner(workers.workers[0].stats.worker_id, miner.hotkey)
    [mine] = [r for r in await miner.results(task_id) if r.worker_id == honest]
    assert ranking(mine) == truth


async def test_a_worker_joins_by_invite_link(miner, platform, platform_dir):
    from dojo.platform.services import auth
    from dojo.platform.settings import PlatformSettings
    from dojo.platform.storage.db import Database

    def invite() -> str:
        url = f"sqlite:///{platform_dir / 'platform.sqlite'}"
        database = Database(url, pool_size=1)
        try:
            with database.session() as db:
                return auth.create_invite(
                    db, PlatformSettings(database_url=url, public_url=platform.url), miner.hotkey
                )
        finally:
            database.dispose()

    link = await asyncio.to_thread(invite)
    cids = ids(3)
    truth = dict(zip(cids, [2, 1, 3], strict=True))
    invited = SimulatedTeam(
        platform.url,
        None,
        "honest(noise=0)",
        DictOracle(truth),
        invites=[link],
        think_time=(0, 0),
        poll_interval=0.1,
    )
    task_id = await miner.create_task(cids)

    await run_until(invited, has_results(miner, task_id, 1))
    [result] = await miner.results(task_id)
    assert ranking(result) == truth
    assert result.worker_id == worker_pseudonym_for_miner(invited.workers[0].stats.worker_id, miner.hotkey)

    # The link works once: a second team with it gives up on its own, saying why.
    again = SimulatedTeam(platform.url, None, "honest", invites=[link], poll_interval=0.1)
    await asyncio.wait_for(again.run(asyncio.Event()), timeout=10)
    assert "invite link /invite/" in (again.workers[0].stats.failed or "")
    assert link.rsplit("/", 1)[1] not in again.workers[0].stats.failed  # the secret is not logged


async def test_a_task_that_expires_while_thinking_is_let_go(miner):
    cids = ids(2)
    # Claimed at once (some 0.2 s after it is made), answered too late: 4 s leave a slow
    # machine room to log in and claim, which 1.5 s barely did.
    workers = team(miner, "random", think_time=(6.0, 6.0))
    task_id = await miner.create_task(cids, expire_in=4.0)

    await run_until(workers, lambda: _true_when(workers.workers[0].stats.missed >= 1), timeout=30)
    assert await miner.results(task_id) == []
    stats = workers.workers[0].stats
    assert stats.submitted == 0 and stats.errors == 0 and stats.failed is None


async def _true_when(value: bool) -> bool:
    return value


async def test_rate_limited_log_ins_wait_for_retry_after(tmp_path, make_wallet):
    from tests.dojo.live_platform import live_platform

    # A window long enough that the four log-in calls of the team fall in the miner's window
    # however slowly a busy machine makes them, and short enough to wait out.
    with live_platform(tmp_path, login_rate_limit=3, login_rate_window_seconds=5.0) as limited:
        miner = await new_miner(limited, make_wallet(hotkey="hot"))  # two of the three log-in calls
        workers = team(miner, "honest:2")
        task_id = await miner.create_task(ids(2), max_results=2)
        await run_until(workers, has_results(miner, task_id, 2), timeout=40)
    stats = workers.stats()
    assert stats.total("rate_limited") >= 1 and stats.total("submitted") == 2
    assert all(w.failed is None for w in stats.workers)


async def test_an_unreachable_platform_is_retried_not_fatal():
    workers = SimulatedTeam(f"http://127.0.0.1:{free_port()}", "sk-none", "honest:2", poll_interval=0.1)
    stop = asyncio.Event()
    runner = asyncio.create_task(workers.run(stop))
    for _ in range(200):  # each worker fails to reach it twice, and goes on trying
        if all(w.errors >= 2 for w in workers.stats().workers) or runner.done():
            break
        await asyncio.sleep(0.05)
    assert not runner.done()
    stop.set()
    await asyncio.wait_for(runner, timeout=5)
    stats = workers.stats()
    assert all(w.errors >= 2 and w.failed is None for w in stats.workers)


async def test_a_wrong_subscription_key_stops_the_worker_with_the_reason(platform):
    workers = SimulatedTeam(platform.url, "sk-" + "x" * 43, "random", poll_interval=0.1)
    await asyncio.wait_for(workers.run(asyncio.Event()), timeout=10)
    assert "subscription key" in (workers.workers[0].stats.failed or "")


async def test_a_team_started_again_with_its_identities_is_the_same_workers_without_logging_in(
    tmp_path, make_wallet
):
    from tests.dojo.live_platform import live_platform

    identities = tmp_path / "team" / "identities.json"
    # Room for the miner's log-in and the team's first (two calls each), and no more this minute.
    with live_platform(tmp_path, login_rate_limit=6, login_rate_window_seconds=60.0) as limited:
        miner = await new_miner(limited, make_wallet(hotkey="hot"))
        first = team(miner, "honest:2", identities=identities)
        task_id = await miner.create_task(ids(2), max_results=2)
        await run_until(first, has_results(miner, task_id, 2))
        assert oct(identities.stat().st_mode & 0o777) == "0o600"

        # Started again (as after a crash): the same workers, on the sessions they had.
        again = team(miner, "honest:2", identities=identities)
        second = await miner.create_task(ids(2), max_results=2)
        await run_until(again, has_results(miner, second, 2))
        by_worker = {r.worker_id for r in await miner.results(second)}
    assert [w.stats.worker_id for w in again.workers] == [w.stats.worker_id for w in first.workers]
    assert again.stats().total("rate_limited") == 0
    assert by_worker == {worker_pseudonym_for_miner(w.stats.worker_id, miner.hotkey) for w in first.workers}


async def test_a_stand_in_takes_only_tasks_due_within_its_time(miner):
    workers = team(miner, "honest:1", stand_in=1800.0)
    assert [w.name for w in workers.workers] == ["worker-0", "stand-in"]
    regular, stand_in = workers.workers
    later = await miner.create_task(ids(2), max_results=2, expire_in=3600)
    soon = await miner.create_task(ids(2), max_results=2, expire_in=600)
    sooner: list[str] = []

    async def done() -> bool:
        # Once the stand-in has answered a task created after the first two, it has listed
        # the one due later at least once since, and left its free place to others.
        if not sooner:
            if len(await miner.results(soon)) == 2 and len(await miner.results(later)) == 1:
                sooner.append(await miner.create_task(ids(2), max_results=2, expire_in=300))
            return False
        return len(await miner.results(sooner[0])) == 2

    await run_until(workers, done)
    assert stand_in.stats.submitted == 2 and regular.stats.submitted == 3
    [result] = await miner.results(later)
    assert result.worker_id == worker_pseudonym_for_miner(regular.stats.worker_id, miner.hotkey)


# --- the oracle on the validator's database --------------------------------------------------


def validator_database(url: str, prefix: str = "m-") -> dict[str, int]:
    """A validator database with one task sent to one miner; returns miner id -> true rank."""
    from dojo.validator.models import Assignment, AssignmentCompletion, Base, Task, TaskCompletion

    engine = make_engine(url)
    Base.metadata.create_all(engine)
    now = datetime.now(timezone.utc)
    truth = {"alpha": 2, "beta": 3, "gamma": 1, "delta": None}
    from sqlalchemy.orm import Session

    with Session(engine) as db, db.begin():
        db.add(
            Task(
                task_id="t1",
                created_at=now,
                task_type="CODE_GENERATION",
                prompt="Write a bouncing ball",
                criteria=[{"type": "ranking"}],
                expire_at=now + timedelta(hours=1),
                status="waiting",
                source="test",
            )
        )
        db.flush()
        for position, (cid, rank) in enumerate(truth.items()):
            db.add(
                TaskCompletion(
                    task_id="t1",
                    completion_id=cid,
                    position=position,
                    model="m",
                    content={},
                    ground_truth_rank=rank,
                )
            )
        assignment = Assignment(
            task_id="t1", miner_hotkey="5Miner", miner_uid=1, request_id="r1", send_status="accepted"
        )
        db.add(assignment)
        db.flush()
        # The miner sees its own ids, in its own order.
        for position, cid in enumerate(["beta", "delta", "alpha", "gamma"]):
            db.add(
                AssignmentCompletion(
                    assignment_id=assignment.assignment_id,
                    position=position,
                    miner_completion_id=f"{prefix}{cid}",
                    completion_id=cid,
                )
            )
    engine.dispose()
    return {f"{prefix}{cid}": rank for cid, rank in truth.items() if rank is not None}


async def test_validator_database_oracle_reads_ground_truth_read_only(tmp_path, miner):
    path = tmp_path / "validator.sqlite"
    oracle = ValidatorDatabaseOracle(path)
    try:
        assert oracle.true_ranks(["m-alpha"]) is None  # no database yet
        assert not path.exists()  # and the oracle did not create one
        truth = validator_database(f"sqlite:///{path}")
        # A validator holding its write lock does not stop the oracle, nor the oracle it.
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            assert oracle.true_ranks(["m-alpha", "m-beta", "m-gamma"]) == truth
            assert oracle.true_ranks(["alpha", "unknown"]) is None  # the task's own ids are not the miner's
            assert oracle.true_ranks(["m-delta", "m-gamma"]) == {"m-gamma": 1}  # no ground truth for delta
        finally:
            writer.execute("ROLLBACK")
            writer.close()

        # An honest worker learns the order from it, given the ids the miner put on the platform.
        task_id = await miner.create_task(list(truth))
        workers = team(miner, "honest(noise=0)", oracle)
        await run_until(workers, has_results(miner, task_id, 1))
        [result] = await miner.results(task_id)
        assert ranking(result) == truth
    finally:
        oracle.close()
    assert ValidatorDatabaseOracle(f"sqlite:///{tmp_path / 'none.sqlite'}").true_ranks(["m-alpha"]) is None


def test_an_oracle_over_several_validators_finds_each_tasks_truth_in_the_database_that_sent_it(tmp_path):
    """A miner serves every validator of the subnet; its honest workers know the truth of
    tasks from all of them, and a validator whose database is not made yet costs nothing."""
    first = validator_database(f"sqlite:///{tmp_path / 'validator.sqlite'}", prefix="v1-")
    second = validator_database(f"sqlite:///{tmp_path / 'validator2.sqlite'}", prefix="v2-")
    oracle = ValidatorDatabasesOracle(
        [tmp_path / "validator.sqlite", tmp_path / "validator2.sqlite", tmp_path / "validator3.sqlite"]
    )
    try:
        assert oracle.true_ranks(list(first)) == first
        assert oracle.true_ranks(list(second)) == second
        assert oracle.true_ranks(["v2-gamma", "v1-beta", "unknown"]) == {"v2-gamma": 1, "v1-beta": 3}
        assert oracle.true_ranks(["unknown"]) is None
        assert not (tmp_path / "validator3.sqlite").exists()
    finally:
        oracle.close()
    with pytest.raises(ValueError):
        ValidatorDatabasesOracle([])


# --- the process ----------------------------------------------------------------------------


async def test_the_process_submits_and_exits_cleanly_on_sigterm(miner, tmp_path):
    cids = ids(3)
    task_id = await miner.create_task(cids)
    log = tmp_path / "workers.log"
    env = {**os.environ, "DOJO_SUBSCRIPTION_KEY": miner.subscription_key}
    command = [sys.executable, "-m", "dojo.workers", "--platform", miner.url, "--mix", "random,constant"]
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command,
            *["--think", "0,0.1", "--poll", "0.2", "--seed", "3"],
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            for _ in range(300):
                if await miner.results(task_id) or process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            assert process.returncode is None, log.read_text()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    output = log.read_text()
    assert code == 0, output
    assert f"submitted task {task_id}" in output
    assert "simulated team stopped: 1 submitted" in output
    assert miner.subscription_key not in output  # the key is masked in the start-up line


def test_the_process_refuses_a_bad_mix(capsys):
    with pytest.raises(SystemExit) as exited:
        dojo.workers.main(
            ["--platform", "http://127.0.0.1:1", "--subscription-key", "k", "--mix", "honest:x"]
        )
    assert exited.value.code == 2
    assert "count must be a whole number" in capsys.readouterr().err


# --- the worker mix and the answers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("honest", ["honest(noise=0.3)"]),
        ("honest:2,random:1", ["honest(noise=0.3)", "honest(noise=0.3)", "random"]),
        (" honest ( noise = 0.5 ) : 2 , reverse", ["honest(noise=0.5)", "honest(noise=0.5)", "reverse"]),
        ("lazy(participation=0.25,noise=0):1,constant", ["lazy(participation=0.25,noise=0)", "constant"]),
    ],
)
def test_mix_spec_accepted(spec, expected):
    assert [str(b) for b in parse_mix(spec)] == expected


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "empty"),
        ("honest,", "cannot read entry ''"),
        ("diligent:2", "unknown behaviour 'diligent'"),
        ("honest:0", "count must be a whole number >= 1"),
        ("honest:two", "count must be a whole number >= 1"),
        ("random(noise=1)", "'random' takes no parameter noise"),
        ("honest(noise=-1)", "noise is a standard deviation"),
        ("honest(noise=nan)", "finite"),
        ("lazy(participation=1.5)", "participation must be within [0, 1]"),
        ("honest(noise)", "name=number"),
        ("honest(noise=a)", "is not a number"),
        ("honest(noise=1,noise=2)", "given twice"),
        ("honest(noise=1", "'(' without ')'"),
        ("honest)", "')' without '('"),
        ("honest:1001", "more than 1000 workers"),
    ],
)
def test_mix_spec_refused_with_the_reason(spec, reason):
    with pytest.raises(WorkerSpecError) as refused:
        parse_mix(spec)
    assert reason in str(refused.value)


def test_behaviours_order_one_task():
    import random

    rng = random.Random(1)
    cids = ["a", "b", "c", "d"]
    truth = {"a": 2, "b": 4, "c": 1, "d": 3}
    assert Behaviour("honest", {"noise": 0}).order(cids, truth, rng) == ["c", "a", "d", "b"]
    assert Behaviour("reverse").order(cids, truth, rng) == ["b", "d", "a", "c"]
    assert Behaviour("constant").order(cids, truth, rng) == cids
    # Unknown ids sit in the middle; no truth at all is a random ranking.
    assert Behaviour("honest", {"noise": 0}).order(["a", "x", "c"], {"a": 1, "c": 3}, rng) == ["a", "x", "c"]
    assert sorted(Behaviour("honest").order(cids, None, rng)) == cids
    noisy = [Behaviour("honest", {"noise": 5}).order(cids, truth, random.Random(s)) for s in range(20)]
    assert len({tuple(o) for o in noisy}) > 1


def test_result_data_multi_score_keeps_the_bounds():
    data = result_data(
        [{"type": "multi-score", "min": 0.1, "max": 0.3}, {"type": "ranking"}], ["b", "c", "a"]
    )
    scores = data[0]["value"]
    assert scores == {"b": 0.3, "c": pytest.approx(0.2), "a": 0.1}
    assert data[1] == {"type": "ranking", "value": {"b": 1, "c": 2, "a": 3}}
    with pytest.raises(ValueError, match="criterion 'likert'"):
        result_data([{"type": "likert"}], ["a", "b"])


def test_public_api():
    public = {n for n in vars(dojo.workers) if not n.startswith("_")}
    assert len(set(dojo.workers.__all__)) == len(dojo.workers.__all__)
    assert set(dojo.workers.__all__) == public


@pytest.mark.postgres
def test_validator_database_oracle_on_postgresql():
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tests.dojo.platform._support import postgres_admin_url, postgres_schema

    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    with postgres_schema(admin) as url:
        oracle = ValidatorDatabaseOracle(url)
        try:
            assert oracle.true_ranks(["m-alpha"]) is None  # no tables yet
            truth = validator_database(url)
            assert oracle.true_ranks(list(truth) + ["m-delta"]) == truth
            with pytest.raises(DBAPIError, match="read-only"), oracle._engine.connect() as conn:
                conn.execute(text("DELETE FROM tasks"))
        finally:
            oracle.close()


async def test_the_localnets_workers_get_the_subscription_key_from_the_environment_not_the_command_line(
    miner, tmp_path
):
    """Any local user reads a process's command line (``ps``); the key goes in its environment."""
    import json
    import subprocess

    from dojo.localnet.net import LocalNet

    net = LocalNet(tmp_path / "net", miners=1, platform=True, worker_mix=["random"], worker_think=(0.0, 0.1))
    net.prepare()  # the chain, the wallets and the processes, as `dojo localnet up` makes them
    net.process("platform").port = int(miner.url.rsplit(":", 1)[1])
    net.keys_path.parent.mkdir(parents=True, exist_ok=True)
    net.keys_path.write_text(
        json.dumps({"miner1": {"api_key": miner.api_key, "subscription_key": miner.subscription_key}})
    )
    task_id = await miner.create_task(ids(3))
    workers = net.process("workers1")
    net.start_process(workers)
    assert workers.process is not None
    try:
        cmdline = (await asyncio.to_thread(Path(f"/proc/{workers.process.pid}/cmdline").read_bytes)).split(
            b"\0"
        )
        assert miner.subscription_key.encode() not in b" ".join(cmdline)
        for _ in range(300):  # it logs in with the key and submits
            if await miner.results(task_id) or workers.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert workers.process.poll() is None, workers.log_path.read_text()
        assert await miner.results(task_id), workers.log_path.read_text()
    finally:
        workers.process.send_signal(signal.SIGTERM)
        try:
            workers.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            workers.process.kill()
            workers.process.wait()
