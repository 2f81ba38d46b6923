"""A miner's team and a worker's feedback over the API: the validator's score a miner
reports for a task, each worker's agreement with the others, the team page's figures,
removing a worker and revoking an invite, the team's message, and the dashboard a page at
a time with filters."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from dojo.platform.services import auth
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.platform.services.pgqueue import libpq_conninfo
from dojo.platform.storage.db import Database
from tests.dojo.platform._support import (
    MinerClient,
    WorkerClient,
    create_tasks,
    miner_with_keys,
    ranking,
    sql,
    subscribed_worker,
)

NEXT = "/api/v1/worker/tasks/next"


def _answer(
    client: httpx.Client, worker: WorkerClient, task_id: str, order: list[str], lead_time: float
) -> None:
    response = client.post(
        f"/api/v1/worker/tasks/{task_id}/result",
        json={"resultData": ranking(order), "leadTime": lead_time},
        headers=worker.auth,
    )
    assert response.status_code == 200, response.text


def _score(client: httpx.Client, miner: MinerClient, task_id: str, score: float) -> httpx.Response:
    return client.put(f"/api/v1/tasks/{task_id}/score", json={"score": score}, headers=miner.key)


def _team(client: httpx.Client, miner: MinerClient) -> dict:
    response = client.get("/api/v1/miner/team", headers=miner.session)
    assert response.status_code == 200, response.text
    return response.json()


def _invite(platform, miner: MinerClient) -> str:
    """A new invite link's path (the platform's public URL is not this test server's)."""
    database = Database(platform.database_url, pool_size=1)
    try:
        with database.session() as db:
            return urlsplit(auth.create_invite(db, platform.settings, miner.hotkey)).path
    finally:
        database.dispose()


def _pseudonym(platform, worker: WorkerClient, miner: MinerClient) -> str:
    return worker_pseudonym_for_miner(worker.worker_id, miner.hotkey)


def test_scores_and_agreement_reach_the_workers_and_the_team_page(client, platform, miner, register_hotkey):
    first, second = create_tasks(client, miner, tasks=2)
    a, b, c = (subscribed_worker(client, miner) for _ in range(3))
    # On the first task a and b give the same order, c swaps the last two: against the
    # others' consensus (ranks 1, 2.5, 2.5) a and b agree 6/7 (worked by hand: 2 cov / (var a
    # + var consensus) = 1 / (2/3 + 1/2)); against a and b (1 2 3), c agrees 0.5.
    _answer(client, a, first, ["c0", "c1", "c2"], 30)
    _answer(client, b, first, ["c0", "c1", "c2"], 50)
    _answer(client, c, first, ["c0", "c2", "c1"], 70)
    _answer(client, a, second, ["c2", "c1", "c0"], 10)  # alone on the second task: no agreement

    # The miner reports the validator's score (from a ScoringResult); a repeat replaces it.
    assert _score(client, miner, first, 0.5).status_code == 200
    reported = _score(client, miner, first, 0.8)
    assert reported.status_code == 200, reported.text
    assert reported.json()["taskId"] == first and reported.json()["score"] == 0.8
    # Only a score in 0..1, and only for the miner's own tasks, with its API key.
    assert _score(client, miner, first, 1.5).status_code == 422
    other = miner_with_keys(client, register_hotkey())
    assert _score(client, other, first, 0.1).status_code == 404
    assert (
        client.put(f"/api/v1/tasks/{first}/score", json={"score": 0.1}, headers=miner.session).status_code
        == 401
    )

    history = client.get("/api/v1/worker/history", headers=a.auth).json()["results"]
    mine = {item["taskId"]: item for item in history}
    assert mine[first]["agreement"] == pytest.approx(6 / 7) and mine[first]["validatorScore"] == 0.8
    assert mine[second]["agreement"] is None and mine[second]["validatorScore"] is None
    theirs = client.get("/api/v1/worker/history", headers=c.auth).json()["results"]
    assert theirs[0]["agreement"] == pytest.approx(0.5)

    board = client.get("/api/v1/miner/dashboard", headers=miner.session).json()
    assert {t["id"]: t["score"] for t in board["tasks"]} == {first: 0.8, second: None}

    team = _team(client, miner)
    members = {m["workerId"]: m for m in team["members"]}
    assert set(members) == {_pseudonym(platform, w, miner) for w in (a, b, c)}
    ma = members[_pseudonym(platform, a, miner)]
    assert (ma["done"], ma["skipped"], ma["member"], ma["byInvite"]) == (2, 0, True, False)
    assert ma["medianTime"] == 20  # 10 s and 30 s
    assert ma["agreement"] == pytest.approx(6 / 7) and ma["agreementTasks"] == 1
    assert ma["latestScore"] == 0.8 and ma["latestScoreAt"]
    mc = members[_pseudonym(platform, c, miner)]
    assert mc["agreement"] == pytest.approx(0.5) and mc["medianTime"] == 70
    # The busiest first; the pseudonym is the one in the miner's task results.
    assert team["members"][0]["workerId"] == ma["workerId"]
    results = client.get(f"/api/v1/tasks/task-result/{second}", headers=miner.key).json()
    assert results["body"]["taskResults"][0]["workerId"] == ma["workerId"]


