"""SIGKILL the validator at each step of a task's life, start it again, and check that
nothing was lost or done twice.

The crash points are the validator's failpoints (``template/failpoints.py``): the process
kills itself with SIGKILL at that exact line, so no handler, flush or ``finally`` runs. The
invariants are checked against the validator's, the miners' and the platform's databases:
no accepted task lost, no task twice to one miner (one platform task per request), tasks
whose deadline passed while the validator was down still collected, every round scored
once, and the moving scores exactly the rounds folded in once each.
"""

from __future__ import annotations

import signal
import time

import pytest

from dojo.localnet.net import LocalNet
from tests.e2e._lifecycle import assert_lifecycle_invariants, lifecycle_net, query, wait_for

pytestmark = pytest.mark.e2e

DEADLINE = 20.0
# The deadline of the validator's first two starts: the task they write must still be worth
# sending at the starts after (the validator writes off what has less than a quarter of its
# deadline, and at least 10 s, left), however long a loaded machine takes to start a process.
FAN_OUT_DEADLINE = 300.0


def _net(tmp_path) -> LocalNet:
    return lifecycle_net(
        tmp_path,
        worker_mix=["honest:3", "honest:3", "random:3"],
        task_deadline=DEADLINE,
        task_interval=3.0,
        scoring_interval=1.0,
        collection_grace=60.0,
    )


def _crash_at(net: LocalNet, failpoint: str | None) -> None:
    """Start the validator (again), to die at ``failpoint``; wait until it has."""
    net.start_process(net.validator, env={"DOJO_FAILPOINT": failpoint} if failpoint else None)
    if failpoint is None:
        return
    wait_for(
        lambda: net.validator.process.poll() is not None,
        90,
        f"the validator to die at {failpoint}",
        net,
        poll=0.2,
    )
    assert net.validator.process.returncode == -signal.SIGKILL, net.validator.log()[-2000:]
    assert f"failpoint {failpoint}: SIGKILL" in net.validator.log()


def _count(net: LocalNet, sql: str, *params) -> int:
    return query(net.validator_db, sql, *params)[0][0]


def _miner_tasks(net: LocalNet) -> list[int]:
    return [
        query(net.data_dir(n.name) / "miner.sqlite", "SELECT count(*) FROM miner_tasks")[0][0]
        for n in net.neurons
        if n.role == "miner"
    ]


def test_a_crash_during_fan_out_or_while_waiting_loses_nothing_and_sends_nothing_twice(tmp_path):
    net = _net(tmp_path)
    try:
        net.start(roles=("platform", "miner", "workers"))
        net.task_deadline = FAN_OUT_DEADLINE
        # 1. Killed after the task and its assignments are written, before a byte is sent.
        _crash_at(net, "validator.fanout.after_write")
        first = query(net.validator_db, "SELECT task_id FROM tasks")
        assert (
            len(first) == 1
            and _count(net, "SELECT count(*) FROM assignments WHERE send_status = 'pending'") == 3
        )
        assert _miner_tasks(net) == [0, 0, 0]
        # 2. Started again, it sends them; killed after the miners answered, before it recorded that.
        _crash_at(net, "validator.fanout.after_send")
        assert _miner_tasks(net) == [1, 1, 1]
        assert _count(net, "SELECT count(*) FROM assignments WHERE send_status = 'pending'") == 3
        # 3. Started again (new tasks with the short deadline): the same requests go again and
        #    each miner answers with its first task.
        net.task_deadline = DEADLINE
        _crash_at(net, None)
        wait_for(
            lambda: _count(net, "SELECT count(*) FROM tasks WHERE status = 'waiting'") >= 2,
            60,
            "two tasks sent",
            net,
            poll=0.3,
        )
        assert (
            _count(
                net,
                "SELECT count(*) FROM assignments WHERE task_id = ? AND send_status = 'accepted'",
                first[0][0],
            )
            == 3
        )
        # 4. Killed while waiting for the deadline, kept down past it, started again.
        net.kill("validator")
        waiting = [
            row[0]
            for row in query(
                net.validator_db,
                "SELECT task_id FROM tasks WHERE status = 'waiting' AND task_id != ?",
                first[0][0],
            )
        ]
        assert waiting
        time.sleep(DEADLINE + 1)
        _crash_at(net, None)
        wait_for(
            lambda: (
                _count(
                    net,
                    f"SELECT count(*) FROM tasks WHERE status = 'scored' AND task_id IN ({','.join('?' * len(waiting))})",
                    *waiting,
                )
                == len(waiting)
            ),
            90,
            "the tasks whose deadline passed while the validator was down to be collected and scored",
            net,
        )
        # Their honest miners' results were collected, not written off.
        collected = _count(
            net,
            f"SELECT count(*) FROM assignments WHERE collect_status = 'collected' AND task_id IN "
            f"({','.join('?' * len(waiting))})",
            *waiting,
        )
        assert collected >= 2 * len(waiting)
    finally:
        net.stop()
    assert_lifecycle_invariants(net)


def test_a_crash_during_collection_or_scoring_scores_each_round_once(tmp_path):
    net = _net(tmp_path)
    try:
        net.start(roles=("platform", "miner", "workers"))
        # 1. Killed right after storing the first collection pass, with later tasks still to collect.
        _crash_at(net, "validator.collect.after_store")
        assert _count(net, "SELECT count(*) FROM assignments WHERE collect_status = 'collected'") >= 1
        assert _count(net, "SELECT count(*) FROM assignments WHERE collect_status = 'pending'") >= 1
        assert _count(net, "SELECT count(*) FROM miner_results") >= 1
        # 2. Started again, it collects the rest; killed after scoring a round, before committing it.
        _crash_at(net, "validator.scoring.before_commit")
        assert _count(net, "SELECT count(*) FROM rounds WHERE status = 'scoring'") == 1
        assert _count(net, "SELECT count(*) FROM task_scores") == 0
        assert _count(net, "SELECT count(*) FROM miner_scores") == 0
        # 3. Started again: that round is scored (not a new one); killed just after its commit.
        _crash_at(net, "validator.scoring.after_commit")
        assert query(net.validator_db, "SELECT round_id, status FROM rounds") == [(1, "scored")]
        assert _count(net, "SELECT count(*) FROM miner_scores") == 3
        assert _count(net, "SELECT count(*) FROM assignments WHERE score_sent_at IS NOT NULL") == 0
        # 4. Started again: the scores are delivered, and rounds go on.
        _crash_at(net, None)
        wait_for(
            lambda: _count(net, "SELECT count(*) FROM rounds WHERE status = 'scored'") >= 3,
            90,
            "two more rounds",
            net,
        )
        undelivered = (
            "SELECT count(*) FROM assignments a JOIN tasks t ON t.task_id = a.task_id"
            " WHERE t.round_id = 1 AND a.send_status = 'accepted' AND a.score_sent_at IS NULL"
        )
        wait_for(lambda: _count(net, undelivered) == 0, 30, "round 1's scores delivered", net)
    finally:
        net.stop()
    assert_lifecycle_invariants(net)
