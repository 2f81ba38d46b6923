"""A real pm2 of the tests' own: its PM2_HOME in a temporary directory, killed at the end.

pm2 is a Node program (``npm install -g pm2``; scripts/test.sh installs it when npm is
there). Tests that need it skip, saying so, when it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

NEEDS_PM2 = pytest.mark.skipif(
    shutil.which("pm2") is None,
    reason="pm2 is not installed (npm install -g pm2; scripts/test.sh installs it)",
)


class PM2:
    """pm2 commands against one PM2_HOME."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.env = {**env, "PM2_HOME": str(home)}

    def __call__(
        self, *args: str, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pm2", *args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"pm2 {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def processes(self) -> dict[str, dict[str, Any]]:
        """``pm2 jlist`` by name: each process's pm2_env with its pid."""
        text = self("jlist").stdout
        start = re.search(r"(?m)^\[", text)  # after any pm2 notices
        listed = json.loads(text[start.start() :]) if start else []
        return {p["name"]: {**p["pm2_env"], "pid": p.get("pid")} for p in listed}

    def wait_for(
        self, what: str, predicate: Callable[[dict[str, dict[str, Any]]], bool], timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            processes = self.processes()
            if predicate(processes):
                return
            if time.monotonic() > deadline:
                statuses = {name: env.get("status") for name, env in processes.items()}
                raise AssertionError(f"pm2 never got to: {what}; processes: {statuses}")
            time.sleep(0.2)

    def log(self, name: str, stream: str = "out") -> str:
        path = self.home / "logs" / f"{name}-{stream}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def own_pm2(home: Path, env: dict[str, str] | None = None) -> Iterator[PM2]:
    """A pm2 daemon in ``home`` (never the user's ~/.pm2), killed with its processes at the end."""
    pm2 = PM2(home, dict(os.environ if env is None else env))
    try:
        yield pm2
    finally:
        pm2("kill", check=False)
