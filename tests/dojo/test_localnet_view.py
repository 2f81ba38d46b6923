"""The localnet's status: what it reads from a real database and chain, the event lines
found by comparing snapshots, the live view, the worker mix shared out over the miners,
and which recorded processes ``down`` may signal."""

from __future__ import annotations

import copy
import io
import itertools
import os
import signal
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from rich.console import Console

from dojo.localnet.net import (
    LocalNet,
    NeuronProcess,
    Supervisor,
    stop_recorded,
    stop_summary,
    team_mixes,
)
from dojo.localnet.state import is_running, process_start, write_state
from dojo.localnet.view import StatusReader, events, render
from dojo.validator.store import NewAssignment, NewCompletion, NewTask, SendOutcome, TaskStore
from dojo.workers import WorkerSpecError
from template.chain.local import LocalChain
from template.clock import utcnow
from template.restart import RestartPolicy


def _snap(**changes: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "time": "2026-01-01T12:00:00Z",
        "directory": "/tmp/net",
        "running": True,
        "started_at": "2026-01-01T11:58:00Z",
        "block": 120,
        "platform_url": "http://127.0.0.1:8080",
        "synthetic_url": "http://127.0.0.1:5003",
        "invite_url": "http://127.0.0.1:8080/invite/inv_abc",
        "invite_for": "miner1",
        "processes": [
            {
                "name": "validator",
                "role": "validator",
                "pid": 11,
                "alive": True,
                "exit_code": None,
                "port": 9603,
                "log": "/tmp/net/logs/validator.log",
            },
            {
                "name": "miner1",
                "role": "miner",
                "pid": 12,
                "alive": True,
                "exit_code": None,
                "port": 9602,
                "log": "/tmp/net/logs/miner1.log",
            },
        ],
        "tasks_sent": 0,
        "assignments_sent": 0,
        "results_collected": 0,
        "rounds_scored": 0,
        "weights_set": 0,
        "tasks": {
            "total": 0,
            "pending": 0,
            "awaiting_collection": 0,
            "collected": 0,
            "scored": 0,
            "unsent": 0,
        },
        "next_deadline": None,
        "last_round": None,
        "last_weights": None,
        "validator": {"name": "validator", "uid": 0, "hotkey": "hk-v"},
        "miners": [
            {
                "name": "miner1",
                "uid": 1,
                "hotkey": "hk-1",
                "team": "3 honest",
                "received": 0,
                "answered": 0,
                "scored": 0,
                "latest_score": None,
                "moving_score": None,
                "weight": 0.0,
            },
            {
                "name": "miner2",
                "uid": 2,
                "hotkey": "hk-2",
                "team": "3 random",
                "received": 0,
                "answered": 0,
                "scored": 0,
                "latest_score": None,
                "moving_score": None,
                "weight": 0.0,
            },
        ],
        "weights": {},
        "settings": {"deadline": 60.0},
    }
    snap.update(changes)
    return snap


def _later(before: dict[str, Any]) -> dict[str, Any]:
    after = copy.deepcopy(before)
    after.update(
        tasks_sent=2,
        assignments_sent=4,
        results_collected=6,
        rounds_scored=1,
        weights_set=1,
        last_round={"round_id": 1, "tasks": 1, "miners": 2, "mean_task_agreement": 0.75},
        last_weights={"block": 130, "at": "2026-01-01T12:00:05Z"},
        next_deadline="2026-01-01T12:00:42.500Z",
        weights={"hk-1": 0.9, "hk-2": 0.1},
    )
    after["miners"][0].update(
        received=2, answered=1, scored=1, latest_score=0.8, moving_score=0.08, weight=0.9
    )
    after["miners"][1].update(
        received=2, answered=1, scored=1, latest_score=0.1, moving_score=0.01, weight=0.1
    )
    after["processes"][1].update(alive=False, exit_code=1)
    return after


