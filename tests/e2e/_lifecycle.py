"""Helpers for the whole-life tests: a local network with tasks flowing, and what its
databases say."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from dojo.cli import main as dojo_main
from dojo.localnet.net import LocalNet


def lifecycle_net(directory: Path, **overrides: Any) -> LocalNet:
    """Platform, one validator, three miners with teams honest, honest, random; short deadline."""
    settings: dict[str, Any] = {
        "miners": 3,
        "platform": True,
        "worker_mix": ["honest:3", "honest:3", "random:3"],
        "block_time": 0.2,
        "epoch_length": 5,
        "heartbeat_interval": 0.5,
        "task_deadline": 20.0,
        "task_interval": 4.0,
        "scoring_interval": 2.0,
        "collection_grace": 30.0,
        "debug": True,
        **overrides,
    }
    net = LocalNet(directory, **settings)
    net.prepare()
    return net


def cli_json(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = dojo_main([*args, "--json"])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def validator_status(net: LocalNet) -> dict[str, Any]:
    return cli_json("validator", "status", "--data-dir", str(net.data_dir("validator")))


def validator_ready(net: LocalNet) -> bool:
    """Whether the validator has made its database (the file comes before its tables)."""
    from dojo.validator.store import TaskStore

    if not net.validator_db.exists():
        return False
    store = TaskStore.read_only(net.validator_db)
    try:
        return store.ready()
    finally:
        store.close()


def miner_status(net: LocalNet, name: str) -> dict[str, Any]:
    return cli_json("miner", "status", "--data-dir", str(net.data_dir(name)))


def query(path: Path, sql: str, *params: Any) -> list[tuple]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def wait_for(predicate, timeout: float, what: str, net: LocalNet, poll: float = 1.0) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the logs' tails."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll)
    tails = {n.name: n.log()[-1500:] for n in net.neurons if n.role in ("validator", "miner")}
    raise AssertionError(f"{what} not within {timeout:g}s (last: {last}); logs: {tails}")


def moving_scores_replayed(
    db: Path, alpha: float = 0.1, initial: dict[str, float] | None = None
) -> dict[str, float]:
    """The moving scores recomputed from the rounds' task scores, round by round (from
    ``initial``, the scores a test gave before the first): what the validator's
    ``miner_scores`` must hold if every round was folded in exactly once."""
    rows = query(
        db,
        "SELECT r.round_id, s.miner_hotkey, s.score FROM task_scores s JOIN rounds r ON r.round_id = s.round_id"
        " WHERE r.status = 'scored' ORDER BY r.round_id",
    )
    per_round: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for round_id, hotkey, score in rows:
        per_round[round_id][hotkey].append(score)
    moving: dict[str, float] = dict(initial or {})
    for round_id in sorted(per_round):
        for hotkey, scores in per_round[round_id].items():
            moving[hotkey] = (1 - alpha) * moving.get(hotkey, 0.0) + alpha * sum(scores) / len(scores)
    return moving


def platform_tasks_per_miner(net: LocalNet) -> dict[str, int]:
    rows = query(
        net.directory / "data" / "platform" / "platform.sqlite",
        "SELECT m.hotkey, count(t.id) FROM miners m LEFT JOIN tasks t ON t.miner_id = m.id GROUP BY m.hotkey",
    )
    return dict(rows)


def assert_lifecycle_invariants(net: LocalNet, initial_moving: dict[str, float] | None = None) -> None:
    """What every crash must leave true, checked against the validator's, the miners' and
    the platform's databases (with every process stopped)."""
    db = net.validator_db
    # No task went twice to one miner, and each accepted request is one platform task.
    assert (
        query(db, "SELECT task_id, miner_hotkey, count(*) FROM assignments GROUP BY 1, 2 HAVING count(*) > 1")
        == []
    )
    # No worker's result was stored twice.
    assert (
        query(db, "SELECT assignment_id, worker_id FROM miner_results GROUP BY 1, 2 HAVING count(*) > 1")
        == []
    )
    accepted = dict(
        query(db, "SELECT miner_hotkey, count(*) FROM assignments WHERE send_status = 'accepted' GROUP BY 1")
    )
    platform = platform_tasks_per_miner(net)
    for neuron in (n for n in net.neurons if n.role == "miner"):
        hotkey = _hotkey(net, neuron.name)
        received = query(
            net.data_dir(neuron.name) / "miner.sqlite",
            "SELECT count(*), count(DISTINCT dojo_task_id) FROM miner_tasks",
        )[0]
        assert received[0] == received[1] == platform.get(hotkey, 0), (neuron.name, received, platform)
        assert accepted.get(hotkey, 0) <= received[0]
    # Every round is whole: scored once, each of its tasks scored in it and in no other.
    assert query(db, "SELECT count(*) FROM rounds WHERE status != 'scored'") == [(0,)] or _running(net)
    assert (
        query(db, "SELECT task_id FROM task_scores GROUP BY task_id HAVING count(DISTINCT round_id) > 1")
        == []
    )
    assert (
        query(
            db,
            "SELECT t.task_id FROM tasks t WHERE t.status = 'scored' AND NOT EXISTS"
            " (SELECT 1 FROM task_scores s WHERE s.task_id = t.task_id AND s.round_id = t.round_id)",
        )
        == []
    )
    # The moving scores are exactly the rounds folded in once each, in order.
    stored = dict(query(db, "SELECT miner_hotkey, moving_score FROM miner_scores"))
    replayed = moving_scores_replayed(db, initial=initial_moving)
    assert set(stored) == set(replayed)
    for hotkey, value in replayed.items():
        assert abs(stored[hotkey] - value) < 1e-9, (hotkey, stored[hotkey], value)


def _running(net: LocalNet) -> bool:
    return net.validator.alive


def _hotkey(net: LocalNet, name: str) -> str:
    from template.wallets import load_wallet

    return load_wallet(name, "default", str(net.wallet_path)).hotkey.ss58_address


def hotkeys(net: LocalNet) -> dict[str, str]:
    return {n.name: _hotkey(net, n.name) for n in net.neurons if n.role in ("miner", "validator")}
