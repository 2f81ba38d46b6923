"""The miner neuron against the real worker platform: a task's life from the miner's side.

Everything is real: the platform under uvicorn on loopback with its SQLite database, a
LocalChain holding the registrations (the platform's and the neurons' chain are the same
directory), the miner's own SQLite store, bittensor wallets signing every call, workers
logging in with EIP-191 signatures. The miner runs in-process on the test's event loop,
except in the crash test, where it is a real ``main_miner.py`` process killed by SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from loguru import logger

from commons.dojo_api import DojoAPI
from commons.protocol import (
    Ack,
    CodeContent,
    CodeFile,
    Completion,
    FeedbackReply,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    MultiScoreCriteria,
    RankingCriteria,
    ScoringResult,
    TaskResultReply,
    TaskResultRequest,
    new_request_id,
)
from dojo.cli import main as dojo_main
from dojo.localnet.net import free_port
from dojo.miner.config import MinerConfig
from dojo.miner.neuron import MinerNeuron
from dojo.miner.store import MinerStore, miner_database_url
from template.chain.local import LocalChain
from template.clock import utcnow
from template.config import resolve
from template.transport import SignedClient, Status, Target
from template.wallets import create_wallet
from tests.dojo.live_platform import NETUID, live_platform
from tests.dojo.platform._support import sign_in_worker

ROOT = Path(__file__).resolve().parents[3]
_names = itertools.count()


@dataclass
class Net:
    """The platform, its chain, and the validators that call the miners."""

    platform: Any  # tests.dojo.live_platform.LivePlatform
    wallet_path: Path
    validator: Any
    other_validator: Any
    stranger: Any  # a wallet registered nowhere

    @property
    def chain_dir(self) -> Path:
        return self.platform.chain.directory


@dataclass
class MinerAccount:
    """A miner hotkey registered on the subnet, logged in to the platform, with its keys."""

    wallet: Any
    token: str
    api_key: str
    subscription_key: str

    @property
    def hotkey(self) -> str:
        return self.wallet.hotkey.ss58_address


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Any:
    directory = tmp_path_factory.mktemp("miner-net")
    wallet_path = directory / "wallets"
    # Many workers and miners log in from 127.0.0.1 in this module.
    with live_platform(directory, login_rate_limit=10_000) as platform:
        validator = create_wallet("validator", "default", str(wallet_path))
        other = create_wallet("other-validator", "default", str(wallet_path))
        platform.register(validator, stake=1000.0)
        platform.register(other, stake=1000.0)
        stranger = create_wallet("stranger", "default", str(wallet_path))
        yield Net(platform, wallet_path, validator, other, stranger)


@pytest.fixture
async def account(net: Net) -> MinerAccount:
    """A fresh miner for each test, so that each test counts its own platform tasks."""
    wallet = create_wallet(f"miner{next(_names)}", "default", str(net.wallet_path))
    net.platform.register(wallet)
    async with DojoAPI(net.platform.url) as api:
        session = await api.login(wallet.hotkey)
        api_key = await api.generate_api_key()
        subscription_key = await api.generate_subscription_key()
    return MinerAccount(wallet, session.token, api_key.key, subscription_key.key)


def miner_flags(net: Net, account: MinerAccount, data_dir: Path, port: int) -> list[str]:
    return [
        "--netuid", str(NETUID),
        "--subtensor.network", str(net.chain_dir),
        "--wallet.name", account.wallet.name,
        "--wallet.hotkey", "default",
        "--wallet.path", str(net.wallet_path),
        "--axon.ip", "127.0.0.1",
        "--axon.port", str(port),
        "--neuron.data_dir", str(data_dir),
    ]  # fmt: skip


# Bounds on waits for an event, not the time it should take: a miner process starting on a
# busy machine may take tens of seconds to import and open its port.
START_WITHIN = 180.0
STOP_WITHIN = 60.0
# An HTTP call of the test's own to the platform on loopback: only a hang takes this long.
HTTP_TIMEOUT = 30.0


async def wait_until_serving(target: Target, validator: Any, process: subprocess.Popen | None = None) -> None:
    """Until the miner answers a heartbeat (its port refuses connections before that)."""
    deadline = time.monotonic() + START_WITHIN
    async with SignedClient(validator.hotkey, timeout=10) as client:
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the miner exited with {process.returncode}")
            outcome = await client.call(target, Heartbeat(), HeartbeatReply)
            if outcome.ok:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the miner at {target.url} did not answer a heartbeat: {outcome.detail}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_miner(
    net: Net,
    account: MinerAccount,
    data_dir: Path,
    *,
    api_key: str | None = "",
    base_url: str | None = None,
    extra: tuple[str, ...] = (),
) -> AsyncIterator[Target]:
    """A MinerNeuron on the test's loop; ``api_key=""`` means the account's key, None no key."""
    port = free_port()
    flags = miner_flags(net, account, data_dir, port)
    flags += ["--dojo_api_base_url", base_url or net.platform.url, *extra]
    key = account.api_key if api_key == "" else api_key
    if key is not None:
        flags += ["--dojo_api_key", key]
    config = resolve(MinerConfig, flags, environ={}, env_file=None)
    neuron = MinerNeuron(config, chain=LocalChain(net.chain_dir, netuid=NETUID), block_poll_interval=0.2)
    task = asyncio.create_task(neuron.run())
    target = Target(hotkey=account.hotkey, url=f"http://127.0.0.1:{port}", uid=neuron.uid)
    try:
        await wait_until_serving(target, net.validator)
        yield target
    finally:
        neuron.request_stop()
        await asyncio.wait_for(task, STOP_WITHIN)


def feedback_request(
    request_id: str | None = None, *, criteria: list | None = None, **overrides
) -> FeedbackRequest:
    request_id = request_id or new_request_id()
    fields = {
        "request_id": request_id,
        "prompt": "Write a bouncing ball in HTML",
        "task_type": "code_generation",
        "criteria": criteria or [RankingCriteria()],
        "completions": [
            Completion(
                completion_id=f"{request_id[:8]}-c{i}",
                model=f"model-{i}",
                content=CodeContent(
                    files=[CodeFile(filename="index.html", content=f"<p>{i}</p>", language="html")]
                ),
            )
            for i in range(3)
        ],
        "expire_at": (utcnow() + timedelta(hours=1)).replace(microsecond=0),
        **overrides,
    }
    return FeedbackRequest(**fields)


async def call(validator: Any, target: Target, request: Any, reply_model: type) -> Any:
    async with SignedClient(validator.hotkey, timeout=30) as client:
        return await client.call(target, request, reply_model)


def dashboard(net: Net, account: MinerAccount) -> dict[str, Any]:
    """The miner's tasks as the platform itself reports them."""
    response = httpx.get(
        f"{net.platform.url}/api/v1/miner/dashboard",
        headers={"authorization": f"Bearer {account.token}"},
        timeout=HTTP_TIMEOUT,
    )
    response.raise_for_status()
    return response.json()


