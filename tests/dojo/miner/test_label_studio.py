"""The miner on a real Label Studio server: a task's life through ``--worker_platform label-studio``.

Everything is real: one Label Studio server for the session (``label_studio`` in
tests/conftest.py, its own venv, SQLite, loopback, no call home), the miner's signed
endpoint and SQLite store, validators' wallets on a LocalChain, and simulated annotators
that sign up on Label Studio's pages and annotate through its HTTP API as its web UI does.
A deadline is passed by moving the miner's clock (``AdjustableClock``), not slept through.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio
from loguru import logger

from commons.protocol import (
    FeedbackReply,
    MultiScoreCriteria,
    RankingCriteria,
    TaskResultReply,
    TaskResultRequest,
)
from dojo.miner.backends.label_studio import LABEL_CONFIG, WEBHOOK_HEADER
from dojo.miner.config import MinerConfig
from dojo.miner.neuron import MinerNeuron
from dojo.workers import Behaviour, LabelStudioAnnotator
from template.chain.local import LocalChain
from template.clock import AdjustableClock
from template.config import resolve
from template.transport import Status, Target
from template.wallets import create_wallet
from tests.dojo.live_platform import NETUID
from tests.dojo.miner.test_neuron import (
    ROOT,
    call,
    feedback_request,
    free_port,
    miner_flags,
    running_miner,
    stored_task,
    wait_until_serving,
)

_names = itertools.count()


@dataclass
class LSMiner:
    """A registered miner hotkey and the project prefix its tests use on the shared server."""

    wallet: Any
    prefix: str

    @property
    def hotkey(self) -> str:
        return self.wallet.hotkey.ss58_address

    @property
    def api_key(self) -> str:  # running_miner's Dojo key: none
        return ""


@pytest.fixture
def ls_miner(net) -> LSMiner:
    n = next(_names)
    wallet = create_wallet(f"ls-miner{n}", "default", str(net.wallet_path))
    net.platform.register(wallet)
    return LSMiner(wallet, f"T{os.getpid()}x{n}")


def ls_flags(
    label_studio, miner: LSMiner, *, token: str | None = None, url: str | None = None, poll: float = 0.3
):
    return (
        "--worker_platform", "label-studio",
        "--label_studio.url", url or label_studio.url,
        "--label_studio.api_key", token or label_studio.token,
        "--label_studio.project_prefix", miner.prefix,
        "--label_studio.poll_interval", str(poll),
        "--task_max_results", "3",
    )  # fmt: skip


def sdk(label_studio) -> LabelStudio:
    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


def project_tasks(label_studio, miner: LSMiner) -> list[Any]:
    client = sdk(label_studio)
    projects = [p for p in client.projects.list(page_size=100) if p.title.startswith(miner.prefix)]
    return [t for p in projects for t in client.tasks.list(project=p.id)]


async def serving(target: Target, validator: Any, process: subprocess.Popen) -> None:
    """Until the miner process answers a heartbeat; its start (importing bittensor) may take
    a while on a busy machine, so the port is awaited first."""
    port = int(target.url.rsplit(":", 1)[1])
    for _ in range(1200):
        if process.poll() is not None:
            raise RuntimeError(f"the miner exited with {process.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        await asyncio.sleep(0.1)
    await wait_until_serving(target, validator, process)


@contextlib.contextmanager
def log_lines(fragment: str) -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", filter=lambda r: fragment in r["message"])
    try:
        yield lines
    finally:
        logger.remove(sink)


@contextlib.asynccontextmanager
async def clocked_miner(
    net, miner: LSMiner, data_dir: Path, clock: AdjustableClock, extra: tuple[str, ...]
) -> AsyncIterator[Target]:
    """A Label Studio miner on the test's loop keeping its deadlines by ``clock``."""
    port = free_port()
    config = resolve(
        MinerConfig, [*miner_flags(net, miner, data_dir, port), *extra], environ={}, env_file=None
    )
    chain = LocalChain(net.chain_dir, netuid=NETUID)
    neuron = MinerNeuron(config, chain=chain, block_poll_interval=0.2, clock=clock)
    running = asyncio.create_task(neuron.run())
    try:
        target = Target(hotkey=miner.hotkey, url=f"http://127.0.0.1:{port}", uid=neuron.uid)
        await wait_until_serving(target, net.validator)
        yield target
    finally:
        neuron.request_stop()
        await asyncio.wait_for(running, 20)


