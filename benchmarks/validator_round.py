"""One validator against 256 miner endpoints: fan-out, collection, a scoring round, and memory.

    .venv/bin/python benchmarks/validator_round.py [--miners 256] [--processes 4] [--tasks 1000]
                                                   [--fill 10000] [--fill-real-share 1.0]
                                                   [--round-real-size] [--no-warmup] [--keep]

Sets up a local chain in a temporary directory with the validator (stake 1000, so it holds a
validator permit) and ``--miners`` miners, each with its own dev hotkey ``//miner<i>`` and
port, served by ``--processes`` fake-miner processes (:mod:`benchmarks._fake_miners`: one
real ``SignedServer`` per endpoint, all of a process's endpoints in one uvloop loop). The
``ValidatorNeuron`` is built in this process from a real ``ValidatorConfig`` with
``--neuron.sample_size`` = ``--miners`` and is not run: its coroutines are called directly,
in a uvloop loop, after one heartbeat round has found every miner active. Phases, each timed
on its own, wall clock and the CPU time (all threads) of this process; the fake miners' CPU
is reported beside it, since they share the machine's cores:

1. **fan-out** of a real-size task (``--completions`` completions of about ``--completion-kb``
   KB of procedural JS/HTML each, from :mod:`dojo.synthetic.procedural`, made in a child
   process and handed over as JSON, as the synthetic API hands them): ``plan_task``,
   ``TaskStore.add_task`` and ``send``, every miner its own request; all must accept.
2. **collection** of that task after its deadline (``--deadline`` s, waited out untimed):
   ``collect_due``, every miner answering with 3 whole rankings; all must be stored.
3. **scoring round**: ``--tasks`` collected tasks of ``--round-miners`` miners each are written
   through ``TaskStore`` (``add_task``, ``record_sends``, ``record_collection``; small
   contents, or real size with ``--round-real-size``; untimed, in a child process), then
   ``scoring_round()`` is timed, which opens the round, reads its inputs, scores them and
   commits them. Telling each miner its scores is the validator's own loop
   (``send_scores``, as many calls as assignments): it is timed as a phase of its own,
   ``delivery``, until every score of the round is delivered.
4. **memory with ``--fill`` tasks in the database**: the database is filled with scored
   real-size tasks (a share ``--fill-real-share`` of them real size, the rest small) by bulk
   inserts from a child process, then a fan-out, a collection and a scoring round run again;
   the process's peak RSS is reported (``ru_maxrss``, and ``VmRSS`` now). The lifetime peak is
   checked against the target; the peak of each phase is also given, by resetting the
   kernel's high-water mark (``/proc/self/clear_refs``) before it. Last, as a diagnostic, the
   RSS after glibc's ``malloc_trim(0)`` tells memory held by the allocator from live objects,
   and the RSS that importing :mod:`dojo.synthetic` adds (a validator generating its tasks
   in-process pays it; one fed by the synthetic API does not) is measured in a child.

Everything untimed that writes or generates runs in child processes, so that this process's
RSS is the validator's own. The database is synced to disk after each bulk write, so its
dirty pages are not flushed by the next timed commit.

Before phase 1 a warm-up task goes through fan-out and collection untimed (``--no-warmup``
skips it), so phase 1 measures a running validator, not its first calls. The client's
connections are closed before each timed phase: tasks and collections are minutes or hours
apart in production, so their connections are always new. Each call into the store, the
scoring and the client is timed as well (wall time, and the CPU time of the thread that ran
it), to show what each phase spends its time on.

Targets on 2 cores: fan-out < 1 s, collection < 1 s, scoring round < 2 s, RSS < 300 MB.
Figures are printed, then as the last line one JSON object; ``targets_met`` is true when every
target is met and every check (all accepted, all collected, round scored) passed. The exit
code is 0 when the run completed, whether or not the targets are met. Every process the
benchmark starts is stopped on exit, Ctrl-C or failure.
"""

from __future__ import annotations

import os
import sys

# Run as a script, Python puts benchmarks/ first on the path, where benchmarks/platform.py
# shadows the standard library's ``platform``; use the repository root instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import uvloop  # noqa: E402
from loguru import logger  # noqa: E402

from benchmarks._fake_miners import FakeMinerFleet, miner_uri  # noqa: E402

TARGETS = {"fanout_s": 1.0, "collection_s": 1.0, "scoring_s": 2.0, "rss_mb": 300.0}
NETUID = 1
VALIDATOR_STAKE = 1000.0


# --- measuring -------------------------------------------------------------------------------


