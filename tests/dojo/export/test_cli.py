"""``dojo export``: flags, the summary, errors a user can make, the progress bar on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dojo.cli import main
from tests.dojo.export.conftest import MINERS, ScoredTasks

HK = [hotkey for _, hotkey in MINERS]
ROOT = Path(__file__).parents[3]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    from dojo.validator.store import TaskStore

    store = TaskStore(tmp_path / "validator.sqlite")
    scored = ScoredTasks(store)
    for _ in range(3):
        scored.add({HK[0]: [[1, 2, 3, 4]], HK[1]: [[1, 2, 3, 4]], HK[2]: [[2, 1, 3, 4]]})
    scored.score()
    store.close()
    return tmp_path / "validator.sqlite"


def test_export_writes_the_files_and_says_what_it_wrote(database, tmp_path, capsys):
    assert main(["export", "--db", str(database), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "exported 3 tasks and 18 preference pairs" in out and str(tmp_path / "out" / "README.md") in out
    assert pq.read_table(tmp_path / "out" / "tasks.parquet").num_rows == 3
    assert (
        main(
            [
                "export",
                "--db",
                f"sqlite:///{database}",
                "--out",
                str(tmp_path / "out"),
                "--format",
                "jsonl",
                "--since",
                "2000-01-01",
                "--min-agreement",
                "0.99",
                "--include-synthetic-metadata",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "jsonl" and summary["tasks"] == 3 and summary["min_agreement"] == 0.99
    assert summary["synthetic_metadata"] is True and summary["since"] == "2000-01-01T00:00:00Z"
    # The Parquet files of the first export are gone: the card describes only what is there.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "README.md",
        "preferences.jsonl",
        "tasks.jsonl",
    ]


def test_errors_name_what_was_wrong(tmp_path, capsys):
    assert main(["export", "--db", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path / "out")]) == 1
    assert "no database at" in capsys.readouterr().err
    for flags, message in (
        (["--since", "last week"], "is not a date"),
        (["--min-agreement", "2"], "between -1 and 1"),
        (["--format", "csv"], "invalid choice"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["export", "--db", "x", "--out", "y", *flags])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(database, tmp_path):
    code = "import sys; from dojo.cli import main; sys.exit(main())"
    args = [sys.executable, "-c", code, "export", "--db", str(database), "--out", str(tmp_path / "tty")]
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            args,
            stdout=secondary,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
        )
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(60) == 0
    finally:
        os.close(primary)
    assert b"exporting" in seen and b"exported 3 tasks" in seen
    piped = subprocess.run([*args[:-1], str(tmp_path / "pipe")], capture_output=True, cwd=ROOT, timeout=60)
    assert piped.returncode == 0 and b"exporting" not in piped.stdout and b"exported 3 tasks" in piped.stdout
