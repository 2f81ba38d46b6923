"""Every content kind through a whole local network: the synthetic API makes code, text,
dialogue and image tasks (``--synthetic-mix``), the validator sends each kind, the simulated
workers rank them on the platform, the validator collects and scores them, and the honest
miners hold most of the weight."""

from __future__ import annotations

import sqlite3

import pytest

from template.chain.local import LocalChain
from tests.e2e._lifecycle import assert_lifecycle_invariants, lifecycle_net, query, validator_status, wait_for

pytestmark = pytest.mark.e2e
KINDS = {"code_generation", "text", "dialogue", "image"}


def test_each_kind_is_sent_ranked_collected_and_scored_and_honest_miners_hold_the_weight(tmp_path):
    net = lifecycle_net(
        tmp_path,
        synthetic=True,
        synthetic_mix="code:1,text:1,dialogue:1,image:1",
        task_deadline=12.0,
        task_interval=2.0,
    )
    chain = LocalChain(net.chain_dir, net.netuid)
    miner_uids = {n.name: n.uid for n in net.neurons if n.role == "miner"}

    def every_kind_scored_and_weights():
        if not net.validator_db.exists():
            return None
        try:
            scored = {
                kind
                for (kind,) in query(
                    net.validator_db,
                    "SELECT DISTINCT t.task_type FROM tasks t WHERE t.status = 'scored' AND EXISTS"
                    " (SELECT 1 FROM assignments a WHERE a.task_id = t.task_id AND a.collect_status = 'collected')",
                )
            }
        except sqlite3.OperationalError:  # the validator has not made its tables yet
            return None
        weights = chain.weights_of(net.validator.uid)
        if scored >= KINDS and validator_status(net)["last_weights"] and len(weights) >= 2:
            return weights
        return None

    try:
        net.start()
        weights = wait_for(every_kind_scored_and_weights, 180, "a scored task of every kind and weights", net)
    finally:
        codes = net.stop()
    assert all(code in (0, -15) for code in codes.values()), codes
    db = net.validator_db
    # Each kind went to the miners, and their workers' rankings came back for it.
    collected = dict(
        query(
            db,
            "SELECT t.task_type, count(*) FROM miner_results r JOIN assignments a ON a.assignment_id = r.assignment_id"
            " JOIN tasks t ON t.task_id = a.task_id GROUP BY t.task_type",
        )
    )
    assert set(collected) >= KINDS and all(collected[k] > 0 for k in KINDS), collected
    # The honest teams ranked by the truth on every kind, the random team did not.
    honest = [weights.get(miner_uids["miner1"], 0), weights.get(miner_uids["miner2"], 0)]
    assert min(honest) > 2 * weights.get(miner_uids["miner3"], 0), weights
    assert sum(honest) > 0.6 * sum(weights.values())
    assert_lifecycle_invariants(net)
