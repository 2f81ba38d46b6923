"""The hot path's own PostgreSQL connections: lost ones are replaced, and no worker sees it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dojo.platform.services.pgqueue import APPLICATION_NAME
from tests.dojo.platform._support import create_tasks, ranking, sql, subscribed_worker

NEXT = "/api/v1/worker/tasks/next"


def test_a_claim_after_the_database_cut_every_queue_connection_still_succeeds(platform, client, miner):
    if platform.settings.is_sqlite:
        pytest.skip("the queue's own connections are PostgreSQL's")
    create_tasks(client, miner, tasks=10, max_results=1)
    workers = [subscribed_worker(client, miner) for _ in range(8)]

    def claim(worker) -> httpx.Response:
        with httpx.Client(base_url=platform.url, timeout=30) as http:
            return http.post(NEXT, headers=worker.auth)

    with ThreadPoolExecutor(len(workers)) as pool:  # at once: the server opens several connections
        first = list(pool.map(claim, workers))
    assert [r.status_code for r in first] == [200] * len(workers)
    # A restart of the server, a network drop: every connection the queue kept is gone.
    (cut,) = sql(
        platform.database_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = :name AND datname = current_database()",
        name=APPLICATION_NAME,
    )
    assert cut[0] >= 2
    again = client.post(NEXT, headers=workers[0].auth)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first[0].json()["id"]  # its hold, kept
    done = client.post(
        f"/api/v1/worker/tasks/{again.json()['id']}/result",
        json={"resultData": ranking([c["cid"] for c in again.json()["completions"]])},
        headers=workers[0].auth,
    )
    assert done.status_code == 200, done.text