@contextlib.contextmanager
def said(fragment: str) -> Iterator[asyncio.Event]:
    """An event set when the log says ``fragment``."""
    event = asyncio.Event()
    sink = logger.add(lambda _: event.set(), filter=lambda r: fragment in r["message"])
    try:
        yield event
    finally:
        logger.remove(sink)


def annotator(label_studio, miner: LSMiner, name: str) -> LabelStudioAnnotator:
    return LabelStudioAnnotator(label_studio.url, Behaviour("honest"), name=name, project_prefix=miner.prefix)


async def test_k_annotators_rank_a_task_and_the_miner_returns_k_whole_rankings_counting_nothing_else(
    net, ls_miner, label_studio, tmp_path
):
    request = feedback_request()
    a, b, c = (x.completion_id for x in request.completions)
    people = [annotator(label_studio, ls_miner, f"person{i}") for i in range(5)]
    # Polling only at start: every annotation below is read, in order, when the validator asks.
    extra = ls_flags(label_studio, ls_miner, poll=600)
    async with running_miner(net, ls_miner, tmp_path / "data", api_key=None, extra=extra) as target:
        first, second = await asyncio.gather(
            call(net.validator, target, request, FeedbackReply),
            call(net.validator, target, request, FeedbackReply),
        )
        assert first.ok and second.ok, (first.detail, second.detail)
        task_id = first.reply.dojo_task_id
        assert second.reply.dojo_task_id == task_id
        [task] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)  # imported once
        assert str(task.id) == task_id and task.meta["request_id"] == request.request_id
        assert [item["id"] for item in task.data["items"]] == [a, b, c]

        with log_lines("not counted") as refused:
            async with httpx.AsyncClient(base_url=label_studio.url, timeout=30) as http:
                for person in people:
                    await person.join(http)
                p0, p1, p2, p3, p4 = people
                # The label stream serves the task to the first ones.
                served = await p0.next_task(http, task.project)
                assert served is not None and served["id"] == task.id
                assert (await p0.skip(http, served)).status_code == 201  # a skip: never counted
                partial = await p1.submit(http, served, [c, a], 4.0)  # two of three
                assert partial.status_code == 201, partial.text
                for person, order in ((p2, [a, b, c]), (p3, [c, b, a])):
                    assert (await person.submit(http, served, order, 7.5)).status_code == 201
                assert (await p2.submit(http, served, [b, a, c], 3.0)).status_code == 201  # a repeat
                assert (await p0.submit(http, served, [b, c, a], 12.0)).status_code == 201  # after its skip
                # Label Studio takes one more past the overlap of 3 through its API.
                assert (await p4.submit(http, served, [a, c, b], 2.0)).status_code == 201
            outcome = await call(
                net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
            )
    assert outcome.ok, outcome.detail
    results = outcome.reply.results
    assert len(results) == 3 and len({r.worker_id for r in results}) == 3
    got = sorted(tuple(sorted(r.values, key=r.values.get)) for r in results)
    assert got == sorted([(a, b, c), (c, b, a), (b, c, a)])
    assert all(r.criteria_type == "ranking" and sorted(r.values.values()) == [1, 2, 3] for r in results)
    # Pseudonyms: nothing of Label Studio's user ids.
    ls_ids = {str(p.user_id) for p in people} | {f"ls-user-{p.user_id}" for p in people}
    assert all(r.worker_id.startswith("w") and len(r.worker_id) == 25 for r in results)
    assert not {r.worker_id for r in results} & ls_ids
    reasons = " | ".join(refused)
    for why in (
        "skipped or cancelled",
        "a partial ranking",
        "a second answer by a worker",
        "beyond the 3 answers",
    ):
        assert why in reasons, reasons
    assert len(refused) == 4


