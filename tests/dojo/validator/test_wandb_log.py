"""Tests for the validator's wandb logger: disabled, offline on disk, and failing or hanging wandb."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wandb
from loguru import logger

from dojo.validator import wandb_log
from dojo.validator.wandb_log import RoundLogger

REPO = Path(__file__).resolve().parents[3]
SCORES = [0.1, 0.4, 0.4, 0.9]
METRICS = {"tasks_sent": 8.0, "tasks_collected": 6.0, "tasks_scored": 5.0, "agreement_mean": 0.7}


def make_logger(directory: Path, **overrides) -> RoundLogger:
    kwargs = dict(
        enabled=True,
        project="dojo-test",
        entity=None,
        api_key=None,
        directory=directory,
        run_name="validator-test",
        config={"netuid": 1},
    )
    kwargs.update(overrides)
    return RoundLogger(**kwargs)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


@pytest.fixture
def blocked_init(monkeypatch) -> Iterator[threading.Event]:
    """``wandb.init`` hangs (up to 30 s) until the event is set, then raises."""
    release = threading.Event()

    def hanging_init(*args, **kwargs):
        release.wait(30)
        raise RuntimeError("init gave up")

    monkeypatch.setattr(wandb, "init", hanging_init)
    yield release
    release.set()


def test_disabled_logger_never_imports_wandb(tmp_path):
    # In a fresh interpreter: this test process has imported wandb already.
    code = f"""
import sys
from pathlib import Path
from dojo.validator.wandb_log import RoundLogger
lg = RoundLogger(enabled=False, project="p", entity=None, api_key=None, directory=Path({str(tmp_path)!r}),
                 run_name="r", config={{}})
lg.log_round(1, {{"tasks_sent": 3.0}}, [0.5])
lg.log_weights(10, [0, 1], [0, 65535], "ok")
lg.close()
assert "wandb" not in sys.modules, "wandb was imported"
print(lg.logged, lg.dropped, lg.failed)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "2", "False"]
    assert not any(tmp_path.iterdir())


def test_offline_run_is_written_under_the_directory(tmp_path, warnings_logged):
    lg = make_logger(tmp_path / "wandb")
    for round_id in range(3):
        lg.log_round(round_id, METRICS, SCORES)
        lg.log_weights(100 + round_id, [0, 1, 3], [0, 20000, 45535], "ok")
    lg.log_round(3, METRICS, [])  # a round with no miner scored
    lg.log_weights(None, [], [], "failed")
    lg.close(timeout=60)

    assert (lg.logged, lg.dropped, lg.failed) == (8, 0, False), warnings_logged
    runs = list(tmp_path.rglob("offline-run-*"))
    assert len(runs) == 1
    [run_file] = runs[0].glob("*.wandb")
    keys = (b"round/score_hist", b"round/score_median", b"round/agreement_mean", b"weights/by_uid")
    # wandb's service process writes the file on its own time: run.finish can return before it has.
    assert wait_until(lambda: all(key in run_file.read_bytes() for key in keys))
    assert warnings_logged == []


def test_events_after_close_are_dropped(tmp_path):
    lg = make_logger(tmp_path)
    lg.close(timeout=60)
    lg.log_round(1, METRICS, SCORES)
    lg.close(timeout=60)  # a second close is harmless
    assert (lg.logged, lg.dropped, lg.failed) == (0, 1, False)


def test_failing_init_turns_the_logger_off(tmp_path, monkeypatch, warnings_logged):
    def failing_init(*args, **kwargs):
        raise RuntimeError("no such entity")

    monkeypatch.setattr(wandb, "init", failing_init)
    lg = make_logger(tmp_path)
    lg.log_round(1, METRICS, SCORES)
    assert wait_until(lambda: lg.failed)
    lg.log_round(2, METRICS, SCORES)
    lg.log_weights(5, [0], [1], "ok")
    lg.close(timeout=5)

    assert lg.logged == 0
    assert lg.dropped == 3
    assert len(warnings_logged) == 1
    assert "init failed" in warnings_logged[0] and "no such entity" in warnings_logged[0]


def test_failing_log_turns_the_logger_off_and_finishes_the_run(tmp_path, monkeypatch, warnings_logged):
    def failing_histogram(*args, **kwargs):
        raise ValueError("bad histogram")

    monkeypatch.setattr(wandb, "Histogram", failing_histogram)
    lg = make_logger(tmp_path)
    lg.log_round(1, METRICS, SCORES)
    assert wait_until(lambda: lg.failed, timeout=60)
    lg.log_round(2, METRICS, SCORES)
    lg.close(timeout=60)

    assert (lg.logged, lg.dropped) == (0, 1)
    assert len(warnings_logged) == 1
    assert "log failed" in warnings_logged[0] and "bad histogram" in warnings_logged[0]
    assert list(tmp_path.rglob("offline-run-*/*.wandb"))


def test_directory_that_cannot_be_created_fails_quietly(tmp_path, warnings_logged):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    lg = make_logger(not_a_dir / "wandb")
    assert wait_until(lambda: lg.failed, timeout=60)
    lg.close(timeout=5)
    assert len(warnings_logged) == 1 and "init failed" in warnings_logged[0]


def test_hanging_init_blocks_neither_logging_nor_close(tmp_path, blocked_init, warnings_logged):
    lg = make_logger(tmp_path)
    lg.log_round(1, METRICS, SCORES)
    lg.log_weights(5, [0, 1], [1, 2], "ok")

    started = time.monotonic()
    lg.close(timeout=1)
    assert time.monotonic() - started < 5  # bounded by its timeout, not by the hanging init
    assert lg.logged == 0 and not lg.failed
    assert any("not finished" in m for m in warnings_logged)

    # When init finally gives up, the logger turns off and drops what was waiting.
    blocked_init.set()
    assert wait_until(lambda: lg.failed)
    assert wait_until(lambda: lg.dropped == 2)


def test_full_queue_drops_the_overflow_and_flushes_the_rest(tmp_path, monkeypatch):
    release = threading.Event()
    real_init = wandb.init

    def slow_init(*args, **kwargs):
        release.wait(30)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", slow_init)
    lg = make_logger(tmp_path)
    overflow = 5
    for round_id in range(wandb_log._QUEUE_SIZE + overflow):
        lg.log_round(round_id, METRICS, SCORES)
    assert lg.dropped == overflow

    release.set()
    lg.close(timeout=60)
    assert (lg.logged, lg.dropped, lg.failed) == (wandb_log._QUEUE_SIZE, overflow, False)
