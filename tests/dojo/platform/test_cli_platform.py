"""``dojo platform serve`` as an operator runs it: a process, a local chain, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from dojo.cli import build_parser, main
from dojo.platform.db import Database, current_revision, head_revision


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_parses_the_neurons_chain_flags():
    args = build_parser().parse_args(
        [
            "platform",
            "serve",
            "--subtensor.network",
            "/tmp/chain",
            "--netuid",
            "3",
            "--port",
            "9000",
            "--db",
            "x.db",
        ]
    )
    assert (args.network, args.netuid, args.port, args.db, args.host) == (
        "/tmp/chain",
        3,
        9000,
        "x.db",
        "127.0.0.1",
    )


def test_serve_migrates_and_answers(tmp_path: Path, chain):
    port = _free_port()
    db_path = tmp_path / "served.sqlite"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dojo",
            "platform",
            "serve",
            "--db",
            str(db_path),
            "--port",
            str(port),
            "--subtensor.network",
            str(chain.directory),
            "--netuid",
            str(chain.netuid),
            "--public-url",
            "http://workers.example",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the platform did not start within 60 s"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        challenge = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/miner/challenge",
            json={"hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"},
        ).json()
        assert "platform: http://workers.example\n" in challenge["message"]
        assert current_revision(Database(f"sqlite:///{db_path}").engine) == head_revision()
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert "database_url: sqlite:///" in output  # the settings are printed at start


def test_serve_reports_a_missing_chain(tmp_path: Path, capsys):
    code = main(
        [
            "platform",
            "serve",
            "--db",
            str(tmp_path / "x.sqlite"),
            "--subtensor.network",
            str(tmp_path / "no-chain"),
            "--netuid",
            "1",
            "--port",
            str(_free_port()),
        ]
    )
    assert code == 1