def test_each_change_between_two_snapshots_is_one_line():
    before = _snap()
    assert events(before, copy.deepcopy(before)) == []
    assert events(before, _later(before)) == [
        "2 tasks sent (4 assignments, 2 in all)",
        "results collected: 6 (6 in all)",
        "round 1 scored: 1 task, 2 miners, mean agreement 0.750; scores miner1 0.800, miner2 0.100",
        "weights set at block 130: miner1 0.900, miner2 0.100",
        "process miner1 (pid 12) exited with code 1; see /tmp/net/logs/miner1.log",
    ]
    one_more = copy.deepcopy(before)
    one_more.update(tasks_sent=1, assignments_sent=2)
    assert events(before, one_more) == ["task sent to 2 miners (1 in all)"]


def test_the_first_snapshot_says_what_a_resumed_network_had_done_and_a_new_one_nothing():
    assert events(None, _snap()) == []
    assert events(None, _later(_snap())) == [
        "so far: 2 tasks sent, 6 results collected, 1 rounds scored, 1 weight sets"
    ]


def _text(snap: dict[str, Any] | None, width: int = 80, **kwargs: Any) -> str:
    console = Console(file=io.StringIO(), record=True, width=width, color_system=None)
    console.print(render(snap, **kwargs))
    return console.export_text()


def test_the_view_shows_the_links_each_miner_the_validators_work_and_the_processes_in_80_columns():
    now = datetime(2026, 1, 1, 12, 0, 10, tzinfo=timezone.utc)
    text = _text(_later(_snap()), now=now)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "http://127.0.0.1:8080/invite/inv_abc" in text and "join miner1's team" in text
    assert "block 120" in text and "up 2m10s" in text
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ miner")}
    assert rows["miner1"].split()[2:10] == ["1", "3", "honest", "2", "1", "1", "0.800", "0.080"]
    assert "0.900" in rows["miner1"] and "█████████" in rows["miner1"]
    assert "2 sent" in text and "6 collected · 1 rounds scored" in text
    assert "next deadline  in 32s" in text
    assert "last weights   block 130, 5s ago · 1 sets so far" in text
    assert "● validator" in text and "✗ miner1 (exited 1)" in text


def test_before_any_weights_the_view_says_when_the_first_come():
    text = _text(_snap())
    assert "none yet; the first come after the first deadline (60s)" in text
    assert "next deadline  none pending" in text
    assert "reading the localnet" in _text(None)