def worker_view(net: Net, account: MinerAccount, task_id: str) -> dict[str, Any]:
    """The task as a worker subscribed to the miner sees it in the web UI's API."""
    with httpx.Client(base_url=net.platform.url, timeout=HTTP_TIMEOUT) as http:
        worker = sign_in_worker(http)
        http.post(
            "/api/v1/worker/subscriptions",
            json={"name": "team", "key": account.subscription_key},
            headers=worker.auth,
        ).raise_for_status()
        return http.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).json()


def stored_task(data_dir: Path, validator: Any, request_id: str) -> Any:
    store = MinerStore(miner_database_url(data_dir), migrate_schema=False)
    try:
        return store.find_task(validator.hotkey.ss58_address, request_id)
    finally:
        store.close()


def miner_status(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = dojo_main(["miner", "status", *args])
    out, err = capsys.readouterr()
    return code, out, err


# --- FeedbackRequest ----------------------------------------------------------------------


async def test_a_request_becomes_one_platform_task_and_repeats_get_the_same_reply(net, account, tmp_path):
    request = feedback_request()
    async with running_miner(net, account, tmp_path / "data", extra=("--task_max_results", "2")) as target:
        created: list[str] = []
        sink = logger.add(
            lambda message: created.append(message),
            format="{message}",
            filter=lambda r: "is platform task" in r["message"],
        )
        try:
            first, second = await asyncio.gather(
                call(net.validator, target, request, FeedbackReply),
                call(net.validator, target, request, FeedbackReply),
            )
        finally:
            logger.remove(sink)
        # The second copy waited for the first and found its mapping: one create, not two
        # that the platform's idempotency key happened to fold into one task.
        assert len(created) == 1, created
        assert first.ok and second.ok, (first.detail, second.detail)
        task_id = first.reply.dojo_task_id
        assert first.reply.request_id == request.request_id and second.reply.dojo_task_id == task_id
        again = await call(net.validator, target, request, FeedbackReply)
        assert again.ok and again.reply.dojo_task_id == task_id

        # Same request id, another body: refused, and nothing new on the platform.
        changed = request.model_copy(update={"prompt": "Write a spinning cube"})
        conflict = await call(net.validator, target, changed, FeedbackReply)
        assert (conflict.http_status, conflict.status) == (409, Status.CLIENT_ERROR)
        assert "used before for another request" in conflict.detail

    board = await asyncio.to_thread(dashboard, net, account)
    assert board["totalTasks"] == 1 and [t["id"] for t in board["tasks"]] == [task_id]
    async with DojoAPI(net.platform.url, api_key=account.api_key) as api:
        status = await api.task_status(task_id)
    assert (status.max_results, status.num_results, status.expire_at) == (2, 0, request.expire_at)

    # What the workers see: the validator's completion ids as cids, the code as files.
    seen = await asyncio.to_thread(worker_view, net, account, task_id)
    assert seen["prompt"] == request.prompt and seen["taskType"] == "CODE_GENERATION"
    assert seen["criteria"] == [{"type": "ranking"}]
    assert seen["completions"] == [
        {
            "cid": c.completion_id,
            "completion": {
                "files": [{"filename": "index.html", "content": f"<p>{i}</p>", "language": "html"}]
            },
        }
        for i, c in enumerate(request.completions)
    ]


async def test_deadlines_the_platform_would_refuse_are_422(net, account, tmp_path):
    async with running_miner(net, account, tmp_path / "data") as target:
        for ahead, problem in (
            (timedelta(minutes=-1), "in the past"),
            # From the moment it is sent: still ahead when it arrives unless the call hangs.
            (timedelta(seconds=9.5), "less than 10 s ahead"),
            (timedelta(days=6), "more than 5 days ahead"),
        ):
            request = feedback_request(expire_at=utcnow() + ahead)
            outcome = await call(net.validator, target, request, FeedbackReply)
            assert outcome.http_status == 422 and problem in outcome.detail, outcome.detail
            assert (
                await asyncio.to_thread(stored_task, tmp_path / "data", net.validator, request.request_id)
                is None
            )
    assert (await asyncio.to_thread(dashboard, net, account))["totalTasks"] == 0


async def test_platform_down_is_503_with_nothing_stored_and_the_retry_works(net, account, tmp_path):
    data_dir = tmp_path / "data"
    request = feedback_request()
    closed = f"http://127.0.0.1:{free_port()}"
    async with running_miner(net, account, data_dir, base_url=closed) as target:
        outcome = await call(net.validator, target, request, FeedbackReply)
        assert outcome.http_status == 503 and outcome.detail.startswith("worker platform unavailable:"), (
            outcome.detail
        )
    assert await asyncio.to_thread(stored_task, data_dir, net.validator, request.request_id) is None

    async with running_miner(net, account, data_dir) as target:
        outcome = await call(net.validator, target, request, FeedbackReply)
        assert outcome.ok, outcome.detail
    stored = await asyncio.to_thread(stored_task, data_dir, net.validator, request.request_id)
    assert stored is not None and stored.dojo_task_id == outcome.reply.dojo_task_id
    assert (await asyncio.to_thread(dashboard, net, account))["totalTasks"] == 1


async def test_without_a_working_key_the_miner_serves_heartbeats_and_refuses_tasks(net, account, tmp_path):
    request = feedback_request()
    # running_miner waits for a heartbeat: the keyless miner answers it.
    async with running_miner(net, account, tmp_path / "none", api_key=None) as target:
        outcome = await call(net.validator, target, request, FeedbackReply)
    assert outcome.http_status == 503, outcome.detail
    assert "no DOJO_API_KEY" in outcome.detail and "dojo api-key generate" in outcome.detail

    async with running_miner(net, account, tmp_path / "wrong", api_key="sk-" + "x" * 43) as target:
        outcome = await call(net.validator, target, request, FeedbackReply)
    assert outcome.http_status == 503 and "refused this miner's DOJO_API_KEY" in outcome.detail, (
        outcome.detail
    )
    assert (await asyncio.to_thread(dashboard, net, account))["totalTasks"] == 0


# --- TaskResultRequest --------------------------------------------------------------------


def _work(
    platform_url: str,
    subscription_key: str,
    task_id: str,
    order: list[str],
    scores: dict,
    rationale: str | None = None,
) -> str:
    """A worker logs in (EIP-191), subscribes, takes the task and submits; returns its platform id."""
    with httpx.Client(base_url=platform_url, timeout=HTTP_TIMEOUT) as http:
        worker = sign_in_worker(http)
        http.post(
            "/api/v1/worker/subscriptions",
            json={"name": "team", "key": subscription_key},
            headers=worker.auth,
        ).raise_for_status()
        held = http.post("/api/v1/worker/tasks/next", headers=worker.auth)
        assert held.status_code == 200 and held.json()["id"] == task_id, held.text
        submitted = http.post(
            f"/api/v1/worker/tasks/{task_id}/result",
            json={
                "resultData": [{"type": "ranking", "value": order}, {"type": "multi-score", "value": scores}],
                "rationale": rationale,
            },
            headers=worker.auth,
        )
        assert submitted.status_code == 200, submitted.text
        return worker.worker_id


async def test_results_are_the_workers_answers_in_the_validators_ids_under_pseudonyms(
    net, account, tmp_path, capsys
):
    data_dir = tmp_path / "data"
    request = feedback_request(criteria=[RankingCriteria(), MultiScoreCriteria(min=1, max=10)])
    a, b, c = (x.completion_id for x in request.completions)
    async with running_miner(net, account, data_dir) as target:
        created = await call(net.validator, target, request, FeedbackReply)
        assert created.ok, created.detail
        task_id = created.reply.dojo_task_id
        empty = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
        assert empty.ok and empty.reply.results == []

        answers = {
            await asyncio.to_thread(
                _work,
                net.platform.url,
                account.subscription_key,
                task_id,
                order,
                dict(zip((a, b, c), scores, strict=True)),
                rationale,
            ): (order, scores)
            for order, scores, rationale in (
                ([a, b, c], (9, 5, 1), "a is the only one that runs"),
                ([c, a, b], (2, 3, 10), None),
            )
        }
        outcome = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
        assert outcome.ok, outcome.detail
        results = outcome.reply.results
        assert outcome.reply.request_id == request.request_id and len(results) == 4

        # Another registered validator, or an id nobody sent: 404, the same answer for both.
        for validator, request_id in (
            (net.other_validator, request.request_id),
            (net.validator, "never-sent"),
        ):
            missing = await call(validator, target, TaskResultRequest(request_id=request_id), TaskResultReply)
            assert missing.http_status == 404, missing.detail

    pseudonyms = {r.worker_id for r in results}
    assert len(pseudonyms) == 2
    assert all(p.startswith("w") and len(p) == 25 for p in pseudonyms)
    assert not pseudonyms & set(answers) and not any(w in p for p in pseudonyms for w in answers)
    got = {
        (
            tuple(sorted(r.values, key=r.values.get))
            if r.criteria_type == "ranking"
            else tuple(r.values[x] for x in (a, b, c))
        )
        for r in results
    }
    want = {tuple(order) for order, _ in answers.values()} | {
        tuple(map(float, s)) for _, s in answers.values()
    }
    assert got == want
    assert all(set(r.values) == {a, b, c} and r.submitted_at.tzinfo is not None for r in results)
    for pseudonym in pseudonyms:  # one ranking and one multi-score per worker
        assert sorted(r.criteria_type for r in results if r.worker_id == pseudonym) == [
            "multi-score",
            "ranking",
        ]
    # The rationale rides with each of the worker's results; the other worker gave none.
    said = {r.worker_id: r.rationale for r in results}
    assert sorted(said.values(), key=str) == [None, "a is the only one that runs"]
    assert all(r.rationale == said[r.worker_id] for r in results)

    # The pseudonyms stay the same across a restart (the secret is in the miner's database).
    async with running_miner(net, account, data_dir) as target:
        again = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
    assert again.ok and {r.worker_id for r in again.reply.results} == pseudonyms
    stored = await asyncio.to_thread(stored_task, data_dir, net.validator, request.request_id)
    assert stored.results_returned_at is not None
    code, out, err = await asyncio.to_thread(miner_status, capsys, "--data-dir", str(data_dir), "--json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["results_returned"], status["rankings_returned"]) == (1, 4)


# --- ScoringResult and `dojo miner status` ------------------------------------------------


async def test_scores_are_stored_and_shown_by_dojo_miner_status(net, account, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MINER_DATABASE_URL", raising=False)
    data_dir = tmp_path / "data"
    code, out, err = miner_status(capsys, "--data-dir", str(data_dir), "--json")
    assert code == 1 and str(data_dir / "miner.sqlite") in err
    assert not data_dir.exists()  # looking did not create it

    request = feedback_request()
    validator = net.validator.hotkey.ss58_address
    async with running_miner(net, account, data_dir) as target:
        assert (await call(net.validator, target, request, FeedbackReply)).ok
        for score in (0.25, 0.75):  # a repeat overwrites
            ack = await call(
                net.validator,
                target,
                ScoringResult(request_id=request.request_id, hotkey=account.hotkey, score=score),
                Ack,
            )
            assert ack.ok, ack.detail
        wrong = await call(
            net.validator,
            target,
            ScoringResult(request_id=request.request_id, hotkey=validator, score=0.5),
            Ack,
        )
        assert wrong.http_status == 422 and "this miner is" in wrong.detail
        for caller, request_id in ((net.validator, "never-sent"), (net.other_validator, request.request_id)):
            unknown = await call(
                caller, target, ScoringResult(request_id=request_id, hotkey=account.hotkey, score=0.5), Ack
            )
            assert unknown.http_status == 404, unknown.detail
        assert (
            await call(
                net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
            )
        ).ok

        # The operator reads the database while the miner runs.
        code, out, err = await asyncio.to_thread(miner_status, capsys, "--data-dir", str(data_dir), "--json")
    assert code == 0, err
    status = json.loads(out)
    assert {k: status[k] for k in ("tasks_received", "results_returned", "scores_received")} == {
        "tasks_received": 1,
        "results_returned": 1,
        "scores_received": 1,
    }
    mine = status["validators"][validator]
    assert (mine["tasks_received"], mine["results_returned"], mine["scores_received"]) == (1, 1, 1)
    assert (mine["mean_score"], mine["latest_score"]) == (0.75, 0.75) and mine["latest_score_at"]
    assert list(status["validators"]) == [validator]

    code, out, err = miner_status(capsys, "--db", miner_database_url(data_dir))
    assert code == 0 and validator in out and "0.7500" in out and "tasks received 1" in out


async def test_a_score_reaches_the_platform_for_the_workers_who_answered(net, account, tmp_path):
    request = feedback_request()
    order = [c.completion_id for c in request.completions]

    def work(task_id: str) -> dict[str, str]:
        """A worker ranks the task on the platform; returns its credentials."""
        with httpx.Client(base_url=net.platform.url, timeout=HTTP_TIMEOUT) as http:
            worker = sign_in_worker(http)
            http.post(
                "/api/v1/worker/subscriptions",
                json={"name": "team", "key": account.subscription_key},
                headers=worker.auth,
            ).raise_for_status()
            submitted = http.post(
                f"/api/v1/worker/tasks/{task_id}/result",
                json={"resultData": [{"type": "ranking", "value": order}]},
                headers=worker.auth,
            )
            assert submitted.status_code == 200, submitted.text
            return worker.auth

    async with running_miner(net, account, tmp_path / "data") as target:
        created = await call(net.validator, target, request, FeedbackReply)
        assert created.ok, created.detail
        task_id = created.reply.dojo_task_id
        worker = await asyncio.to_thread(work, task_id)
        scored = ScoringResult(request_id=request.request_id, hotkey=account.hotkey, score=0.625)
        ack = await call(net.validator, target, scored, Ack)
        assert ack.ok, ack.detail
    # The miner reports the score after its Ack, and stops only once the report is through.
    async with httpx.AsyncClient(base_url=net.platform.url, timeout=HTTP_TIMEOUT) as http:
        history = (await http.get("/api/v1/worker/history", headers=worker)).json()["results"]
    assert [(h["taskId"], h["validatorScore"]) for h in history] == [(task_id, 0.625)]
    assert {t["id"]: t["score"] for t in dashboard(net, account)["tasks"]} == {task_id: 0.625}


# --- the endpoint's own checks apply to the new routes ----------------------------------------


async def test_the_new_routes_refuse_unregistered_and_unsigned_callers(net, account, tmp_path):
    request_id = new_request_id()
    messages = [
        (feedback_request(request_id), FeedbackReply),
        (TaskResultRequest(request_id=request_id), TaskResultReply),
        (ScoringResult(request_id=request_id, hotkey=account.hotkey, score=0.5), Ack),
    ]
    async with running_miner(net, account, tmp_path / "data") as target, aiohttp.ClientSession() as http:
        for message, reply in messages:
            refused = await call(net.stranger, target, message, reply)
            assert (refused.status, refused.http_status) == (Status.FORBIDDEN, 403), refused.detail
            assert "not registered" in refused.detail
            path = f"/{type(message).__name__}"
            async with http.post(
                target.url + path,
                data=message.model_dump_json(),
                headers={"content-type": "application/json"},
            ) as response:
                assert response.status == 401, await response.text()
    assert (await asyncio.to_thread(dashboard, net, account))["totalTasks"] == 0


# --- a crash between the platform's create and the mapping's write ---------------------------


async def test_a_miner_killed_after_the_platform_created_the_task_gets_that_task_on_the_retry(
    net, account, tmp_path
):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOJO_") and k != "MINER_DATABASE_URL"}
    env.update(PYTHONUNBUFFERED="1", DOJO_API_KEY=account.api_key, DOJO_API_BASE_URL=net.platform.url)

    def start(port: int, log: Path, **extra_env: str) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, str(ROOT / "main_miner.py"), *miner_flags(net, account, data_dir, port)],
                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**env, **extra_env},
            )  # fmt: skip

    request = feedback_request()
    port = free_port()
    target = Target(hotkey=account.hotkey, url=f"http://127.0.0.1:{port}")
    first = start(port, tmp_path / "first.log", DOJO_FAILPOINT="miner.feedback.after_create")
    try:
        await wait_until_serving(target, net.validator, first)
        lost = await call(net.validator, target, request, FeedbackReply)
        assert lost.status is Status.REFUSED, (lost.status, lost.detail)  # the connection died with the miner
        assert await asyncio.to_thread(first.wait, STOP_WITHIN) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "failpoint miner.feedback.after_create: SIGKILL" in (tmp_path / "first.log").read_text()
    board = await asyncio.to_thread(dashboard, net, account)
    assert board["totalTasks"] == 1  # the platform created it; the miner never stored the mapping
    assert await asyncio.to_thread(stored_task, data_dir, net.validator, request.request_id) is None

    port = free_port()
    target = Target(hotkey=account.hotkey, url=f"http://127.0.0.1:{port}")
    second = start(port, tmp_path / "second.log")
    try:
        await wait_until_serving(target, net.validator, second)
        retried = await call(net.validator, target, request, FeedbackReply)
        assert retried.ok, retried.detail
    finally:
        second.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(second.wait, STOP_WITHIN)
    assert code == 0, (tmp_path / "second.log").read_text()[-2000:]
    board = await asyncio.to_thread(dashboard, net, account)
    assert board["totalTasks"] == 1 and [t["id"] for t in board["tasks"]] == [retried.reply.dojo_task_id]
    stored = await asyncio.to_thread(stored_task, data_dir, net.validator, request.request_id)
    assert stored is not None and stored.dojo_task_id == retried.reply.dojo_task_id


async def test_a_replayed_feedback_request_is_401_and_creates_nothing(net, account, tmp_path):
    request = feedback_request(new_request_id())
    body = request.model_dump_json().encode()
    async with running_miner(net, account, tmp_path / "data") as target, aiohttp.ClientSession() as http:
        signer = SignedClient(net.validator.hotkey)
        headers = {**signer.sign("/FeedbackRequest", body, target.hotkey), "content-type": "application/json"}
        answers = []
        for _ in range(2):  # the very same signed bytes, sent twice
            async with http.post(target.url + "/FeedbackRequest", data=body, headers=headers) as response:
                answers.append((response.status, await response.text()))
        await signer.close()
    assert answers[0][0] == 200, answers
    assert answers[1][0] == 401 and "Replayed" in answers[1][1], answers
    assert (await asyncio.to_thread(dashboard, net, account))["totalTasks"] == 1