async def test_a_miner_killed_after_the_import_finds_the_same_task_and_loses_no_answer(
    net, ls_miner, label_studio, tmp_path
):
    data_dir = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DOJO_", "LABEL_STUDIO")) and k != "MINER_DATABASE_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    flags = [*miner_flags(net, ls_miner, data_dir, 0)[:-4], *ls_flags(label_studio, ls_miner)]

    def start(port: int, log: Path, **extra: str) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, str(ROOT / "main_miner.py"), *flags, "--axon.port", str(port), "--neuron.data_dir", str(data_dir)],
                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env={**env, **extra},
            )  # fmt: skip

    request = feedback_request()
    port = free_port()
    target = Target(hotkey=ls_miner.hotkey, url=f"http://127.0.0.1:{port}")
    first = start(port, tmp_path / "first.log", DOJO_FAILPOINT="miner.feedback.after_create")
    try:
        await serving(target, net.validator, first)
        lost = await call(net.validator, target, request, FeedbackReply)
        assert lost.status is Status.REFUSED, (lost.status, lost.detail)
        assert await asyncio.to_thread(first.wait, 30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    [imported] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)  # in Label Studio, not stored
    assert await asyncio.to_thread(stored_task, data_dir, net.validator, request.request_id) is None

    port = free_port()
    target = Target(hotkey=ls_miner.hotkey, url=f"http://127.0.0.1:{port}")
    second = start(port, tmp_path / "second.log")
    try:
        await serving(target, net.validator, second)
        retried = await call(net.validator, target, request, FeedbackReply)
        assert retried.ok and retried.reply.dojo_task_id == str(imported.id), retried.detail
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 30) == 0, (tmp_path / "second.log").read_text()[-2000:]
    assert len(await asyncio.to_thread(project_tasks, label_studio, ls_miner)) == 1  # never imported twice

    # The miner is down while the team works; the next one finds every answer.
    orders = [["c0", "c1", "c2"], ["c1", "c0", "c2"], ["c2", "c1", "c0"]]
    cids = [x.completion_id for x in request.completions]
    async with httpx.AsyncClient(base_url=label_studio.url, timeout=30) as http:
        for i, order in enumerate(orders):
            person = annotator(label_studio, ls_miner, f"late{i}")
            await person.join(http)
            served = await person.next_task(http, imported.project)
            assert served is not None and served["id"] == imported.id
            assert (
                await person.submit(http, served, [cids[int(x[1])] for x in order], 5.0)
            ).status_code == 201
    async with running_miner(
        net, ls_miner, data_dir, api_key=None, extra=ls_flags(label_studio, ls_miner)
    ) as target:
        outcome = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
    assert outcome.ok and len(outcome.reply.results) == 3, outcome.detail


async def test_what_label_studio_cannot_do_and_a_bad_token_are_clean_refusals(
    net, ls_miner, label_studio, tmp_path
):
    scored = feedback_request(criteria=[RankingCriteria(), MultiScoreCriteria(min=1, max=10)])
    async with running_miner(
        net, ls_miner, tmp_path / "a", api_key=None, extra=ls_flags(label_studio, ls_miner)
    ) as target:
        refused = await call(net.validator, target, scored, FeedbackReply)
    assert refused.http_status == 422 and "cannot ask for multi-score" in refused.detail, refused.detail

    bad = ls_flags(label_studio, ls_miner, token="0" * 40)
    async with running_miner(net, ls_miner, tmp_path / "b", api_key=None, extra=bad) as target:
        outcome = await call(net.validator, target, feedback_request(), FeedbackReply)
    assert outcome.http_status == 503 and "refused this miner's LABEL_STUDIO_API_KEY" in outcome.detail, (
        outcome.detail
    )
    assert await asyncio.to_thread(project_tasks, label_studio, ls_miner) == []