def test_the_status_is_read_from_the_validators_database_and_the_chain(tmp_path):
    chain = LocalChain.init(tmp_path / "chain", block_time=0.5, weights_rate_limit=0)
    for uid, (hotkey, stake) in enumerate([("hk-v", 1000.0), ("hk-1", 0.0), ("hk-2", 0.0)]):
        assert chain.register(hotkey, f"ck-{uid}", stake) == uid
    chain.set_weights("hk-v", [1, 2], [65535, 21845], 0)
    state = {
        "directory": str(tmp_path),
        "supervisor": {"pid": 1, "start_time": "not this one"},
        "processes": [],
        "validator": {"name": "validator", "uid": 0, "hotkey": "hk-v"},
        "miners": [
            {"name": "miner1", "uid": 1, "hotkey": "hk-1", "team": "3 honest"},
            {"name": "miner2", "uid": 2, "hotkey": "hk-2", "team": "3 random"},
        ],
    }
    reader = StatusReader(tmp_path)
    try:
        empty = reader.read(state)
        assert (empty["tasks_sent"], empty["results_collected"], empty["weights_set"]) == (0, 0, 0)
        assert not (tmp_path / "data" / "validator" / "validator.sqlite").exists()  # never made here

        store = TaskStore(tmp_path / "data" / "validator" / "validator.sqlite")
        now = utcnow()
        task = NewTask(
            "t1",
            now,
            "code_generation",
            "p",
            [{"type": "ranking"}],
            now + timedelta(seconds=60),
            "test",
            (
                NewCompletion("c0", "m", {"kind": "text", "text": "a"}, 1),
                NewCompletion("c1", "m", {"kind": "text", "text": "b"}, 2),
            ),
        )
        outgoing = store.add_task(
            task,
            [
                NewAssignment(hk, uid, f"r{uid}", ((f"x{uid}0", "c0"), (f"x{uid}1", "c1")))
                for uid, hk in ((1, "hk-1"), (2, "hk-2"))
            ],
        )
        store.record_sends(
            [SendOutcome(o.assignment_id, "accepted", dojo_task_id="d") for o in outgoing], now
        )
        store.record_weights(
            attempted_at=now,
            block=7,
            uids=[1, 2],
            weights=[65535, 21845],
            hotkeys=["hk-1", "hk-2"],
            version_key=0,
            outcome="set",
            detail=None,
            attempts=1,
        )
        store.close()
        db = tmp_path / "data" / "validator" / "validator.sqlite"
        written = db.stat().st_mtime_ns

        snap = reader.read(state)
    finally:
        reader.close()
    assert db.stat().st_mtime_ns == written  # read only: never migrated or written here
    assert not snap["running"]
    assert (snap["tasks_sent"], snap["assignments_sent"], snap["weights_set"]) == (1, 2, 1)
    assert snap["last_weights"]["block"] == 7
    deadline = datetime.fromisoformat(snap["next_deadline"].replace("Z", "+00:00"))
    assert timedelta(seconds=55) < deadline - now <= timedelta(seconds=60)
    assert [m["received"] for m in snap["miners"]] == [1, 1]
    assert snap["weights"] == pytest.approx({"hk-1": 0.75, "hk-2": 0.25}, abs=1e-4)
    assert [m["weight"] for m in snap["miners"]] == pytest.approx([0.75, 0.25], abs=1e-4)
    assert snap["block"] >= 1


def test_the_default_mix_gives_the_first_miners_honest_teams_and_the_last_a_random_one():
    assert team_mixes("honest:2,random:1", 3, 3) == ["honest:3", "honest:3", "random:3"]
    assert team_mixes("honest:2,random:1", 2, 4) == ["honest:4", "random:4"]
    assert team_mixes("honest:2,random:1", 6, 1) == ["honest:1"] * 4 + ["random:1"] * 2
    assert team_mixes("honest:2,random:1", 1, 3) == ["honest:3"]
    assert team_mixes("honest(noise=0.5),lazy,random", 3, 2) == ["honest(noise=0.5):2", "lazy:2", "random:2"]
    with pytest.raises(WorkerSpecError):
        team_mixes("sneaky:1", 3, 3)


def test_a_process_is_known_by_its_pid_and_start_time(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        start = process_start(sleeper.pid)
        assert start is not None and is_running(sleeper.pid, start)
        assert not is_running(sleeper.pid, "another start")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not is_running(sleeper.pid, start)
    assert process_start(sleeper.pid) is None


def test_down_signals_only_the_processes_it_recorded_and_kills_those_that_do_not_stop(tmp_path):
    ours = subprocess.Popen(["sleep", "30"], start_new_session=True)
    stubborn = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; echo ready; sleep 30 & wait"],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"  # SIGTERM now ignored
    stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)  # as if it had reused a recorded pid
    try:

        def record(p: subprocess.Popen, role: str, start: str | None = None) -> dict[str, Any]:
            return {
                "name": f"{role}{p.pid}",
                "role": role,
                "pid": p.pid,
                "pgid": p.pid,
                "start_time": start or process_start(p.pid),
            }

        write_state(
            tmp_path,
            {
                "supervisor": {"pid": stranger.pid, "start_time": "long gone"},
                "processes": [
                    record(ours, "workers"),
                    record(stubborn, "miner"),
                    record(stranger, "validator", start="long gone"),
                ],
            },
        )
        said: list[str] = []
        found = stop_recorded(tmp_path, timeout=1.0, say=said.append)
        assert {r["pid"] for r in found} == {ours.pid, stubborn.pid}
        assert ours.wait(5) == -15
        assert stubborn.wait(5) == -9
        assert stranger.poll() is None
        assert any("did not stop within 1s; killing it" in line for line in said)
    finally:
        for p in (ours, stubborn, stranger):
            p.kill()
            p.wait()
        stubborn.stdout.close()


