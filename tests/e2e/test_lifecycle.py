"""A task's whole life with real processes on loopback.

A local chain, a worker platform, one validator and three miners, each with its own team
of simulated workers (honest, honest, random) who take the tasks through the platform's
HTTP API. The validator sends tasks, collects the rankings after a 20 s deadline, scores
them and sets weights on the local chain; the honest miners must outweigh the random one,
and what `dojo validator status` and `dojo miner status` say must be what the databases hold.
"""

from __future__ import annotations

import json

import pytest

from template.chain.local import LocalChain
from tests.e2e._lifecycle import (
    assert_lifecycle_invariants,
    hotkeys,
    lifecycle_net,
    miner_status,
    query,
    validator_ready,
    validator_status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_tasks_go_from_generation_to_weights_and_honest_miners_outweigh_the_random_one(tmp_path):
    # A task a second and a round every 6 s: some five tasks a round, 14 in three. With one
    # task a round, the random team's weight rested on three rankings of four answers, each
    # scored 0 to 1 by chance (weights of 0.002 to 0.53 of the honest teams' were seen).
    net = lifecycle_net(tmp_path, task_interval=1.0, scoring_interval=6.0)
    keys = hotkeys(net)
    chain = LocalChain(net.chain_dir, net.netuid)
    validator_uid = net.validator.uid
    miner_uids = {n.name: n.uid for n in net.neurons if n.role == "miner"}

    def weights_after_rounds():
        if not validator_ready(net):
            return None
        status = validator_status(net)
        weights = chain.weights_of(validator_uid)
        if status["rounds_scored"] >= 3 and status["last_weights"] and len(weights) >= 2:
            return weights
        return None

    try:
        net.start()
        weights = wait_for(weights_after_rounds, 150, "three scored rounds and weights on chain", net)
        honest = [weights.get(miner_uids["miner1"], 0), weights.get(miner_uids["miner2"], 0)]
        random_miner = weights.get(miner_uids["miner3"], 0)
        assert min(honest) > 2 * random_miner, weights
    finally:
        codes = net.stop()
    assert all(code == 0 for name, code in codes.items() if name != "platform"), codes
    assert codes["platform"] in (0, -15), codes  # uvicorn re-raises the SIGTERM it handled

    db = net.validator_db
    status = validator_status(net)
    # The status is the database's.
    assert status["tasks"]["total"] == query(db, "SELECT count(*) FROM tasks")[0][0]
    assert status["tasks"]["scored"] == query(db, "SELECT count(*) FROM tasks WHERE status = 'scored'")[0][0]
    assert status["results_collected"] == query(db, "SELECT count(*) FROM miner_results")[0][0] > 0
    assert status["rounds_scored"] == query(db, "SELECT count(*) FROM rounds WHERE status = 'scored'")[0][0]
    for name, uid in miner_uids.items():
        entry = status["miners"][keys[name]]
        assert entry["uid"] == uid
        sent, accepted, answered = query(
            db,
            "SELECT count(*), sum(send_status = 'accepted'), sum(collect_status = 'collected') FROM assignments"
            " WHERE miner_hotkey = ?",
            keys[name],
        )[0]
        assert (entry["tasks_sent"], entry["accepted"], entry["answered"]) == (sent, accepted, answered)
        assert (
            entry["moving_score"]
            == query(db, "SELECT moving_score FROM miner_scores WHERE miner_hotkey = ?", keys[name])[0][0]
        )
        # The miner's own account agrees with the validator's.
        mine = miner_status(net, name)
        assert mine["tasks_received"] == accepted
        scored = query(
            db,
            "SELECT count(*) FROM assignments WHERE miner_hotkey = ? AND score_sent_at IS NOT NULL",
            keys[name],
        )[0][0]
        assert mine["validators"][keys["validator"]]["scores_received"] == scored
        assert mine["results_returned"] >= answered
    # Honest workers ranked the truth; the random team did not.
    assert (
        status["miners"][keys["miner1"]]["moving_score"]
        > 3 * status["miners"][keys["miner3"]]["moving_score"]
    )
    assert_lifecycle_invariants(net)
    # The last weights set are stored with their outcome, and they are the chain's.
    [(uids, weights)] = query(
        db, "SELECT uids, weights FROM weight_sets WHERE outcome = 'set' ORDER BY weight_set_id DESC LIMIT 1"
    )
    stored = dict(zip(json.loads(uids), json.loads(weights), strict=True))
    assert stored == {u: w for u, w in chain.weights_of(validator_uid).items() if w > 0}
