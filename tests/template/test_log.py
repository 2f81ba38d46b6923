"""Where the neurons' log lines go: below WARNING to stdout, the rest to stderr (pm2 keeps the
two in separate files), and the release each start runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from template import __version__, spec_version
from template.chain.local import LocalChain

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_information_goes_to_stdout_and_problems_to_stderr() -> None:
    done = _run(
        "from loguru import logger\n"
        "from template.log import setup_logging\n"
        "setup_logging(debug=True, neuron='validator', split=True)\n"
        "for level in ('debug', 'info', 'success', 'warning', 'error', 'critical'):\n"
        "    getattr(logger, level)(f'a {level} line')\n"
    )
    assert done.returncode == 0, done.stderr
    out = [line.rsplit("| ", 1)[-1] for line in done.stdout.splitlines()]
    err = [line.rsplit("| ", 1)[-1] for line in done.stderr.splitlines()]
    assert out == ["a debug line", "a info line", "a success line"]
    assert err == ["a warning line", "a error line", "a critical line"]
    assert "| validator |" in done.stdout.splitlines()[0]


def test_without_debug_debug_lines_go_nowhere_and_a_command_can_keep_stdout_for_its_output() -> None:
    done = _run(
        "from loguru import logger\n"
        "from template.log import setup_logging\n"
        "setup_logging(split=True)\n"
        "logger.debug('hidden'); logger.info('shown')\n"
        "setup_logging()\n"
        "logger.info('to stderr'); print('the output')\n"
    )
    assert done.returncode == 0, done.stderr
    assert "hidden" not in done.stdout + done.stderr
    assert [line.rsplit("| ", 1)[-1] for line in done.stdout.splitlines()] == ["shown", "the output"]
    assert done.stderr.rstrip().endswith("| to stderr")


def test_a_neuron_logs_its_release_first_even_when_it_cannot_start(tmp_path: Path, make_wallet) -> None:
    LocalChain.init(tmp_path / "chain", netuid=1)
    make_wallet("unregistered")
    done = subprocess.run(
        [
            sys.executable, str(ROOT / "main_validator.py"), "--netuid", "1",
            "--subtensor.network", str(tmp_path / "chain"), "--wallet.name", "unregistered",
            "--wallet.path", str(tmp_path / "wallets"), "--neuron.data_dir", str(tmp_path / "data"),
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.endswith(
        f"| INFO    | validator | dojo {__version__} validator starting (spec version {spec_version()})"
    )
    assert "not registered" in done.stderr and "settings:" not in done.stderr


def test_a_value_from_outside_cannot_forge_a_line_or_send_a_terminal_escape() -> None:
    done = _run(
        "from loguru import logger\n"
        "from template.log import quoted, setup_logging\n"
        "setup_logging(neuron='validator')\n"
        "forged = 'w1\\n2026-01-01 00:00:00.000 | ERROR   | validator | forged\\x1b[2J'\n"
        "logger.info('worker {} refused', quoted(forged))\n"
        "logger.info('a call site that forgot: {}', 'bell\\x07 and clear\\x1b[2J')\n"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and all("| INFO    | validator |" in line for line in lines)
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert lines[0].endswith(
        "worker 'w1\\n2026-01-01 00:00:00.000 | ERROR   | validator | forged\\x1b[2J' refused"
    )
    assert lines[1].endswith("bell\\x07 and clear\\x1b[2J")