def test_while_the_validator_makes_its_database_the_view_says_starting_not_an_sql_error(tmp_path):
    # The validator has made the file and not yet committed its tables: what a reader sees.
    db = tmp_path / "data" / "validator" / "validator.sqlite"
    db.parent.mkdir(parents=True)
    sqlite3.connect(db).close()
    assert db.exists()
    state = {
        "directory": str(tmp_path),
        "supervisor": {"pid": os.getpid(), "start_time": process_start(os.getpid())},
        "processes": [],
        "validator": {"name": "validator", "uid": 0, "hotkey": "hk-v"},
        "miners": [{"name": "miner1", "uid": 1, "hotkey": "hk-1", "team": "3 honest"}],
    }
    reader = StatusReader(tmp_path)
    try:
        snap = reader.read(state)
        assert snap["validator_db"] == "starting" and snap["tasks_sent"] == 0
        text = _text(snap)
        assert "starting: the validator is making its database" in text
        assert "no such table" not in text

        # Once the validator has migrated it, the same reader reads it.
        TaskStore(db).close()
        assert reader.read(state)["validator_db"] == "ready"
    finally:
        reader.close()


def test_after_a_stop_the_view_says_stopped_and_how_to_resume_not_the_next_deadline():
    stopped = _later(_snap(running=False, stopped_at="2026-01-01T12:00:07Z", unsupervised=[]))
    stopped["processes"][1].update(exit_code=0)
    text = _text(stopped, now=datetime(2026, 1, 1, 12, 0, 10, tzinfo=timezone.utc))
    assert "stopped 3s ago" in text and "dojo localnet up --dir /tmp/net` resumes" in text
    assert "next deadline" not in text and "Ctrl-C" not in text
    assert "Dojo localnet  /tmp/net  block 120  stopped" in text


def test_processes_left_without_their_supervisor_are_named_with_how_to_stop_them():
    snap = _snap(running=False, unsupervised=["validator", "miner1", "pid 4242"])
    text = _text(snap, width=120)
    assert (
        "the supervisor (dojo localnet up) is gone; still running, not restarted: validator, miner1, pid 4242"
        in text
    )
    assert "`dojo localnet down --dir /tmp/net` stops them" in text
    assert "unsupervised" in text.splitlines()[0]
    assert events(_snap(unsupervised=[]), snap)[-1] == (
        "the supervisor is gone; still running unsupervised: validator, miner1, pid 4242"
    )


def test_a_process_started_again_is_one_event_line_and_shows_its_restarts():
    before = _snap()
    waiting = copy.deepcopy(before)
    waiting["processes"][1].update(
        alive=False, exit_code=-9, last_exit_code=-9, restart_at="2026-01-01T12:00:01Z"
    )
    assert events(before, waiting) == [
        "process miner1 (pid 12) was killed (signal 9); starting it again; see /tmp/net/logs/miner1.log"
    ]
    assert "↻ miner1 (exited -9; starting again)" in _text(waiting)
    again = copy.deepcopy(before)
    again["processes"][1].update(pid=13, restarts=1, last_exit_code=-9)
    assert events(waiting, again) == ["process miner1 started again as pid 13 (restart 1)"]
    assert events(before, again) == [
        "process miner1 was killed (signal 9); started again as pid 13 (restart 1)"
    ]
    assert "● miner1, restarted 1×" in _text(again)


