"""The hot path's own PostgreSQL connections: lost ones are replaced, and no worker sees it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
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


def _assignment_rows_read_by_a_claim(database_url: str, address: str) -> int:
    """The rows of ``assignments`` one claim by this worker reads, on a connection of its own
    (its plans made afresh, as a new server process makes them), in a transaction rolled back."""
    from dojo.platform.services import queue
    from dojo.platform.services.pgqueue import libpq_conninfo
    from dojo.platform.settings import PlatformSettings
    from dojo.platform.storage.models import Worker

    (worker_id,) = sql(database_url, "SELECT id FROM workers WHERE address = :a", a=address)[0]
    settings = PlatformSettings(database_url=database_url)
    params = queue.next_task_params(settings, Worker(id=worker_id), float(settings.hold_ttl_seconds))
    statement = queue.PG_NEXT_TASK.raw
    with psycopg.connect(libpq_conninfo(database_url)) as connection:
        claimed = connection.execute(statement.pyformat, statement.pg_params(params)).fetchall()
        assert len(claimed) == 1  # an open task was found
        (read,) = connection.execute(
            "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE relname = 'assignments'"
        ).fetchone()
        connection.rollback()
    return int(read)


def test_a_claim_reads_what_the_open_tasks_need_not_the_workers_history(platform, client, miner):
    """A worker ranking for hours keeps an assignment for every task it answered. A claim
    asks about the worker's own answer task by task, for the open tasks it walks (a look-up
    in the ``(task_id, worker_id)`` index), and never reads the worker's history or the whole
    table: the thousandth claim costs what the first did (revision 0010)."""
    if platform.settings.is_sqlite:
        pytest.skip("the claim's plan in question is PostgreSQL's (dojo_next_task)")
    for _ in range(6):  # sixty tasks of one place each, the soonest to end
        create_tasks(client, miner, tasks=10, max_results=1)
    veteran = subscribed_worker(client, miner)
    for _ in range(60):
        task = client.post(NEXT, headers=veteran.auth).json()
        answer = {"resultData": ranking([c["cid"] for c in task["completions"]])}
        done = client.post(f"/api/v1/worker/tasks/{task['id']}/result", json=answer, headers=veteran.auth)
        assert done.status_code == 200, done.text
    open_tasks = len(create_tasks(client, miner, tasks=10, max_results=2))
    newcomer = subscribed_worker(client, miner)
    # As autovacuum does for a platform that has been running: the planner knows the tables.
    sql(platform.database_url, "ANALYZE")
    veteran_reads = _assignment_rows_read_by_a_claim(platform.database_url, veteran.address)
    newcomer_reads = _assignment_rows_read_by_a_claim(platform.database_url, newcomer.address)
    # Sixty answered, none of them open: a row or two an open task at the most, for either.
    assert veteran_reads <= 2 * open_tasks and newcomer_reads <= 2 * open_tasks, (
        veteran_reads,
        newcomer_reads,
    )