def test_a_removed_worker_loses_access_and_its_holds_at_once(client, platform, miner):
    (task_id,) = create_tasks(client, miner, max_results=1)
    worker, other = subscribed_worker(client, miner), subscribed_worker(client, miner)
    held = client.post(NEXT, headers=worker.auth)
    assert held.json()["id"] == task_id
    assert client.post(NEXT, headers=other.auth).status_code == 204  # its only place is held
    (skipped,) = create_tasks(client, miner)
    assert client.post(f"/api/v1/worker/tasks/{skipped}/skip", headers=other.auth).status_code == 200
    skips = {m["workerId"]: m["skipped"] for m in _team(client, miner)["members"]}
    assert skips == {_pseudonym(platform, worker, miner): 0, _pseudonym(platform, other, miner): 1}

    gone = client.delete(f"/api/v1/miner/team/{_pseudonym(platform, worker, miner)}", headers=miner.session)
    assert gone.status_code == 204, gone.text
    assert client.get("/api/v1/worker/subscriptions", headers=worker.auth).json()["subscriptions"] == []
    assert client.post(NEXT, headers=worker.auth).status_code == 204
    assert client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).status_code == 404
    # Its hold is let go: the place is the other worker's to take.
    assert client.post(NEXT, headers=other.auth).json()["id"] == task_id
    assert [m["workerId"] for m in _team(client, miner)["members"]] == [_pseudonym(platform, other, miner)]
    # Twice, or someone never on the team: 404; the path is bounded.
    again = client.delete(f"/api/v1/miner/team/{_pseudonym(platform, worker, miner)}", headers=miner.session)
    assert again.status_code == 404
    assert client.delete(f"/api/v1/miner/team/{'x' * 65}", headers=miner.session).status_code == 422


def test_an_unused_invite_can_be_revoked_and_a_used_one_shows_who_used_it(client, platform, miner):
    used_link, spare_link = _invite(platform, miner), _invite(platform, miner)
    with httpx.Client(base_url=platform.url) as browser:
        page = browser.get(used_link)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        assert browser.post(used_link, data={"csrf_token": token}).status_code == 303
        joined = browser.get("/api/v1/worker/me").json()["workerId"]
    invites = {i["state"]: i for i in _team(client, miner)["invites"]}
    assert set(invites) == {"used", "unused"}
    assert invites["used"]["usedAt"] and invites["used"]["workerId"] == worker_pseudonym_for_miner(
        joined, miner.hotkey
    )
    member = _team(client, miner)["members"][0]
    assert member["byInvite"] and member["workerId"] == invites["used"]["workerId"]

    used = client.delete(f"/api/v1/miner/invites/{invites['used']['id']}", headers=miner.session)
    assert used.status_code == 409 and "remove them" in used.json()["detail"]
    revoked = client.delete(f"/api/v1/miner/invites/{invites['unused']['id']}", headers=miner.session)
    assert revoked.status_code == 200 and revoked.json() == {"id": invites["unused"]["id"], "revoked": True}
    assert {i["state"] for i in _team(client, miner)["invites"]} == {"used", "revoked"}
    with httpx.Client(base_url=platform.url) as stranger:
        page = stranger.get(spare_link)
        assert page.status_code == 410 and "took this invite link back" in page.text
    # Another miner's invite is not there to revoke.
    other = client.delete("/api/v1/miner/invites/999999", headers=miner.session)
    assert other.status_code == 404