def test_a_restart_seen_half_made_still_gets_its_line_once_the_process_runs():
    """The view reads the supervisor's records in a thread while the supervisor starts the
    process again: a look can find the restart counted but the new process not yet written
    down (its pid or start time still the old one's), so not alive. The look after, with
    the process running, still says it started again, once."""
    before = _snap()
    half = copy.deepcopy(before)
    half["processes"][1].update(alive=False, restarts=1, last_exit_code=-9)
    again = copy.deepcopy(before)
    again["processes"][1].update(pid=13, restarts=1, last_exit_code=-9)
    looks = [before, half, again, copy.deepcopy(again)]
    lines = [line for a, b in itertools.pairwise(looks) for line in events(a, b)]
    assert [line for line in lines if "started again" in line] == [
        "process miner1 started again as pid 13 (restart 1)"
    ]


def test_the_stop_line_says_every_process_stopped_cleanly_or_which_did_not():
    roles = {
        "workers1": "workers",
        "validator": "validator",
        "synthetic": "synthetic",
        "platform": "platform",
    }
    clean = {"workers1": 0, "validator": 0, "synthetic": -15, "platform": -15}
    assert stop_summary(clean, roles) == "stopped: all 4 processes stopped cleanly"
    assert stop_summary({**clean, "validator": -9, "workers1": 1}, roles, down={"workers1"}) == (
        "stopped: 2 of 4 processes cleanly; workers1 had exited (exit code 1), validator killed by SIGKILL"
    )


class _Sleepers(LocalNet):
    """A local network whose processes are plain `sleep`s: real processes for the supervisor."""

    def command(self, neuron: NeuronProcess) -> list[str]:
        return ["sleep", "60"]


def test_the_supervisor_starts_again_what_exits_backing_off_and_gives_up_on_a_crash_loop(tmp_path):
    net = _Sleepers(tmp_path)
    (tmp_path / "logs").mkdir()
    started: list[int] = []
    net.on_start = lambda n: started.append(n.process.pid)
    net.neurons = [
        NeuronProcess(name, "miner", i, 0, tmp_path / "logs" / f"{name}.log")
        for i, name in enumerate(("miner1", "miner2"), start=1)
    ]
    supervisor = Supervisor(
        net, RestartPolicy(first_delay=1.0, max_delay=4.0, stable_after=30.0, give_up_after=4)
    )
    try:
        for neuron in net.neurons:
            net.start_process(neuron)
        miner1, miner2 = net.neurons
        t0 = miner1.started
        supervisor.tick(t0 + 1)
        assert started == [miner1.process.pid, miner2.process.pid] and supervisor.restart_in("miner1") is None

        # Killed after a long run: started again after the first delay, under a new pid.
        first = miner1.process
        first.kill()
        first.wait()
        supervisor.tick(t0 + 100)
        assert miner1.last_exit == -9 and supervisor.restart_in("miner1", t0 + 100) == 1.0
        supervisor.tick(t0 + 100.5)
        assert miner1.process is first
        supervisor.tick(t0 + 101)
        assert miner1.process is not first and miner1.alive and miner1.restarts == 1
        assert started[-1] == miner1.process.pid and is_running(miner1.process.pid, miner1.start_time)

        # Exits soon after each start: 1 s, 2 s, 4 s, 4 s apart; after the fourth, left stopped.
        delays = []
        for _ in range(4):
            miner1.process.kill()
            miner1.process.wait()
            now = miner1.started + 1
            supervisor.tick(now)
            delays.append(supervisor.restart_in("miner1", now))
            if delays[-1] is not None:
                miner1.started = now + delays[-1]  # as if started then
                supervisor.tick(now + delays[-1])
        assert delays == [1.0, 2.0, 4.0, None] and "miner1" in supervisor.gave_up
        assert miner1.restarts == 4 and not miner1.alive
        assert miner2.alive and miner2.restarts == 0
        # What the network started stops on SIGTERM (nothing it started has it held back).
        assert net.stop(timeout=10)["miner2"] == -signal.SIGTERM
    finally:
        for neuron in net.neurons:
            if neuron.alive:
                neuron.process.kill()
                neuron.process.wait()
