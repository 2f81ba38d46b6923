"""Organic tasks end to end on a local network: an outside caller submits tasks whose right
order it knows; they reach the workers mixed with synthetic ones; the consensus comes back by
GET and by signed webhook, in the intended order; private tasks never reach the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.e2e._lifecycle import lifecycle_net, query, wait_for

pytestmark = pytest.mark.e2e


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_organic_tasks_come_back_ranked_as_intended_signed_and_private(tmp_path):
    net = lifecycle_net(
        tmp_path,
        miners=4,
        worker_mix=["honest:3", "honest:3", "honest:3", "random:3"],
        organic=True,
        organic_rate=0.5,
        task_deadline=12.0,
        task_interval=2.0,
        scoring_interval=1.0,
    )
    folder = net.organic_dir
    try:
        net.start()

        def delivered_twice() -> list[dict]:
            results = [r for r in _lines(folder / "results.jsonl") if r["status"] == "scored"]
            hooks = _lines(folder / "webhooks.jsonl")
            done = {h["task_id"] for h in hooks if h.get("status") == 200}
            ready = [r for r in results if r["task_id"] in done]
            return ready if len(ready) >= 6 else []

        wait_for(delivered_twice, 240, "six organic tasks scored and their webhooks delivered", net, poll=2.0)
        # No key or secret on any process's command line, which every local user reads with ps.
        keys = json.loads(net.keys_path.read_text())
        secrets = [
            v for entry in keys.values() for v in entry.values() if isinstance(v, str) and len(v) >= 16
        ]
        assert any(v in secrets for v in keys["organic"].values())
        for neuron in net.neurons:
            if neuron.process is not None and neuron.process.poll() is None:
                command = Path(f"/proc/{neuron.process.pid}/cmdline").read_bytes().decode()
                assert not [v for v in secrets if v in command], neuron.name
    finally:
        net.stop()
    submitted = {s["task_id"]: s for s in _lines(folder / "submitted.jsonl")}
    results = [r for r in _lines(folder / "results.jsonl") if r["status"] == "scored"]
    # The consensus matches the order the caller intended.
    rhos = [r["spearman"] for r in results]
    assert sum(rhos) / len(rhos) >= 0.9, rhos
    # Mixed with synthetic tasks, and only to the miners the validator trusts.
    kinds = dict(query(net.validator_db, "SELECT source, count(*) FROM tasks GROUP BY source"))
    assert kinds.get("organic", 0) >= len(results) and kinds.get("in-process", 0) >= len(results)
    # Every webhook verified; each was retried (the receiver refuses the first try) under the same id.
    hooks = _lines(folder / "webhooks.jsonl")
    assert hooks and all(h["verified"] for h in hooks)
    by_id: dict[str, list[dict]] = {}
    for h in hooks:
        by_id.setdefault(h["webhook_id"], []).append(h)
    delivered = [attempts for attempts in by_id.values() if attempts[-1]["status"] == 200]
    assert len(delivered) >= 6
    for attempts in delivered:
        assert [a["status"] for a in attempts] == [503, 200] and len({a["task_id"] for a in attempts}) == 1
        result = next((r for r in results if r["task_id"] == attempts[0]["task_id"]), None)
        if result is not None:  # the webhook tells what GET tells
            assert attempts[-1]["ranking"] == result["ranking"]
    # The dataset: public organic tasks, marked organic; never a private one.
    from dojo.cli import main as dojo_main

    assert dojo_main(["export", "--db", str(net.validator_db), "--out", str(tmp_path / "export")]) == 0
    tasks = pq.read_table(tmp_path / "export" / "tasks.parquet").to_pylist()
    exported = {t["task_id"]: t for t in tasks}
    scored = {r["task_id"] for r in results}
    private = [t for t in scored if submitted[t]["visibility"] == "private"]
    public = [t for t in scored if submitted[t]["visibility"] == "public"]
    assert private and public
    assert not set(private) & set(exported)
    assert set(public) <= set(exported) and all(exported[t]["origin"] == "organic" for t in public)
    assert any(t["origin"] == "synthetic" for t in tasks)
