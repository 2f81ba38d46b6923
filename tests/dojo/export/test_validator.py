"""The export inside the validator: a real task's original carried to the export and never to a
miner, the scheduled export (dated folders, ``latest``), and the wandb artifact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from dojo.export import export_to_dated_folder, latest_export
from dojo.validator.config import ValidatorConfig
from dojo.validator.models import TaskCompletion
from dojo.validator.neuron import ValidatorNeuron
from dojo.validator.wandb_log import RoundLogger
from template.chain.local import LocalChain
from template.config import resolve
from tests.dojo.export.conftest import MINERS, ScoredTasks
from tests.dojo.validator.test_neuron import (  # noqa: F401 - network is the fixture
    _collect_until_settled,
    network,
    validator_flags,
)

HK = [hotkey for _, hotkey in MINERS]
ROOT = Path(__file__).resolve().parents[3]


async def test_miners_get_only_the_obfuscated_content_and_the_export_the_original(network, tmp_path):  # noqa: F811
    neuron, miners = await network(
        ["good", "good", "good"],
        **{
            "--wandb.off": "false",
            "--export.interval": "3600",
            "--export.dir": str(tmp_path / "exports"),
        },
    )
    task_id = await neuron.task_round()  # a real task from the in-process synthetic pipeline
    with Session(neuron.store.engine) as db:
        rows = db.scalars(
            select(TaskCompletion)
            .options(undefer(TaskCompletion.original_content))
            .where(TaskCompletion.task_id == task_id)
            .order_by(TaskCompletion.position)
        ).all()
    assert len(rows) == 4 and all(r.original_content is not None for r in rows)
    originals = {f["content"] for r in rows for f in r.original_content["files"]}
    sent_contents = {f["content"] for r in rows for f in r.content["files"]}
    assert originals != sent_contents  # obfuscation changed the code
    for miner in miners:
        [request] = miner.sent.values()
        got = {f.content for c in request.completions for f in c.content.files}
        assert got == sent_contents and not got & (originals - sent_contents)
        assert "original" not in request.model_dump_json()

    neuron.clock.advance(1.2)  # past the 1 s deadline
    await _collect_until_settled(neuron)
    assert await neuron.scoring_round() == 1
    folder = await neuron.export_dataset()
    assert folder.parent == tmp_path / "exports" and (tmp_path / "exports" / "latest").resolve() == folder
    [task] = pq.read_table(folder / "tasks.parquet").to_pylist()
    exported = {f["content"] for c in task["completions"] for f in c["content"]["files"]}
    assert exported == originals and all(c["original_known"] for c in task["completions"])
    assert task["n_miners"] == 3 and task["consensus_ranking"] is not None
    await asyncio.to_thread(neuron.wandb.close, 30.0)
    assert not neuron.wandb.failed and neuron.wandb.logged == 2  # the round, the artifact
    assert list((neuron.config.data_dir / "wandb").glob("offline-run-*/*.wandb"))


async def test_the_export_loop_runs_when_due_off_the_event_loop(network, tmp_path):  # noqa: F811
    neuron, _ = await network(
        ["good"], **{"--export.interval": "0.3", "--export.dir": str(tmp_path / "x"), "--export.keep": "2"}
    )
    assert neuron._export_loop in neuron.loops()
    beats = 0

    async def heartbeat() -> None:  # the event loop stays free while exports run
        nonlocal beats
        while not neuron.stop_event.is_set():
            beats += 1
            await asyncio.sleep(0.01)

    def dated() -> set[str]:
        return {p.name for p in (tmp_path / "x").glob("2*") if not p.is_symlink()}

    loop = asyncio.gather(neuron._export_loop(), heartbeat())
    seen: set[str] = set()
    for _ in range(200):  # 40 s at most: more exports, each in a new second, pruned to two
        seen |= dated()
        if len(seen) >= 4:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail(f"four exports expected, saw {sorted(seen)}")
    neuron.stop_event.set()
    await asyncio.wait_for(loop, 20)
    dated = sorted(p.name for p in (tmp_path / "x").iterdir() if not p.is_symlink())
    assert len(dated) == 2 and latest_export(tmp_path / "x")[0].name == dated[-1]
    assert beats > 50
    config = resolve(ValidatorConfig, [], environ={}, env_file=None)
    assert config.export.interval == 0 and config.export.dir is None and config.export.keep == 3


def test_dated_folders_latest_and_pruning(store, scored: ScoredTasks, tmp_path):
    scored.add({HK[0]: [[1, 2, 3, 4]], HK[1]: [[1, 2, 3, 4]]})
    scored.score()
    root = tmp_path / "exports"
    start = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    (root / ".partial-20261130T000000Z").mkdir(parents=True)  # what a crash mid-export leaves
    for k in range(4):
        summary = export_to_dated_folder(store.url, root, now=start + timedelta(hours=k), keep=2)
        assert summary.out == root / (start + timedelta(hours=k)).strftime("%Y%m%dT%H%M%SZ")
        assert os.readlink(root / "latest") == summary.out.name  # relative
    assert sorted(p.name for p in root.iterdir()) == ["20261201T120000Z", "20261201T130000Z", "latest"]
    found = latest_export(root)
    assert found is not None and found[1] == start + timedelta(hours=3)
    assert pq.read_table(root / "latest" / "tasks.parquet").num_rows == 1
    assert latest_export(tmp_path / "nothing") is None


def test_an_artifact_is_logged_to_an_offline_run(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tasks.parquet").write_bytes(b"PAR1")
    logger = RoundLogger(
        enabled=True,
        project="dojo-test",
        entity=None,
        api_key=None,
        directory=tmp_path / "wandb",
        run_name="validator-test",
        config={},
    )
    logger.log_artifact(tmp_path / "data", "dojo-dataset", {"tasks": 1})
    logger.close(30.0)
    assert logger.logged == 1 and not logger.failed
    run = next((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert list(run.glob("*.wandb"))


def test_a_validator_with_an_export_interval_needs_the_export_handed_in():
    config = resolve(ValidatorConfig, ["--export.interval", "60"], environ={}, env_file=None)
    with pytest.raises(ValueError, match="--export.interval needs the dataset export"):
        ValidatorNeuron(config)


def test_main_validator_hands_the_validator_its_scheduled_export(tmp_path, make_wallet):
    """The validator does not import the export: its entry point wires it in, and the
    process exports on schedule."""
    chain = LocalChain.init(tmp_path / "chain", netuid=1, block_time=0.2, exist_ok=True)
    wallet = make_wallet("validator")
    chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=1000.0)
    flags = {
        **validator_flags(tmp_path),
        "--export.interval": "1",
        "--export.dir": str(tmp_path / "exports"),
    }
    log = tmp_path / "validator.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "main_validator.py"), *[x for kv in flags.items() for x in kv]],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while latest_export(tmp_path / "exports") is None and process.poll() is None:
            assert time.monotonic() < deadline, "no export within 120 s"
            time.sleep(0.2)
        assert process.poll() is None, log.read_text()
        found = latest_export(tmp_path / "exports")
        assert found is not None and (found[0] / "tasks.parquet").is_file()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()
