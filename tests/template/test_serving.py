"""``serve_processes`` with a process that keeps dying: it is started again later each time,
and the server gives up (exit code 1) rather than spend the machine on start-ups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SERVE = """
import uvicorn
from template.restart import RestartPolicy
from template.serving import serve_processes

config = uvicorn.Config("tests.template._crashing_app:app", factory=True, host="127.0.0.1", port=0)
policy = RestartPolicy(first_delay=0.2, max_delay=0.4, stable_after=30.0, give_up_after=4)
raise SystemExit(serve_processes(config, 1, policy))
"""


@pytest.mark.timeout(120)
def test_a_process_that_keeps_dying_is_started_again_later_each_time_and_then_given_up():
    done = subprocess.run(
        [sys.executable, "-c", SERVE], cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    log = done.stdout + done.stderr
    waits = [
        line.rsplit("starting another in ", 1)[1]
        for line in log.splitlines()
        if "starting another in" in line
    ]
    assert waits == ["0.2s", "0.4s", "0.4s"], log
    assert "ended (7): 4 ends in a row soon after a start; stopping" in log, log
    assert done.returncode == 1, log
