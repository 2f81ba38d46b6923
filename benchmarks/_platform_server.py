"""``dojo platform serve`` in its own process, for the benchmarks that drive the worker
platform over HTTP (``benchmarks/platform.py``, ``benchmarks/task_page_images.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve_platform(
    database_url: str, chain_dir: Path, port: int, processes: int | None = None
) -> subprocess.Popen[bytes]:
    """The platform on ``database_url`` (already migrated) at 127.0.0.1:``port``, with
    ``processes`` uvicorn workers (its default when None), once it accepts connections;
    RuntimeError with its stderr when it exits first, or after 120 s."""
    command = [
        sys.executable,
        "-m",
        "dojo",
        "platform",
        "serve",
        "--db",
        database_url,
        "--port",
        str(port),
        "--subtensor.network",
        str(chain_dir),
        "--netuid",
        "1",
        "--log-level",
        "warning",
    ]
    if processes is not None:
        command += ["--workers", str(processes)]
    env = {**os.environ, "LOGURU_LEVEL": "WARNING"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the platform exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the platform did not start within 120 s")