async def test_a_changed_config_is_refused_and_a_deleted_project_gives_an_empty_result_then_a_new_project(
    net, ls_miner, label_studio, tmp_path
):
    data_dir = tmp_path / "data"
    first, second, third = feedback_request(), feedback_request(), feedback_request()
    async with running_miner(
        net, ls_miner, data_dir, api_key=None, extra=ls_flags(label_studio, ls_miner)
    ) as target:
        assert (await call(net.validator, target, first, FeedbackReply)).ok
        [task] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)
        client = sdk(label_studio)
        changed = LABEL_CONFIG.replace('title="Responses"', 'title="Answers"')
        await asyncio.to_thread(client.projects.update, id=task.project, label_config=changed)
        with log_lines("labelling config") as said:
            refused = await call(net.validator, target, second, FeedbackReply)
        assert (
            refused.http_status == 503
            and "labelling config" in refused.detail
            and "restore it" in refused.detail
        )
        assert said, "the miner's log says what to do"

        with log_lines("is gone") as gone:  # said once, by the polling or by this read
            await asyncio.to_thread(client.projects.delete, id=task.project)
            empty = await call(
                net.validator, target, TaskResultRequest(request_id=first.request_id), TaskResultReply
            )
        assert empty.ok and empty.reply.results == [] and len(gone) == 1
        with log_lines("new tasks go to a new project") as deleted:
            created = await call(net.validator, target, third, FeedbackReply)
        assert created.ok, created.detail
        assert deleted and "was deleted" in deleted[0]
    [fresh] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)
    assert fresh.project != task.project and str(fresh.id) == created.reply.dojo_task_id


async def test_label_studio_stopped_mid_run_is_a_clean_refusal_and_the_miner_recovers(
    net, ls_miner, label_studio, tmp_path
):
    request, later = feedback_request(), feedback_request()
    async with running_miner(
        net, ls_miner, tmp_path / "data", api_key=None, extra=ls_flags(label_studio, ls_miner)
    ) as target:
        assert (await call(net.validator, target, request, FeedbackReply)).ok
        await asyncio.to_thread(label_studio.stop)
        try:
            down = await call(
                net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
            )
            assert (
                down.http_status == 503 and "did not answer" in down.detail and "start it" in down.detail
            ), down.detail
            refused = await call(net.validator, target, later, FeedbackReply)
            assert refused.http_status == 503, refused.detail
        finally:
            await asyncio.to_thread(label_studio.start)
            await asyncio.to_thread(label_studio.wait_ready)
        back = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
        assert back.ok and back.reply.results == [], back.detail
        assert (await call(net.validator, target, later, FeedbackReply)).ok


async def test_the_webhook_makes_the_miner_read_answers_at_once_and_needs_its_secret(
    net, ls_miner, label_studio, tmp_path
):
    port = free_port()
    secret = "s3cret-" + ls_miner.prefix
    extra = (
        *ls_flags(label_studio, ls_miner, poll=600),
        "--label_studio.webhook_port", str(port), "--label_studio.webhook_secret", secret,
    )  # fmt: skip
    request = feedback_request()
    hook = f"http://127.0.0.1:{port}/label-studio/webhook"
    async with running_miner(net, ls_miner, tmp_path / "data", api_key=None, extra=extra) as target:
        assert (await call(net.validator, target, request, FeedbackReply)).ok
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(100):  # the listener starts beside the endpoint
                with contextlib.suppress(httpx.TransportError):
                    wrong = await http.post(hook, headers={WEBHOOK_HEADER: "nope"}, json={})
                    break
                await asyncio.sleep(0.1)
            assert wrong.status_code == 401
        with said("counted answer") as counted:
            [task] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)
            async with httpx.AsyncClient(base_url=label_studio.url, timeout=30) as http:
                person = annotator(label_studio, ls_miner, "hooked")
                await person.join(http)
                served = await person.next_task(http, task.project)
                cids = [x.completion_id for x in request.completions]
                assert (await person.submit(http, served, cids, 3.0)).status_code == 201
            # Polling is every 600 s: only the webhook can make the miner read it this soon.
            await asyncio.wait_for(counted.wait(), 60)
    hooks = await asyncio.to_thread(lambda: sdk(label_studio).webhooks.list())
    assert any(h.url == hook and h.headers.get(WEBHOOK_HEADER) == secret for h in hooks)


