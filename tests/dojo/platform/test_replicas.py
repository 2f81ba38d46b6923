"""One platform as two replicas behind a real load balancer (HAProxy), on PostgreSQL.

What a person sees is the balancer's URL; which replica answers changes from one request to
the next. Everything a worker or a miner does must therefore hold whichever replica takes
each step, and losing a replica mid-flight (``kill -9``) must lose no answer the platform
acknowledged and count none twice.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import httpx
import pytest

from tests.dojo.platform._replicas import PINNED_TO, SERVED_BY
from tests.dojo.platform._support import (
    create_tasks,
    miner_with_keys,
    ranking,
    sign_in_miner,
    sign_in_worker,
    sql,
    workers_by_invite,
)

pytestmark = pytest.mark.postgres

NEXT = "/api/v1/worker/tasks/next"
CIDS = ["c0", "c1", "c2"]


@pytest.fixture
def replicas(replicated):
    """The replicated platform, its log-in counts cleared (each test logs in a few times)."""
    sql(replicated.database_url, "DELETE FROM login_limits")
    return replicated


def _result(task_id: str) -> str:
    return f"/api/v1/worker/tasks/{task_id}/result"


def _taking_turns(replicas) -> httpx.Client:
    """A client through the balancer whose requests go to the replicas in turn, r0, r1, r0, …:
    round robin that a health check or a retry elsewhere cannot shift (each answer's
    X-Served-By still says where it went)."""
    turns = itertools.cycle([r.name for r in replicas.balanced.replicas])

    def pin(request: httpx.Request) -> None:
        request.headers[PINNED_TO] = next(turns)

    return httpx.Client(base_url=replicas.url, timeout=30, event_hooks={"request": [pin]})


def test_a_worker_claims_through_one_replica_and_submits_through_the_other(replicas):
    with _taking_turns(replicas) as http:
        miner = miner_with_keys(http, replicas.miners[0])
        task_ids = create_tasks(http, miner, tasks=2, max_results=1)
        (worker,) = workers_by_invite(replicas.database_url, miner.hotkey, 1)
        claim = http.post(NEXT, headers=worker.auth)
        assert claim.status_code == 200, claim.text
        task_id = claim.json()["id"]
        submit = http.post(_result(task_id), json={"resultData": ranking(CIDS)}, headers=worker.auth)
        assert submit.status_code == 200, submit.text
        assert submit.json()["replaced"] is False
        # In turn: the claim and the submission went to different replicas.
        assert claim.headers[SERVED_BY] != submit.headers[SERVED_BY]
        # The other task is next, whichever replica is asked; the first one is full.
        following = http.post(NEXT, headers=worker.auth)
        assert following.status_code == 200 and following.json()["id"] != task_id
        assert following.json()["id"] in task_ids
        # The miner sees the answer through either replica.
        seen = set()
        for _ in range(2):
            results = http.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key)
            assert results.status_code == 200
            assert [r["resultData"] for r in results.json()["body"]["taskResults"]] == [
                [{"type": "ranking", "value": {"c0": 1, "c1": 2, "c2": 3}}]
            ]
            seen.add(results.headers[SERVED_BY])
        assert len(seen) == 2


def test_a_session_made_through_one_replica_works_on_the_other(replicas):
    with _taking_turns(replicas) as http:
        # The challenge and the signed answer go to different replicas: the nonce is shared.
        token = sign_in_miner(http, replicas.miners[1])
        auth = {"authorization": f"Bearer {token}"}
        answers = [http.get("/api/v1/miner/me", headers=auth) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert {a.headers[SERVED_BY] for a in answers} == {"r0", "r1"}
        assert answers[0].json()["hotkey"] == replicas.miners[1].ss58_address
        # Logged out through one replica: refused at once by both.
        assert http.post("/api/v1/miner/logout", headers=auth).status_code == 204
        after = [http.get("/api/v1/miner/me", headers=auth) for _ in range(2)]
        assert [a.status_code for a in after] == [401, 401]
        assert {a.headers[SERVED_BY] for a in after} == {"r0", "r1"}

        worker = sign_in_worker(http)  # challenge on one replica, signed log-in on the other
        me = [http.get("/api/v1/worker/me", headers=worker.auth) for _ in range(2)]
        assert [m.status_code for m in me] == [200, 200]
        assert {m.headers[SERVED_BY] for m in me} == {"r0", "r1"}


def test_the_log_in_rate_limit_holds_across_replicas(replicas):
    limit = replicas.login_rate_limit
    with _taking_turns(replicas) as http:
        answers = [
            http.post("/api/v1/miner/challenge", json={"hotkey": replicas.miners[2].ss58_address})
            for _ in range(limit + 2)
        ]
    codes = [a.status_code for a in answers]
    # Counted once for the platform, not once per replica (which would allow twice the limit).
    assert codes == [200] * limit + [429, 429]
    assert {a.headers[SERVED_BY] for a in answers[:limit]} == {"r0", "r1"}
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_kill_9_of_a_replica_under_load_loses_no_acknowledged_answer_and_counts_none_twice(replicas):
    with httpx.Client(base_url=replicas.url, timeout=30) as http:
        miner = miner_with_keys(http, replicas.miners[0])
        task_ids = [
            task_id for _ in range(4) for task_id in create_tasks(http, miner, tasks=10, max_results=3)
        ]
    workers = workers_by_invite(replicas.database_url, miner.hotkey, 12)
    acknowledged: list[tuple[str, str]] = []  # (worker token, task id) answered 200
    refused: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    enough_before, enough_after = 40, 40

    def work(worker) -> None:
        with httpx.Client(base_url=replicas.url, timeout=30) as http:
            while not stop.is_set():
                try:
                    claim = http.post(NEXT, headers=worker.auth)
                    if claim.status_code == 204:
                        return  # nothing left for this worker
                    if claim.status_code != 200:
                        with lock:
                            refused[f"next {claim.status_code}"] += 1
                        continue
                    task_id = claim.json()["id"]
                    submit = http.post(
                        _result(task_id), json={"resultData": ranking(CIDS)}, headers=worker.auth
                    )
                except httpx.TransportError as exc:  # the replica died under this request
                    with lock:
                        refused[type(exc).__name__] += 1
                    continue
                with lock:
                    if submit.status_code == 200:
                        acknowledged.append((worker.token, task_id))
                    else:
                        refused[f"submit {submit.status_code}"] += 1

    def acknowledged_count() -> int:
        with lock:
            return len(acknowledged)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    victim = replicas.balanced.replicas[0]
    try:
        _wait_for(lambda: acknowledged_count() >= enough_before, "answers before the kill")
        victim.kill()
        killed_at = acknowledged_count()
        _wait_for(lambda: acknowledged_count() >= killed_at + enough_after, "answers after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        replicas.balanced.restart(victim)

    tokens = {w.token: w.worker_id for w in workers}
    stored = sql(
        replicas.database_url,
        "SELECT w.public_id, r.task_id FROM results r JOIN workers w ON w.id = r.worker_id"
        " WHERE r.task_id = ANY(:ids)",
        ids=task_ids,
    )
    stored_pairs = Counter((public_id, task_id) for public_id, task_id in stored)
    # Every acknowledged answer is stored, once; an answer cut off with its replica may be
    # stored without an acknowledgement (its worker was told nothing), never twice.
    for token, task_id in acknowledged:
        assert stored_pairs[(tokens[token], task_id)] == 1
    assert all(count == 1 for count in stored_pairs.values())
    assert len(acknowledged) == len(set(acknowledged))
    counts = sql(
        replicas.database_url,
        "SELECT t.id, t.num_results, t.max_results, (SELECT count(*) FROM results r WHERE r.task_id = t.id)"
        " FROM tasks t WHERE t.id = ANY(:ids)",
        ids=task_ids,
    )
    for task_id, num_results, max_results, results in counts:
        assert num_results == results <= max_results, task_id
    # Only the requests the dying replica held can fail; the survivor took the rest.
    assert sum(refused.values()) <= len(workers) * 2, refused


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