def test_the_team_message_reaches_the_workers_and_the_invite_page(client, platform, miner):
    worker = subscribed_worker(client, miner, name="Alpha team")
    message = "We pay 0.1 TAO per ranked task, every Monday.\nQuestions: @alpha on Discord."
    saved = client.put("/api/v1/miner/team-message", json={"message": f"  {message} "}, headers=miner.session)
    assert saved.status_code == 200, saved.text
    assert saved.json()["message"] == message and saved.json()["updatedAt"]
    too_long = client.put("/api/v1/miner/team-message", json={"message": "x" * 1001}, headers=miner.session)
    assert too_long.status_code == 422
    assert _team(client, miner)["message"] == message

    with httpx.Client(base_url=platform.url, cookies={"dojo_worker_session": worker.token}) as browser:
        for page in ("/tasks", "/keys"):
            html = browser.get(page).text
            assert "We pay 0.1 TAO per ranked task, every Monday." in html, page
    link = _invite(platform, miner)
    with httpx.Client(base_url=platform.url) as stranger:
        assert "Questions: @alpha on Discord." in stranger.get(link).text

    # The log-in page's promise points to these terms rather than making one of its own.
    login = client.get("/login").text
    assert "miners pay people" in login and "each miner says it on their invite page" in login

    cleared = client.put("/api/v1/miner/team-message", json={"message": "  "}, headers=miner.session)
    assert cleared.json() == {"message": None, "updatedAt": None}
    with httpx.Client(base_url=platform.url) as stranger:
        assert "has not said how they pay" in stranger.get(link).text


def test_the_dashboard_pages_by_cursor_and_filters(client, platform, miner):
    ids = []
    for _ in range(3):
        ids += create_tasks(client, miner, tasks=10)
    # Creation times a second apart (the last created newest), the first two on an earlier day.
    for n, task_id in enumerate(ids):
        day = "2026-11-18" if n < 2 else "2026-11-20"
        sql(
            platform.database_url,
            "UPDATE tasks SET created_at = :at WHERE id = :id",
            at=f"{day} 10:{n // 60:02d}:{n % 60:02d}.000000",  # as SQLAlchemy writes times
            id=task_id,
        )
    newest_first = ids[::-1]

    def page(**params: object) -> dict:
        response = client.get("/api/v1/miner/dashboard", params=params, headers=miner.session)
        assert response.status_code == 200, response.text
        return response.json()

    seen, cursor = [], None
    while True:
        board = page(limit=7, **({"cursor": cursor} if cursor else {}))
        assert len(board["tasks"]) <= 7 and board["matching"] == 30 and board["totalTasks"] == 30
        seen += [t["id"] for t in board["tasks"]]
        cursor = board["nextCursor"]
        if cursor is None:
            break
    assert seen == newest_first  # every task once, newest first
    # A task created meanwhile does not shift the next page.
    first = page(limit=7)
    create_tasks(client, miner)
    assert [t["id"] for t in page(limit=7, cursor=first["nextCursor"])["tasks"]] == newest_first[7:14]

    # Filters: the state, and the UTC days a task was created on (both included).
    (full,) = ids[5:6]
    sql(platform.database_url, "UPDATE tasks SET num_results = max_results WHERE id = :id", id=full)
    sql(platform.database_url, "UPDATE tasks SET expire_at = '2026-01-01 00:00:00' WHERE id = :id", id=ids[6])
    assert [t["id"] for t in page(status="complete")["tasks"]] == [full]
    assert [t["id"] for t in page(status="expired")["tasks"]] == [ids[6]]
    assert page(status="open")["matching"] == 31 - 2
    earlier = page(since="2026-11-18", until="2026-11-19")
    assert [t["id"] for t in earlier["tasks"]] == [ids[1], ids[0]] and earlier["matching"] == 2
    assert page(since="2026-11-20", until="2026-11-20")["matching"] == 28

    # Bounded, and refused with a reason when wrong.
    for bad in (
        {"limit": 101},
        {"limit": 0},
        {"status": "done"},
        {"since": "yesterday"},
        {"cursor": "not-ours"},
    ):
        response = client.get("/api/v1/miner/dashboard", params=bad, headers=miner.session)
        assert response.status_code == 422, bad


