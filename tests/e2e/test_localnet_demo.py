"""The README's demo as a newcomer meets it: ``dojo localnet up``, the invite link it
prints opened in a real browser, a task ranked there and that ranking in the validator's
database; then processes killed as a crash would, and the supervisor bringing them back;
then the supervisor itself killed, and ``status`` and ``down`` still seeing every process.

The command runs as a subprocess with stdout a file (one line per event, what a person
reads when it is not a terminal); the test reads that output, drives Debian's chromium
through Playwright, and otherwise looks only through ``dojo localnet status --json``, the
databases and ``dojo localnet down``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.timeout(600)]

# The demo's defaults (a deadline of 600 s) but a 20 s place for a person, four miners as
# in the log-in report, and a fast chain so that the weights come soon.
FLAGS = ["--miners", "4", "--person-window", "20", "--task-interval", "4", "--block-time", "0.2"]
INVITE = re.compile(r"^invite link:\s+(http://\S+/invite/\S+)", re.MULTILINE)


def _dojo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dojo", *args], capture_output=True, text=True, timeout=timeout
    )


def _status(directory: Path) -> dict[str, Any] | None:
    result = _dojo("localnet", "status", "--dir", str(directory), "--json")
    return json.loads(result.stdout) if result.returncode == 0 else None


def _logs(directory: Path) -> str:
    parts = [
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
        for p in sorted((directory / "logs").glob("*.log"))
    ]
    for name in ("up.out", "up.err"):
        path = directory.parent / name
        if path.exists():
            parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def _wait(predicate: Callable[[], Any], timeout: float, what: str, directory: Path, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"{what} not within {timeout:g}s\n{_logs(directory)}")


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _query(db: Path, sql: str, *params: Any) -> list[tuple]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def _rank_a_task_in_the_browser(browser: Any, invite: str) -> dict[str, Any]:
    """Join by the invite link, start the next task, rank it by keyboard and submit; what
    the person saw and did."""
    platform = invite.split("/invite/")[0]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(invite)
        page.get_by_role("button", name="Join the team").click()
        page.wait_for_url(f"{platform}/welcome")
        page.get_by_role("link", name="to my tasks").click()
        page.wait_for_url(f"{platform}/tasks*")
        for _ in range(60):  # the first tasks come within seconds of the link
            with page.expect_navigation():
                page.get_by_role("button", name="Start next task").click()
            if "none=1" not in page.url:
                break
            page.wait_for_timeout(1000)
        task_id = page.url.rsplit("/", 1)[1]
        assert re.fullmatch(r"[0-9a-f-]{36}", task_id), page.url
        due = page.locator(".task-head time")
        expire_at = datetime.fromisoformat(due.get_attribute("datetime").replace("Z", "+00:00"))
        shown = due.text_content()
        left = (expire_at - datetime.now(timezone.utc)).total_seconds()
        items = page.locator("#ranking .rank-item")
        n = items.count()
        # Best first: the last response first, and so on; the first places itself.
        page.locator("body").focus()
        for label in range(n, 1, -1):
            page.keyboard.press(str(label))
        order = items.evaluate_all("els => els.map(e => e.dataset.cid)")
        assert len(order) == n and "Press Enter to submit" in page.locator("#ranking-status").text_content()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        me = page.request.get(f"{platform}/api/v1/worker/me").json()
        assert errors == []
        return {"task_id": task_id, "left": left, "shown": shown, "order": order, "worker": me["workerId"]}
    finally:
        context.close()


def test_the_demo_prints_a_link_a_person_ranks_with_and_its_supervisor_keeps_every_process(tmp_path, browser):
    from dojo.miner.neuron import worker_pseudonym_for_validators
    from dojo.platform.services.auth import worker_pseudonym_for_miner

    directory = tmp_path / "net"
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        up = subprocess.Popen(
            [sys.executable, "-m", "dojo", "localnet", "up", "--dir", str(directory), *FLAGS],
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    pids: list[int] = []
    try:
        # 1. The link, as printed for a person; a person ranks a task with it.
        invite = _wait(
            lambda: INVITE.search(out.read_text()), 120, "an invite link in the output", directory
        )[1]
        person = _rank_a_task_in_the_browser(browser, invite)
        # The place kept for a person is open for minutes, not "due in under a minute".
        assert person["left"] > 500 and re.search(r"in (9|10) min", person["shown"]), person

        # 2. That ranking reaches the validator: collected for miner1's assignment of the task.
        validator_db = directory / "data" / "validator" / "validator.sqlite"
        state = json.loads((directory / "localnet.json").read_text())
        miner1 = next(m for m in state["miners"] if m["name"] == "miner1")
        [(secret,)] = _query(
            directory / "data" / "miner1" / "miner.sqlite", "SELECT secret FROM miner_secrets"
        )
        pseudonym = worker_pseudonym_for_validators(
            secret, worker_pseudonym_for_miner(person["worker"], miner1["hotkey"])
        )

        def collected() -> list[tuple]:
            return _query(
                validator_db,
                'SELECT r.worker_id, r."values", a.assignment_id FROM assignments a'
                " JOIN miner_results r ON r.assignment_id = a.assignment_id"
                " WHERE a.dojo_task_id = ? AND a.miner_hotkey = ? AND a.collect_status = 'collected'",
                person["task_id"],
                miner1["hotkey"],
            )

        rows = _wait(collected, 60, "the person's task collected by the validator", directory)
        theirs = [json.loads(values) for worker, values, _ in rows if worker == pseudonym]
        assert len(rows) == 4 and len(theirs) == 1, rows  # three simulated workers and the person
        mapping = dict(
            _query(
                validator_db,
                "SELECT miner_completion_id, completion_id FROM assignment_completions"
                " WHERE assignment_id = ?",
                rows[0][2],
            )
        )
        assert theirs[0] == {mapping[cid]: float(rank) for rank, cid in enumerate(person["order"], start=1)}

        # 3. The first weights came, and 4 miners' 16 simulated workers and the invite's log-in
        #    left the person's log-in allowance whole: no simulated worker was turned away.
        first = _wait(
            lambda: (s := _status(directory)) and s["weights_set"] >= 1 and s,
            90,
            "the first weights",
            directory,
        )
        for i in range(1, 5):
            log = (directory / "logs" / f"workers{i}.log").read_text()
            assert log.count("joined as worker") == 4 and "rate limited" not in log, log[-2000:]
        pids = [p["pid"] for p in first["processes"]]

        # 4. Killed as a crash would, a miner, the validator, the platform and a team come back.
        before = {p["name"]: p for p in first["processes"]}
        victims = ["miner2", "validator", "platform", "workers3"]
        for name in victims:
            os.kill(before[name]["pid"], signal.SIGKILL)

        def back() -> dict[str, Any] | None:
            s = _status(directory)
            now = {p["name"]: p for p in s["processes"]} if s else {}
            ok = s and all(
                now[n]["alive"] and now[n]["pid"] != before[n]["pid"] and now[n]["restarts"] == 1
                for n in victims
            )
            return s if ok else None

        again = _wait(back, 60, "the killed processes started again", directory)
        assert {p["name"]: p["last_exit_code"] for p in again["processes"] if p["name"] in victims} == {
            n: -signal.SIGKILL for n in victims
        }
        pids += [p["pid"] for p in again["processes"]]
        # The network goes on, and the output a person reads says so: a line of results
        # collected after the restarts comes from a look later than the status above, which
        # saw every killed process back; that look, or one before it, said each came back.
        collected = re.compile(r"results collected: \d+ \((\d+) in all\)")
        restarted = [
            re.compile(rf"process {name} .*started again as pid \d+ \(restart 1\)") for name in victims
        ]

        def said(text: str) -> bool:
            later = any(int(n) > again["results_collected"] for n in collected.findall(text))
            return later and all(r.search(text) for r in restarted)

        _wait(
            lambda: said(out.read_text()), 90, "the restarts and results after them, in the output", directory
        )
        # The team started again is the same four workers, on the sessions they had.
        log = directory / "logs" / "workers3.log"
        resumed = "the session of an earlier run still works"
        _wait(lambda: log.read_text().count(resumed) == 4, 30, "team 3 back on its sessions", directory)
        assert log.read_text().count("joined as worker") == 8 and "rate limited" not in log.read_text()

        # 5. A second `up` beside it refuses.
        twice = _dojo("localnet", "up", "--dir", str(directory), *FLAGS, timeout=60)
        assert twice.returncode == 1 and f"dojo localnet down --dir {directory}" in twice.stderr

        # 6. The supervisor killed: its processes run on, and status, up and down all know them.
        os.kill(up.pid, signal.SIGKILL)
        up.wait(30)
        orphaned = _wait(
            lambda: (s := _status(directory)) and not s["running"] and s, 30, "status after", directory
        )
        names = [p["name"] for p in orphaned["processes"]]
        assert len(names) == 11 and orphaned["unsupervised"] == names
        shown = _dojo("localnet", "status", "--dir", str(directory))
        assert (
            "the supervisor (dojo localnet up) is gone" in shown.stdout and "not supervised" in shown.stdout
        )
        refused = _dojo("localnet", "up", "--dir", str(directory), *FLAGS, timeout=60)
        assert refused.returncode == 1 and "without their supervisor" in refused.stderr, refused.stderr
        live = [p["pid"] for p in orphaned["processes"]]
        assert all(_alive(pid) for pid in live)
        stopped = _dojo("localnet", "down", "--dir", str(directory))
        assert stopped.returncode == 0 and "stopped 11 processes" in stopped.stdout, (
            stopped.stdout + stopped.stderr
        )
        assert [pid for pid in live if _alive(pid)] == []
        after = _status(directory)
        assert after is not None and not after["running"] and after["unsupervised"] == []
        assert not any(p["alive"] for p in after["processes"])
    finally:
        if up.poll() is None:
            _dojo("localnet", "down", "--dir", str(directory))
            up.wait(60)
        elif any(_alive(pid) for pid in pids):
            _dojo("localnet", "down", "--dir", str(directory))