class Probe:
    """Wraps methods of live objects to count their calls and add up their time.

    A plain function's CPU time is that of the thread that ran it (``time.thread_time``): the
    store's methods run in worker threads, and this is their own cost. A coroutine's CPU
    time is not its own (the loop runs other tasks while it waits), so only its wall time is kept.
    """

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}

    def wrap(self, owner: Any, name: str, label: str | None = None) -> None:
        original = getattr(owner, name)
        label = label or name
        if inspect.iscoroutinefunction(original):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self._add(label, time.perf_counter() - started, None)

            setattr(owner, name, timed_async)
        else:

            def timed(*args: Any, **kwargs: Any) -> Any:
                started, cpu = time.perf_counter(), time.thread_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    self._add(label, time.perf_counter() - started, time.thread_time() - cpu)

            setattr(owner, name, timed)

    def _add(self, label: str, wall: float, cpu: float | None) -> None:
        entry = self.stats.setdefault(label, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu or 0.0

    def take(self) -> dict[str, dict[str, float]]:
        """The figures since the last call, and start again."""
        taken = {
            k: {"calls": int(v[0]), "wall_s": round(v[1], 4), "cpu_s": round(v[2], 4)}
            for k, v in self.stats.items()
        }
        self.stats = {}
        return taken


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Memory:
    """Peak RSS of this process: over its whole life, and since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.lifetime_mb = 0.0
        self.can_reset = True

    def peak_mb(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def now_mb(self) -> float:
        return _status_mb("VmRSS")

    def reset(self) -> None:
        self.lifetime_mb = max(self.lifetime_mb, self.peak_mb())
        if self.can_reset:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.can_reset = False  # per-phase peaks become lifetime peaks so far

    def lifetime(self) -> float:
        self.lifetime_mb = max(self.lifetime_mb, self.peak_mb())
        return self.lifetime_mb

    def trimmed_mb(self) -> float:
        """RSS after glibc's ``malloc_trim(0)``: what is left once the allocator gives its free memory back.

        A diagnostic taken after every other figure: far below :meth:`now_mb`, the memory
        kept after a peak is the allocator's free lists, not live objects.
        """
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        return self.now_mb()


@dataclass
class Phase:
    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    miners_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    calls: dict[str, dict[str, float]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


class Meter:
    def __init__(self, probe: Probe, memory: Memory, fleet: FakeMinerFleet):
        self.probe, self.memory, self.fleet = probe, memory, fleet
        self.phases: dict[str, Phase] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        result = Phase(name)
        self.probe.take()
        self.memory.reset()
        miners0, cpu0, wall0 = self.fleet.cpu_seconds(), time.process_time(), time.perf_counter()
        yield result
        result.wall_s = time.perf_counter() - wall0
        result.cpu_s = time.process_time() - cpu0
        result.miners_cpu_s = self.fleet.cpu_seconds() - miners0
        result.peak_rss_mb = self.memory.peak_mb()
        result.calls = self.probe.take()
        self.phases[name] = result


def instrument(neuron: Any, probe: Probe) -> None:
    import dojo.validator.neuron as neuron_module

    for name in ("plan_task", "feedback_request", "send", "send_scores", "_collection_outcome"):
        probe.wrap(neuron, name)
    probe.wrap(neuron.client, "fanout", "client.fanout")
    probe.wrap(neuron.client, "sign", "client.sign")
    for name in (
        "add_task",
        "record_sends",
        "due_collections",
        "record_collection",
        "record_collections",
        "settle_due_tasks",
        "unfinished_round",
        "open_round",
        "round_inputs",
        "commit_round",
        "status",
        "scores_to_send",
        "mark_scores_sent",
    ):
        if hasattr(neuron.store, name):  # record_collections: a batched variant, where the store has one
            probe.wrap(neuron.store, name, f"store.{name}")
    probe.wrap(neuron_module, "score_inputs")
    probe.wrap(neuron_module, "check_results")


# --- task contents ---------------------------------------------------------------------------


def code_files(spec: Any, layout: Any, rng: random.Random, size: int) -> list[Any]:
    """A procedural completion for ``spec``, padded with more scene scripts to about ``size`` chars."""
    from commons.protocol import CodeFile
    from dojo.synthetic.procedural import FileLayout, render_scene

    files = render_scene(spec, layout, rng)
    total = sum(len(f.content) for f in files)
    parts: list[str] = []
    while total < size:
        script = render_scene(spec, FileLayout("script", "part.js", "part.css"), rng)[1].content
        parts.append(script[: size - total])
        total += len(parts[-1])
    if parts:
        files.append(CodeFile(filename="scenes.js", content="\n".join(parts), language="javascript"))
    return files


def synthetic_task(rng: random.Random, completions: int, size: int) -> Any:
    """A task like the procedural pipeline's: the original and ``completions - 1`` variants."""
    from commons.synthetic_api import SyntheticCompletion, SyntheticResponse, SyntheticTask
    from dojo.synthetic.procedural import MODEL_LABEL, FileLayout
    from dojo.synthetic.spec import describe, deviate, sample_spec

    spec = sample_spec(rng)
    layout = FileLayout(
        kind=rng.choice(("inline", "script", "split")), js_name="main.js", css_name="style.css"
    )
    levels = [spec, *deviate(spec, completions - 1, rng)]
    order = list(range(completions))
    rng.shuffle(order)
    responses, ground_truth = [], {}
    for k in order:
        cid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        files = code_files(levels[k], layout, rng, size)
        responses.append(
            SyntheticResponse(model=MODEL_LABEL, completion=SyntheticCompletion(files=files), cid=cid)
        )
        ground_truth[cid] = k + 1
    return SyntheticTask(prompt=describe(spec, rng), responses=responses, ground_truth=ground_truth)


def make_synthetic_tasks(count: int, completions: int, size: int, seed: int) -> dict[str, Any]:
    """``count`` synthetic tasks as JSON, as the synthetic API would send them, made in a child process.

    Generating in-process would import :mod:`dojo.synthetic` (and what its instruction filter
    needs) into the validator's process, which a validator fed by the synthetic API never
    does; the RSS that import costs is returned as ``import_mb`` and reported on its own.
    """
    import dojo.validator.neuron  # noqa: F401 - what the validator imports anyway

    before = _status_mb("VmRSS")
    import dojo.synthetic.pipeline  # noqa: F401 - measured: what in-process generation adds to a validator

    import_mb = _status_mb("VmRSS") - before
    rng = random.Random(seed)
    tasks = [synthetic_task(rng, completions, size).model_dump(mode="json") for _ in range(count)]
    return {"tasks": tasks, "import_mb": import_mb}


def noisy_ranking(ground_truth: list[int], noise: float, rng: random.Random) -> list[float]:
    """Ranks (1 = best) of the completions whose true ranks are ``ground_truth``, as a worker
    who sees each one off by a normal error of deviation ``noise`` would give them."""
    keyed = sorted(range(len(ground_truth)), key=lambda i: ground_truth[i] + rng.gauss(0.0, noise))
    ranks = [0.0] * len(ground_truth)
    for rank, i in enumerate(keyed, start=1):
        ranks[i] = float(rank)
    return ranks


# --- populating the database (in a child process) ----------------------------------------------


def write_collected_tasks(
    db_path: str,
    miners: list[tuple[int, str]],
    tasks: int,
    per_task: int,
    completions: int,
    real_size: int,
    seed: int,
) -> dict[str, Any]:
    """``tasks`` collected tasks of ``per_task`` miners each, written through ``TaskStore``.

    The store's own methods, one transaction each as the validator writes them, with one
    change: ``synchronous=OFF`` on this setup's connections, since nothing here needs to
    survive a power cut and 10 fsyncs per task would dominate the set-up time. Completions
    are one small file each, or about ``real_size`` characters of code when it is not 0.
    """
    from sqlalchemy import event

    from dojo.synthetic.procedural import FileLayout
    from dojo.synthetic.spec import sample_spec
    from dojo.validator.models import CollectStatus, SendStatus
    from dojo.validator.store import (
        AcceptedResult,
        NewAssignment,
        NewCompletion,
        NewTask,
        SendOutcome,
        TaskStore,
    )
    from template.clock import utcnow

    started = time.perf_counter()
    store = TaskStore(db_path)

    @event.listens_for(store.engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    store.engine.dispose()
    rng = random.Random(seed)
    layout = FileLayout("split", "main.js", "style.css")
    pool = (
        [
            {
                "kind": "code",
                "files": [f.model_dump() for f in code_files(sample_spec(rng), layout, rng, real_size)],
            }
            for _ in range(4 * completions)
        ]
        if real_size
        else []
    )
    noise = {uid: rng.uniform(0.3, 2.5) for uid, _ in miners}
    now = utcnow()
    sent_at = now - timedelta(hours=3)
    submitted_at = now - timedelta(hours=2, minutes=30)
    for k in range(tasks):
        ground_truth = list(range(1, completions + 1))
        rng.shuffle(ground_truth)
        cids = [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(completions)]
        task = NewTask(
            task_id=uuid.uuid4().hex,
            created_at=sent_at,
            task_type="code_generation",
            prompt=f"benchmark task {k}: draw a small scene",
            criteria=[{"type": "ranking"}],
            # Older than any task the benchmark sends, so the round takes these first.
            expire_at=now - timedelta(hours=2) + timedelta(microseconds=k),
            source="benchmark",
            completions=tuple(
                NewCompletion(
                    cid,
                    "dojo-procedural-1",
                    rng.choice(pool)
                    if pool
                    else {
                        "kind": "code",
                        "files": [
                            {
                                "filename": "index.html",
                                "language": "html",
                                "content": f"<canvas id='c{i}'></canvas>",
                            }
                        ],
                    },
                    gt,
                )
                for i, (cid, gt) in enumerate(zip(cids, ground_truth, strict=True))
            ),
        )
        chosen = rng.sample(miners, per_task)
        assignments = []
        for uid, hotkey in sorted(chosen):
            order = cids[:]
            rng.shuffle(order)
            assignments.append(
                NewAssignment(
                    hotkey, uid, uuid.uuid4().hex, tuple((secrets.token_hex(8), cid) for cid in order)
                )
            )
        outgoing = store.add_task(task, assignments)
        store.record_sends(
            [
                SendOutcome(o.assignment_id, SendStatus.ACCEPTED, None, 200, uuid.uuid4().hex)
                for o in outgoing
            ],
            sent_at,
        )
        for o in outgoing:
            results = [
                AcceptedResult(
                    f"worker-{o.miner_uid}-{w}",
                    "ranking",
                    dict(zip(cids, noisy_ranking(ground_truth, noise[o.miner_uid], rng), strict=True)),
                    submitted_at,
                )
                for w in range(3)
            ]
            store.record_collection(o.assignment_id, CollectStatus.COLLECTED, None, results, now)
    store.close()
    return {"tasks": tasks, "assignments": tasks * per_task, "seconds": time.perf_counter() - started}


def fill_database(
    db_path: str,
    miners: list[tuple[int, str]],
    tasks: int,
    per_task: int,
    completions: int,
    real_share: float,
    size: int,
    seed: int,
) -> dict[str, Any]:
    """``tasks`` old, scored tasks added by bulk inserts: what months of a validator's work leave.

    Each has its completions (real size for a share ``real_share`` of the tasks), ``per_task``
    accepted, collected, scored assignments whose scores were delivered, their completions as
    each miner saw them, 3 worker results each, and the task scores of its round.
    """
    from sqlalchemy import create_engine, event, func, insert, select

    from dojo.synthetic.procedural import FileLayout
    from dojo.synthetic.spec import sample_spec
    from dojo.validator import models
    from template.clock import utcnow
    from template.storage import database_url

    started = time.perf_counter()
    rng = random.Random(seed)
    engine = create_engine(database_url(db_path))

    @event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    layout = FileLayout("split", "main.js", "style.css")
    real_pool = [
        {"kind": "code", "files": [f.model_dump() for f in code_files(sample_spec(rng), layout, rng, size)]}
        for _ in range(4 * completions)
    ]
    small = {
        "kind": "code",
        "files": [{"filename": "index.html", "content": "<canvas></canvas>", "language": "html"}],
    }
    now = utcnow()
    with engine.begin() as db:
        next_assignment = (db.scalar(select(func.max(models.Assignment.assignment_id))) or 0) + 1
        next_round = (db.scalar(select(func.max(models.Round.round_id))) or 0) + 1
    batch = 100
    real_tasks = round(tasks * real_share)
    content_bytes = 0
    for first in range(0, tasks, batch):
        rows: dict[Any, list[dict[str, Any]]] = {
            t: []
            for t in (
                models.Round,
                models.Task,
                models.TaskCompletion,
                models.Assignment,
                models.AssignmentCompletion,
                models.MinerResult,
                models.TaskScore,
            )
        }
        when = now - timedelta(days=30) + timedelta(minutes=5 * first)
        round_id = next_round + first // batch
        rows[models.Round].append(
            {
                "round_id": round_id,
                "created_at": when,
                "status": "scored",
                "scored_at": when,
                "n_tasks": min(batch, tasks - first),
                "n_miners": per_task,
                "mean_task_agreement": 0.5,
            }
        )
        for k in range(first, min(first + batch, tasks)):
            task_id = uuid.uuid4().hex
            created = now - timedelta(days=30) + timedelta(minutes=5 * k)
            rows[models.Task].append(
                {
                    "task_id": task_id,
                    "created_at": created,
                    "task_type": "code_generation",
                    "prompt": f"filler task {k}: draw a scene",
                    "criteria": [{"type": "ranking"}],
                    "expire_at": created + timedelta(hours=4),
                    "status": models.TaskStatus.SCORED,
                    "source": "benchmark",
                    "round_id": round_id,
                    "task_agreement": 0.5,
                    "consensus_trust": 0.5,
                }
            )
            cids = [uuid.uuid4().hex for _ in range(completions)]
            ground_truth = list(range(1, completions + 1))
            rng.shuffle(ground_truth)
            for position, (cid, gt) in enumerate(zip(cids, ground_truth, strict=True)):
                content = rng.choice(real_pool) if k < real_tasks else small
                content_bytes += sum(len(f["content"]) for f in content["files"])
                rows[models.TaskCompletion].append(
                    {
                        "task_id": task_id,
                        "completion_id": cid,
                        "position": position,
                        "model": "dojo-procedural-1",
                        "content": content,
                        "ground_truth_rank": gt,
                    }
                )
            for uid, hotkey in sorted(rng.sample(miners, per_task)):
                aid = next_assignment
                next_assignment += 1
                score = rng.random()
                rows[models.Assignment].append(
                    {
                        "assignment_id": aid,
                        "task_id": task_id,
                        "miner_hotkey": hotkey,
                        "miner_uid": uid,
                        "request_id": uuid.uuid4().hex,
                        "send_status": models.SendStatus.ACCEPTED,
                        "send_detail": None,
                        "http_status": 200,
                        "dojo_task_id": uuid.uuid4().hex,
                        "sent_at": created,
                        "collect_status": models.CollectStatus.COLLECTED,
                        "collect_detail": None,
                        "collect_attempts": 1,
                        "next_collect_at": None,
                        "collected_at": created + timedelta(hours=4),
                        "score": score,
                        "score_sent_at": created + timedelta(hours=4, minutes=1),
                    }
                )
                order = cids[:]
                rng.shuffle(order)
                for position, cid in enumerate(order):
                    rows[models.AssignmentCompletion].append(
                        {
                            "assignment_id": aid,
                            "position": position,
                            "miner_completion_id": f"fill-{aid}-{position}",
                            "completion_id": cid,
                        }
                    )
                answer = noisy_ranking(ground_truth, 1.0, rng)
                for w in range(3):
                    rows[models.MinerResult].append(
                        {
                            "assignment_id": aid,
                            "worker_id": f"worker-{uid}-{w}",
                            "criteria_type": "ranking",
                            "values": dict(zip(cids, noisy_ranking(ground_truth, 1.0, rng), strict=True)),
                            "submitted_at": created + timedelta(hours=1),
                        }
                    )
                rows[models.TaskScore].append(
                    {
                        "round_id": round_id,
                        "task_id": task_id,
                        "miner_hotkey": hotkey,
                        "miner_uid": uid,
                        "answered": True,
                        "score": score,
                        "agreement": 0.5,
                        "kappa": 0.5,
                        "rho_consensus": 0.5,
                        "rho_ground_truth": 0.5,
                        "distance": 0.2,
                        "answer": answer,
                        "n_workers": 3,
                    }
                )
        with engine.begin() as db:
            for model, values in rows.items():
                db.execute(insert(model.__table__), values)
    with engine.connect() as db:
        db.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return {
        "tasks": tasks,
        "real_size_tasks": real_tasks,
        "content_mb": content_bytes / 2**20,
        "seconds": time.perf_counter() - started,
    }


_CHILD_PROCESSES: list[Any] = []


def _child_entry(connection: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        connection.send((True, fn(*args)))
    except BaseException as exc:  # the parent re-raises it with the child's message
        connection.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        connection.close()


async def in_child_process(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh (spawned) process, so its memory never counts as the validator's."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_entry, args=(sender, fn, args), daemon=True)
    process.start()
    _CHILD_PROCESSES.append(process)
    sender.close()
    try:
        while not receiver.poll():
            if not process.is_alive():
                raise RuntimeError(f"{fn.__name__} died with exit code {process.exitcode}")
            await asyncio.sleep(0.2)
        ok, value = receiver.recv()
        if not ok:
            raise RuntimeError(f"{fn.__name__} failed: {value}")
        return value
    finally:
        receiver.close()
        _stop_process(process)


def _stop_process(process: Any) -> None:
    if process.is_alive():
        process.terminate()
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()


# --- set-up ----------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback now (all held open at once while choosing)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Network:
    chain_dir: Path
    wallet_path: Path
    data_dir: Path
    validator_port: int
    miners: list[tuple[int, str]]  # (uid, hotkey)
    endpoints: list[tuple[int, int]]  # (miner index, port)


def build_network(root: Path, n_miners: int) -> tuple[Network, float]:
    from bittensor.sp_core import Keypair

    from template.chain.local import LocalChain
    from template.wallets import create_wallet

    started = time.perf_counter()
    chain_dir, wallet_path, data_dir = root / "chain", root / "wallets", root / "validator"
    chain = LocalChain.init(chain_dir, netuid=NETUID, block_time=1.0, max_uids=n_miners + 1)
    validator = create_wallet("validator", "default", str(wallet_path))
    chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, VALIDATOR_STAKE)
    *ports, validator_port = free_ports(n_miners + 1)
    coldkey = Keypair.create_from_uri("//miners-coldkey").ss58_address
    miners, endpoints = [], []
    for i, port in enumerate(ports):
        hotkey = Keypair.create_from_uri(miner_uri(i)).ss58_address
        uid = chain.register(hotkey, coldkey, 0.0)
        chain.serve_axon(hotkey, "127.0.0.1", port)
        miners.append((uid, hotkey))
        endpoints.append((i, port))
    return Network(
        chain_dir, wallet_path, data_dir, validator_port, miners, endpoints
    ), time.perf_counter() - started


def build_validator(net: Network, args: argparse.Namespace) -> Any:
    from dojo.validator.config import ValidatorConfig
    from dojo.validator.neuron import ValidatorNeuron
    from template.chain.local import LocalChain
    from template.config import resolve

    config = resolve(
        ValidatorConfig,
        [
            "--subtensor.network",
            str(net.chain_dir),
            "--netuid",
            str(NETUID),
            "--wallet.name",
            "validator",
            "--wallet.hotkey",
            "default",
            "--wallet.path",
            str(net.wallet_path),
            "--axon.ip",
            "127.0.0.1",
            "--axon.port",
            str(net.validator_port),
            "--neuron.data_dir",
            str(net.data_dir),
            "--neuron.sample_size",
            str(args.miners),
            "--neuron.task_deadline",
            str(args.deadline),
            "--wandb.off",
        ],
        environ={},
        env_file=None,
    )
    neuron = ValidatorNeuron(config, chain=LocalChain(net.chain_dir, NETUID))
    if args.validator_log != "INFO":
        from template.log import FORMAT

        logger.remove()
        logger.add(sys.stderr, level=args.validator_log, format=FORMAT, backtrace=False, diagnose=False)
    return neuron


# --- the phases ------------------------------------------------------------------------------


def _count(db_path: Path, sql: str, *params: Any) -> int:
    db = sqlite3.connect(db_path, timeout=30)
    try:
        return int(db.execute(sql, params).fetchone()[0])
    finally:
        db.close()


async def fan_out(neuron: Any, synthetic: Any) -> tuple[Any, list[Any]]:
    """What ``task_round`` does once it has a task: sample, plan, write, send."""
    miners = neuron.sample_miners()
    task, assignments = neuron.plan_task(synthetic, miners)
    outgoing = await asyncio.to_thread(neuron.store.add_task, task, assignments)
    return task, await neuron.send(outgoing)


async def wait_for_deadline(task: Any) -> None:
    from template.clock import utcnow

    await asyncio.sleep(max(0.0, (task.expire_at - utcnow()).total_seconds()) + 0.05)


async def task_phases(neuron: Any, meter: Meter, db_path: Path, synthetic: Any, suffix: str) -> None:
    await neuron.client.close()  # new connections, as for a task minutes after the last calls
    with meter.phase("fanout" + suffix) as ph:
        task, outcomes = await fan_out(neuron, synthetic)
    ph.facts["accepted"] = sum(o.status == "accepted" for o in outcomes)
    ph.facts["sent"] = len(outcomes)
    await wait_for_deadline(task)
    await neuron.client.close()
    with meter.phase("collection" + suffix) as ph:
        ph.facts["asked"] = await neuron.collect_due()
    ph.facts["collected"] = _count(
        db_path,
        "SELECT count(*) FROM assignments WHERE task_id = ? AND collect_status = 'collected'",
        task.task_id,
    )
    ph.facts["results"] = _count(
        db_path,
        "SELECT count(*) FROM miner_results r JOIN assignments a ON a.assignment_id = r.assignment_id"
        " WHERE a.task_id = ?",
        task.task_id,
    )


async def scoring_phase(neuron: Any, meter: Meter, db_path: Path, suffix: str) -> None:
    from template.clock import utcnow

    delivered = "SELECT count(*) FROM assignments WHERE score_sent_at IS NOT NULL"
    before = _count(db_path, delivered)
    await neuron.client.close()
    with meter.phase("scoring" + suffix) as ph:
        round_id = await neuron.scoring_round()
    ph.facts["round_id"] = round_id
    if round_id is not None:
        ph.facts["tasks"] = _count(db_path, "SELECT n_tasks FROM rounds WHERE round_id = ?", round_id)
        ph.facts["assignments"] = _count(
            db_path, "SELECT count(*) FROM task_scores WHERE round_id = ?", round_id
        )
        ph.facts["scored"] = (
            _count(db_path, "SELECT count(*) FROM rounds WHERE round_id = ? AND status = 'scored'", round_id)
            == 1
        )
    since = utcnow() - timedelta(seconds=max(neuron.config.neuron.collection_grace, 600.0))
    left = len(await asyncio.to_thread(neuron.store.scores_to_send, since))
    with meter.phase("delivery" + suffix) as delivery:
        # What the validator's delivery loop does over its next ticks, back to back.
        while left:
            await neuron.send_scores()
            remaining = len(await asyncio.to_thread(neuron.store.scores_to_send, since))
            if remaining >= left:
                break  # nothing was delivered: stop rather than loop
            left = remaining
    delivery.facts["scores_sent"] = _count(db_path, delivered) - before
    delivery.facts["scores_left"] = left


def request_kb(synthetic: Any) -> float:
    """The size of one miner's ``FeedbackRequest`` for ``synthetic``, as sent."""
    from commons.protocol import Completion, FeedbackRequest
    from template.clock import utcnow

    request = FeedbackRequest(
        request_id=uuid.uuid4().hex,
        prompt=synthetic.prompt,
        criteria=[{"type": "ranking"}],
        completions=[
            Completion(
                completion_id=secrets.token_hex(8),
                model=r.model,
                content={"kind": "code", "files": [f.model_dump() for f in r.completion.files]},
            )
            for r in synthetic.responses
        ],
        expire_at=utcnow() + timedelta(hours=1),
    )
    return round(len(request.model_dump_json()) / 1000, 1)


async def measure(args: argparse.Namespace, net: Network, fleet: FakeMinerFleet) -> dict[str, Any]:
    from commons.synthetic_api import SyntheticTask

    probe, memory = Probe(), Memory()
    meter = Meter(probe, memory, fleet)
    neuron = build_validator(net, args)
    db_path = net.data_dir / "validator.sqlite"
    setup: dict[str, Any] = {}
    try:
        active = await neuron.heartbeat_round()
        expected = {uid for uid, _ in net.miners}
        if active != expected:
            raise RuntimeError(f"{len(active)} of {len(expected)} miners answered the heartbeat")
        neuron.active_uids = expected
        setup["rss_baseline_mb"] = round(memory.now_mb(), 1)
        instrument(neuron, probe)
        size = args.completion_kb * 1000
        made = await in_child_process(make_synthetic_tasks, 3, args.completions, size, args.seed)
        warmup, synthetic, later = (SyntheticTask.model_validate(t) for t in made["tasks"])
        setup["synthetic_import_mb"] = round(made["import_mb"], 1)
        setup["request_kb"] = request_kb(synthetic)
        if args.warmup:
            await task_phases(neuron, meter, db_path, warmup, "_warmup")
        await task_phases(neuron, meter, db_path, synthetic, "")

        logger.info(
            "writing {} collected tasks of {} miners each through TaskStore (untimed)",
            args.tasks,
            args.round_miners,
        )
        written = await in_child_process(
            write_collected_tasks,
            str(db_path),
            net.miners,
            args.tasks,
            min(args.round_miners, len(net.miners)),
            args.completions,
            size if args.round_real_size else 0,
            args.seed,
        )
        setup["round_setup_s"] = round(written["seconds"], 1)
        await asyncio.to_thread(os.sync)  # the set-up's unsynced writes must not land in a timed fsync
        await scoring_phase(neuron, meter, db_path, "")

        have = _count(db_path, "SELECT count(*) FROM tasks")
        need = max(0, args.fill - have - 1)  # the phase's own task makes it --fill
        logger.info(
            "filling the database with {} scored tasks ({:.0%} real size; untimed)",
            need,
            args.fill_real_share,
        )
        filled = await in_child_process(
            fill_database,
            str(db_path),
            net.miners,
            need,
            min(args.round_miners, len(net.miners)),
            args.completions,
            args.fill_real_share,
            size,
            args.seed + 1,
        )
        setup["fill_s"] = round(filled["seconds"], 1)
        setup["fill_real_size_tasks"] = filled["real_size_tasks"]
        setup["fill_content_mb"] = round(filled["content_mb"], 1)
        await asyncio.to_thread(os.sync)
        await task_phases(neuron, meter, db_path, later, "_full")
        await scoring_phase(neuron, meter, db_path, "_full")
        setup["db_tasks"] = _count(db_path, "SELECT count(*) FROM tasks")
        setup["db_mb"] = round(
            sum(p.stat().st_size for p in net.data_dir.glob("validator.sqlite*")) / 2**20, 1
        )
        setup["rss_now_mb"] = round(memory.now_mb(), 1)
        setup["ru_maxrss_mb"] = round(memory.peak_mb(), 1)
        setup["rss_lifetime_mb"] = round(memory.lifetime(), 1)
        setup["per_phase_peaks"] = memory.can_reset
        setup["miner_processes_alive"] = fleet.alive()
        setup["rss_after_malloc_trim_mb"] = round(memory.trimmed_mb(), 1)
        if "dojo.synthetic" in sys.modules:
            logger.warning("dojo.synthetic was imported into the validator's process: its RSS includes it")
    finally:
        await neuron.shutdown()
    return {"phases": meter.phases, "setup": setup}


# --- report ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, net_s: float, figures: dict[str, Any]) -> dict[str, Any]:
    phases: dict[str, Phase] = figures["phases"]
    setup = figures["setup"]
    print(
        f"validator against {args.miners} miner endpoints in {args.processes} processes "
        f"({os.cpu_count()} cores); chain and registrations {net_s:.1f} s"
    )
    print(f"  task: {args.completions} completions, FeedbackRequest {setup['request_kb']} KB")
    for name, ph in phases.items():
        facts = ", ".join(f"{k} {v}" for k, v in ph.facts.items())
        print(
            f"{name}: {ph.wall_s:.3f} s wall, validator CPU {ph.cpu_s:.3f} s, miners CPU {ph.miners_cpu_s:.3f} s, "
            f"peak RSS {ph.peak_rss_mb:.0f} MB; {facts}"
        )
        for label, c in sorted(ph.calls.items(), key=lambda kv: -kv[1]["wall_s"]):
            if c["wall_s"] >= 0.001:
                print(
                    f"    {label:<24} {c['calls']:>6}x  wall {c['wall_s']:8.3f} s  thread CPU {c['cpu_s']:8.3f} s"
                )
    print(
        f"set-up: round tasks written in {setup['round_setup_s']} s; fill of {setup['db_tasks']} tasks "
        f"({setup['fill_real_size_tasks']} real size, {setup['fill_content_mb']} MB of content) in "
        f"{setup['fill_s']} s; database {setup['db_mb']} MB"
    )
    print(
        f"RSS: {setup['rss_baseline_mb']} MB before the first task; peak {setup['rss_lifetime_mb']} MB over the "
        f"run, {setup['ru_maxrss_mb']} MB (ru_maxrss) during the phases with {setup['db_tasks']} tasks, "
        f"{setup['rss_now_mb']} MB now, {setup['rss_after_malloc_trim_mb']} MB after malloc_trim; in-process "
        f"task generation would add {setup['synthetic_import_mb']} MB (importing dojo.synthetic)"
    )

    def calls(phase: str, label: str, key: str = "wall_s") -> float:
        return phases[phase].calls.get(label, {}).get(key, 0.0)

    fan, col, sco = phases["fanout"], phases["collection"], phases["scoring"]
    checks = {
        "all_accepted": fan.facts["accepted"] == args.miners
        and phases["fanout_full"].facts["accepted"] == args.miners,
        "all_collected": col.facts["collected"] == args.miners
        and phases["collection_full"].facts["collected"] == args.miners,
        # With --tasks under 1000 the round also takes the tasks collected in phases 1 and 2.
        "round_scored": bool(sco.facts.get("scored")) and (sco.facts.get("tasks") or 0) >= args.tasks,
        "miner_processes_alive": setup["miner_processes_alive"],
    }
    result: dict[str, Any] = {
        "miners": args.miners,
        "processes": args.processes,
        "round_real_size": args.round_real_size,
        "fanout_s": round(fan.wall_s, 3),
        "fanout_cpu_s": round(fan.cpu_s, 3),
        "fanout_miners_cpu_s": round(fan.miners_cpu_s, 3),
        "fanout_accepted": fan.facts["accepted"],
        "request_kb": setup["request_kb"],
        "collection_s": round(col.wall_s, 3),
        "collection_cpu_s": round(col.cpu_s, 3),
        "collection_miners_cpu_s": round(col.miners_cpu_s, 3),
        "collected": col.facts["collected"],
        "record_collections_s": round(calls("collection", "store.record_collections"), 3),
        "scoring_s": round(sco.wall_s, 3),
        "scoring_cpu_s": round(sco.cpu_s, 3),
        "scoring_tasks": sco.facts.get("tasks"),
        "scoring_assignments": sco.facts.get("assignments"),
        "delivery_s": round(phases["delivery"].wall_s, 3),
        "scores_sent": phases["delivery"].facts.get("scores_sent"),
        "scores_left": phases["delivery"].facts.get("scores_left"),
        "commit_round_s": round(calls("scoring", "store.commit_round"), 3),
        "round_inputs_s": round(calls("scoring", "store.round_inputs"), 3),
        "score_inputs_s": round(calls("scoring", "score_inputs"), 3),
        "db_tasks": setup["db_tasks"],
        "db_mb": setup["db_mb"],
        "fill_real_size_tasks": setup["fill_real_size_tasks"],
        "fill_s": setup["fill_s"],
        "fanout_full_s": round(phases["fanout_full"].wall_s, 3),
        "collection_full_s": round(phases["collection_full"].wall_s, 3),
        "scoring_full_s": round(phases["scoring_full"].wall_s, 3),
        "rss_mb": setup["rss_lifetime_mb"],
        "rss_full_db_peak_mb": round(
            max(phases[p].peak_rss_mb for p in ("fanout_full", "collection_full", "scoring_full")), 1
        ),
        "rss_now_mb": setup["rss_now_mb"],
        "rss_baseline_mb": setup["rss_baseline_mb"],
        "rss_after_malloc_trim_mb": setup["rss_after_malloc_trim_mb"],
        "synthetic_import_mb": setup["synthetic_import_mb"],
        "ru_maxrss_mb": setup["ru_maxrss_mb"],
        "phase_peak_rss_mb": {name: round(ph.peak_rss_mb, 1) for name, ph in phases.items()},
        "checks": checks,
        "targets": TARGETS,
    }
    met = all(result[key] < limit for key, limit in TARGETS.items())
    result["targets_met"] = met and all(checks.values())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--miners", type=int, default=256, help="miner endpoints (and miners per task)")
    parser.add_argument("--processes", type=int, default=4, help="processes serving the miner endpoints")
    parser.add_argument("--tasks", type=int, default=1000, help="collected tasks in the timed scoring round")
    parser.add_argument(
        "--round-miners", type=int, default=8, help="miners per task of the scoring round and fill"
    )
    parser.add_argument("--fill", type=int, default=10_000, help="tasks in the database for the memory phase")
    parser.add_argument(
        "--fill-real-share",
        type=float,
        default=1.0,
        help="share of the filled tasks with real-size completions (the rest are small)",
    )
    parser.add_argument(
        "--round-real-size",
        action="store_true",
        help="real-size completions in the scoring round's tasks too (default: small)",
    )
    parser.add_argument("--completions", type=int, default=6, help="completions per task")
    parser.add_argument("--completion-kb", type=int, default=20, help="size of one completion's code, in KB")
    parser.add_argument("--deadline", type=float, default=2.0, help="task deadline in seconds")
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="time the validator's first task"
    )
    parser.add_argument(
        "--validator-log", default="INFO", help="the validator's log level (INFO, as deployed)"
    )
    parser.add_argument("--workdir", default=None, help="parent directory of the temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.miners < args.round_miners or args.miners < 1 or args.tasks > 1000:
        parser.error("--miners must be at least --round-miners, and --tasks at most 1000 (one round)")
    if not 0.0 <= args.fill_real_share <= 1.0:
        parser.error("--fill-real-share is a share between 0 and 1")

    from template.log import FORMAT

    logger.remove()
    logger.configure(extra={"neuron": "benchmark"})
    logger.add(
        sys.stderr, level="INFO", format=FORMAT, filter={"template.chain.local": "WARNING", "": "INFO"}
    )
    # SIGTERM ends the run like Ctrl-C does, so the fake miners and children are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    root = Path(tempfile.mkdtemp(prefix="dojo-validator-round-", dir=args.workdir))
    fleet: FakeMinerFleet | None = None
    try:
        net, net_s = build_network(root, args.miners)
        logger.info(
            "local chain with {} miners at {}; starting {} fake-miner processes",
            args.miners,
            root,
            args.processes,
        )
        fleet = FakeMinerFleet(
            net.chain_dir, NETUID, net.endpoints, processes=args.processes, log_dir=root, seed=args.seed
        )
        fleet.start()
        figures = uvloop.run(measure(args, net, fleet))
        result = report(args, net_s, figures)
        print(json.dumps(result))
        return 0
    except KeyboardInterrupt:
        logger.warning("interrupted; stopping every process the benchmark started")
        return 130
    finally:
        for process in _CHILD_PROCESSES:
            _stop_process(process)
        if fleet is not None:
            fleet.stop()
        if args.keep:
            logger.info("kept {}", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