def test_the_key_the_running_miner_uses_is_the_api_key_it_used_last(client, platform, miner):
    def listed(kind: str) -> dict[str, dict]:
        return {
            k["prefix"]: k for k in client.get(f"/api/v1/miner/{kind}", headers=miner.session).json()["keys"]
        }

    spare = client.post("/api/v1/miner/api-keys", headers=miner.session).json()
    assert not any(k["inUse"] for k in listed("api-keys").values())  # neither was used yet
    create_tasks(client, miner)  # the miner at work, with its DOJO_API_KEY
    keys = listed("api-keys")
    assert keys[miner.api_key[:16]]["inUse"] and keys[miner.api_key[:16]]["lastUsedAt"]
    assert not keys[spare["prefix"]]["inUse"]
    assert not any(k["inUse"] for k in listed("subscription-keys").values())
    # A use a day ago or more is no sign of a running miner.
    sql(platform.database_url, "UPDATE api_keys SET last_used_at = '2026-01-01 00:00:00.000000'")
    assert not any(k["inUse"] for k in listed("api-keys").values())


# The backends waiting on backend :pid's row locks, or queued behind one that is.
WAITING_ON = """
SELECT count(*) FROM pg_stat_activity AS a
WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(a.pid))
   OR EXISTS (SELECT 1 FROM pg_stat_activity AS b
              WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(b.pid)) AND b.pid = ANY(pg_blocking_pids(a.pid)))
"""


def _hold_in_order(client: httpx.Client, worker: WorkerClient, task_ids: tuple[str, ...]) -> None:
    for task_id in task_ids:
        held = client.post(f"/api/v1/worker/tasks/{task_id}/hold", headers=worker.auth)
        assert held.status_code == 200, held.text


def test_two_workers_taken_off_the_team_at_once_both_go_whatever_order_their_holds_are_in(
    client, platform, register_hotkey
):
    """A miner clears out two workers at the same moment (two tabs, a script), each holding
    the same two tasks, taken in opposite orders, while submissions on those tasks are in
    flight. Letting a hold go locks its task, and each removal must take the tasks in one
    order, or the two can wait for each other until PostgreSQL breaks one off (a 500). The
    order a removal finds the holds in is its plan's, which a round may or may not make
    opposite: eight rounds, each a new miner's (the plan of a small team's first removal)."""
    if platform.settings.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: nothing to interleave")

    def remove(miner: MinerClient, worker: WorkerClient) -> httpx.Response:
        with httpx.Client(base_url=platform.url, timeout=30) as http:
            pseudonym = _pseudonym(platform, worker, miner)
            return http.delete(f"/api/v1/miner/team/{pseudonym}", headers=miner.session)

    for _ in range(8):
        miner = miner_with_keys(client, register_hotkey())
        first, second = create_tasks(client, miner, tasks=2, max_results=3)
        one, two = subscribed_worker(client, miner), subscribed_worker(client, miner)
        _hold_in_order(client, one, (first, second))
        _hold_in_order(client, two, (second, first))
        # Submissions in flight on the two tasks hold their rows until both removals wait.
        with psycopg.connect(libpq_conninfo(platform.database_url)) as in_flight:
            in_flight.execute("SELECT 1 FROM tasks WHERE id IN (%s, %s) FOR UPDATE", (first, second))
            pid = in_flight.info.backend_pid
            with ThreadPoolExecutor(2) as pool:
                removals = [pool.submit(remove, miner, worker) for worker in (one, two)]
                deadline = time.monotonic() + 30
                while sql(platform.database_url, WAITING_ON, pid=pid)[0][0] < 2:
                    assert time.monotonic() < deadline, "the removals did not reach the tasks' locks"
                    assert not any(r.done() for r in removals), [
                        r.result().text for r in removals if r.done()
                    ]
                    time.sleep(0.02)
                in_flight.rollback()
                replies = [r.result() for r in removals]
        assert [r.status_code for r in replies] == [204, 204], [r.text for r in replies]
        assert _team(client, miner)["members"] == []
        held = "SELECT count(*) FROM assignments WHERE status = 'held' AND task_id IN (:a, :b)"
        assert sql(platform.database_url, held, a=first, b=second)[0][0] == 0  # every hold let go