async def test_a_task_past_its_deadline_is_read_once_more_then_leaves_label_studio_and_its_answers_are_kept(
    net, ls_miner, label_studio, tmp_path
):
    clock = AdjustableClock()
    request = feedback_request()  # due in an hour
    a, b, c = (x.completion_id for x in request.completions)
    # Polling every 600 s: after the import, only the read at the deadline sees the answers.
    extra = ls_flags(label_studio, ls_miner, poll=600)
    async with clocked_miner(net, ls_miner, tmp_path / "data", clock, extra) as target:
        assert (await call(net.validator, target, request, FeedbackReply)).ok
        [task] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)
        first, second, late, fresh = (annotator(label_studio, ls_miner, f"due{i}") for i in range(4))
        async with httpx.AsyncClient(base_url=label_studio.url, timeout=30) as http:
            for person in (first, second, late, fresh):
                await person.join(http)
            for person, order in ((first, [b, a, c]), (second, [b, c, a])):
                served = await person.next_task(http, task.project)
                assert served is not None and served["id"] == task.id
                assert (await person.submit(http, served, order, 20.0)).status_code == 201
            # The third annotator has it open when the deadline passes.
            opened = await late.next_task(http, task.project)
            assert opened is not None and opened["id"] == task.id
            with said("out of the annotators' reach") as withdrawn:
                clock.advance(3600 + 60)
                await asyncio.wait_for(withdrawn.wait(), 60)
            # Label Studio serves it to nobody, lists it no more, and takes no answer for it.
            assert await late.next_task(http, task.project) is None
            assert await fresh.next_task(http, task.project) is None
            assert (await late.submit(http, opened, [a, b, c], 3700.0)).status_code == 404
        assert await asyncio.to_thread(project_tasks, label_studio, ls_miner) == []
        outcome = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
    assert outcome.ok, outcome.detail
    got = sorted(tuple(sorted(r.values, key=r.values.get)) for r in outcome.reply.results)
    assert got == [(b, a, c), (b, c, a)]


async def test_label_studio_down_at_the_deadline_keeps_the_task_until_it_is_back_and_loses_no_answer(
    net, ls_miner, label_studio, tmp_path
):
    clock = AdjustableClock()
    request = feedback_request()
    cids = [x.completion_id for x in request.completions]
    extra = ls_flags(label_studio, ls_miner, poll=600)
    async with clocked_miner(net, ls_miner, tmp_path / "data", clock, extra) as target:
        assert (await call(net.validator, target, request, FeedbackReply)).ok
        [task] = await asyncio.to_thread(project_tasks, label_studio, ls_miner)
        person = annotator(label_studio, ls_miner, "before-the-stop")
        async with httpx.AsyncClient(base_url=label_studio.url, timeout=30) as http:
            await person.join(http)
            served = await person.next_task(http, task.project)
            assert (await person.submit(http, served, cids, 9.0)).status_code == 201
        await asyncio.to_thread(label_studio.stop)
        try:
            with said("tried again") as failed:
                clock.advance(3600 + 60)
                await asyncio.wait_for(failed.wait(), 60)
        finally:
            await asyncio.to_thread(label_studio.start)
            await asyncio.to_thread(label_studio.wait_ready)
        assert [t.id for t in await asyncio.to_thread(project_tasks, label_studio, ls_miner)] == [task.id]
        with said("out of the annotators' reach") as withdrawn:
            clock.advance(600)  # the next round
            await asyncio.wait_for(withdrawn.wait(), 60)
        assert await asyncio.to_thread(project_tasks, label_studio, ls_miner) == []
        outcome = await call(
            net.validator, target, TaskResultRequest(request_id=request.request_id), TaskResultReply
        )
    assert outcome.ok and [r.values for r in outcome.reply.results] == [
        {cid: float(rank) for rank, cid in enumerate(cids, start=1)}
    ], outcome.detail
