"""Workers: wallet log-in, invite links, subscriptions, the queue, submissions and skips."""

from __future__ import annotations

import re

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from dojo.cli import main as dojo_main
from tests.dojo.platform._support import (
    create_tasks,
    miner_with_keys,
    page_csrf,
    ranking,
    sign_in_worker,
    sql,
    subscribed_worker,
)

RESULT = ranking(["c1", "c0", "c2"])


# --- wallet log-in -----------------------------------------------------------------------------


def test_wallet_login_sets_an_httponly_cookie_and_token(client, platform):
    account = Account.create()
    challenge = client.post("/api/v1/worker/challenge", json={"address": account.address.lower()}).json()
    assert challenge["message"].splitlines()[:3] == [
        "dojo-platform-worker-login",
        f"platform: {platform.settings.public_url}",
        f"address: {account.address}",  # checksummed
    ]
    signature = account.sign_message(encode_defunct(text=challenge["message"])).signature.hex()
    login = client.post("/api/v1/worker/login", json={"address": account.address, "signature": signature})
    assert login.status_code == 200, login.text
    assert "dojo_worker_session=" in login.headers["set-cookie"] and "HttpOnly" in login.headers["set-cookie"]
    me = client.get("/api/v1/worker/me").json()
    assert me == {
        "workerId": login.json()["workerId"],
        "address": account.address,
        "resultsToday": 0,
        "resultsTotal": 0,
        "skippedTotal": 0,
        "leadTimeTotal": 0.0,
        "leadTimeMedian": None,
        "hasRecoveryCode": False,
    }
    # Logging in again is the same worker.
    assert sign_in_worker(client, account).worker_id == login.json()["workerId"]


def test_wallet_login_refuses_other_signers_replays_and_missing_challenges(client):
    account, intruder = Account.create(), Account.create()
    challenge = client.post("/api/v1/worker/challenge", json={"address": account.address}).json()
    forged = intruder.sign_message(encode_defunct(text=challenge["message"])).signature.hex()
    response = client.post("/api/v1/worker/login", json={"address": account.address, "signature": forged})
    assert response.status_code == 401 and "another address" in response.json()["detail"]
    garbage = client.post("/api/v1/worker/login", json={"address": account.address, "signature": "0x1234"})
    assert garbage.status_code == 401

    good = account.sign_message(encode_defunct(text=challenge["message"])).signature.hex()
    body = {"address": account.address, "signature": good, "nonce": challenge["nonce"]}
    assert client.post("/api/v1/worker/login", json=body).status_code == 200
    assert client.post("/api/v1/worker/login", json=body).status_code == 401  # replay

    stranger = Account.create()
    assert (
        client.post("/api/v1/worker/login", json={"address": stranger.address, "signature": good}).status_code
        == 401
    )
    assert client.post("/api/v1/worker/challenge", json={"address": "0x123"}).status_code == 422


def test_worker_logout(client):
    worker = sign_in_worker(client)
    assert client.post("/api/v1/worker/logout", headers=worker.auth).status_code == 204
    assert client.get("/api/v1/worker/me", headers=worker.auth).status_code == 401


# --- invites -----------------------------------------------------------------------------------


def _invite(platform, hotkey: str, capsys) -> str:
    code = dojo_main(
        [
            "platform",
            "invite",
            "--miner",
            hotkey,
            "--db",
            platform.database_url,
            "--public-url",
            platform.url,
            # The registration of the miner's hotkey is checked on the platform's chain.
            "--subtensor.network",
            str(platform.chain.directory),
            "--netuid",
            str(platform.settings.netuid),
        ]
    )
    assert code == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith(f"{platform.url}/invite/inv_")
    return url


def _join(browser: httpx.Client, url: str) -> httpx.Response:
    """Open the invite link as a browser does, then press the page's button (its form)."""
    page = browser.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    return browser.post(url, data={"csrf_token": csrf.group(1)})


def test_invite_link_logs_in_once_and_subscribes(client, platform, miner, capsys):
    url = _invite(platform, miner.hotkey, capsys)
    (task_id,) = create_tasks(client, miner)
    with httpx.Client(base_url=platform.url) as preview:  # a chat app unfurling the link
        shown = preview.get(url)
        assert shown.status_code == 200 and miner.hotkey in shown.text and "Join the team" in shown.text
        assert "set-cookie" not in shown.headers or "dojo_worker_session" not in shown.headers["set-cookie"]
    with httpx.Client(base_url=platform.url) as browser:
        response = _join(browser, url)  # the preview did not spend it
        assert response.status_code == 303 and response.headers["location"] == "/"
        assert "HttpOnly" in response.headers["set-cookie"]
        tasks = browser.get("/api/v1/worker/tasks").json()["tasks"]
        assert [t["id"] for t in tasks] == [task_id]
        subs = browser.get("/api/v1/worker/subscriptions").json()["subscriptions"]
        assert subs[0]["minerHotkey"] == miner.hotkey and subs[0]["keyPrefix"] is None and subs[0]["active"]
    with httpx.Client(base_url=platform.url) as second:
        used = second.get(url)
        assert used.status_code == 410 and used.headers["content-type"].startswith("text/html")
        assert "already used" in used.text
        unknown = second.get(f"{platform.url}/invite/inv_unknown")
        assert unknown.status_code == 404 and "unknown invite link" in unknown.text


def test_joining_by_invite_needs_the_pages_csrf_token(client, platform, miner, capsys):
    url = _invite(platform, miner.hotkey, capsys)
    with httpx.Client(base_url=platform.url) as browser:
        browser.get(url)
        forged = browser.post(url, data={"csrf_token": "not-the-cookie"})
        assert forged.status_code == 403
        assert _join(browser, url).status_code == 303  # the refused post spent nothing
        again = browser.post(url, data={"csrf_token": page_csrf(browser)})
        assert again.status_code == 410 and "already used" in again.text


def test_invite_for_a_logged_in_worker_adds_the_miner(client, platform, miner, register_hotkey, capsys):
    other = miner_with_keys(client, register_hotkey())
    worker = subscribed_worker(client, miner)
    url = _invite(platform, other.hotkey, capsys)
    response = client.post(url, headers=worker.auth)
    assert response.status_code == 303
    assert "dojo_worker_session" not in response.headers.get(
        "set-cookie", ""
    )  # the same worker, no new session
    hotkeys = {
        s["minerHotkey"]
        for s in client.get("/api/v1/worker/subscriptions", headers=worker.auth).json()["subscriptions"]
    }
    assert hotkeys == {miner.hotkey, other.hotkey}


def test_invite_cli_rejects_a_bad_hotkey(platform, capsys):
    assert dojo_main(["platform", "invite", "--miner", "nope", "--db", platform.database_url]) == 2
    assert "SS58" in capsys.readouterr().err


# --- subscriptions -----------------------------------------------------------------------------


def test_subscriptions_add_list_remove(client, miner):
    worker = sign_in_worker(client)
    unknown = client.post(
        "/api/v1/worker/subscriptions", json={"name": "x", "key": "sk-nope"}, headers=worker.auth
    )
    assert unknown.status_code == 404
    api_key = client.post(
        "/api/v1/worker/subscriptions", json={"name": "x", "key": miner.api_key}, headers=worker.auth
    )
    # An API key is not a subscription key, and the worker is told so (not "unknown key").
    assert api_key.status_code == 422
    assert "API key" in api_key.json()["detail"] and "subscription key" in api_key.json()["detail"]
    added = client.post(
        "/api/v1/worker/subscriptions",
        json={"name": "Team A", "key": miner.subscription_key},
        headers=worker.auth,
    )
    assert added.status_code == 201
    assert (
        added.json()["minerHotkey"] == miner.hotkey
        and added.json()["keyPrefix"] == miner.subscription_key[:16]
    )
    again = client.post(
        "/api/v1/worker/subscriptions",
        json={"name": "dup", "key": miner.subscription_key},
        headers=worker.auth,
    )
    assert again.status_code == 409
    listed = client.get("/api/v1/worker/subscriptions", headers=worker.auth).json()["subscriptions"]
    assert [(s["name"], s["active"]) for s in listed] == [("Team A", True)]

    (task_id,) = create_tasks(client, miner)
    assert client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).status_code == 200
    other = sign_in_worker(client)
    assert (
        client.delete(f"/api/v1/worker/subscriptions/{added.json()['id']}", headers=other.auth).status_code
        == 404
    )
    assert (
        client.delete(f"/api/v1/worker/subscriptions/{added.json()['id']}", headers=worker.auth).status_code
        == 204
    )
    assert client.get(f"/api/v1/worker/tasks/{task_id}", headers=worker.auth).status_code == 404
    assert client.get("/api/v1/worker/tasks", headers=worker.auth).json() == {"tasks": []}


def test_disabling_the_subscription_key_cuts_access_at_once(client, miner):
    worker = subscribed_worker(client, miner)
    (task_id,) = create_tasks(client, miner)
    key_id = client.get("/api/v1/miner/subscription-keys", headers=miner.session).json()["keys"][0]["id"]
    client.delete(f"/api/v1/miner/subscription-keys/{key_id}", headers=miner.session).raise_for_status()
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).status_code == 204
    assert (
        client.post(
            f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=worker.auth
        ).status_code
        == 404
    )
    assert (
        client.get("/api/v1/worker/subscriptions", headers=worker.auth).json()["subscriptions"][0]["active"]
        is False
    )
    # A new key from the same miner renews the subscription.
    new_key = client.post("/api/v1/miner/subscription-keys", headers=miner.session).json()["key"]
    renewed = client.post(
        "/api/v1/worker/subscriptions", json={"name": "again", "key": new_key}, headers=worker.auth
    )
    assert renewed.status_code == 201
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == task_id


def test_worker_endpoints_need_a_session_and_csrf_with_cookies(client, miner):
    assert client.post("/api/v1/worker/tasks/next").status_code == 401
    assert (
        client.get("/api/v1/worker/tasks", headers={"authorization": "Bearer dws_forged"}).status_code == 401
    )
    sign_in_worker(client)  # cookie now in the client
    assert client.get("/api/v1/worker/tasks").status_code == 200
    refused = client.post("/api/v1/worker/subscriptions", json={"name": "a", "key": miner.subscription_key})
    assert refused.status_code == 403
    ok = client.post(
        "/api/v1/worker/subscriptions",
        json={"name": "a", "key": miner.subscription_key},
        headers={"x-csrf-token": page_csrf(client)},
    )
    assert ok.status_code == 201


# --- the queue ---------------------------------------------------------------------------------


def test_next_task_is_held_and_shown_without_model_names(client, miner, register_hotkey):
    other = miner_with_keys(client, register_hotkey())
    create_tasks(client, other)  # not this worker's miner
    first, second = create_tasks(client, miner, tasks=2)
    worker = subscribed_worker(client, miner)
    task = client.post("/api/v1/worker/tasks/next", headers=worker.auth)
    assert task.status_code == 200
    body = task.json()
    assert body["id"] in {first, second} and body["heldUntil"] is not None and body["myResult"] is None
    first, second = body["id"], ({first, second} - {body["id"]}).pop()
    assert [c["cid"] for c in body["completions"]] == ["c0", "c1", "c2"]
    assert "model" not in task.text
    # Asking again gives the same held task, not a second hold.
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == first
    client.post(f"/api/v1/worker/tasks/{first}/result", json={"resultData": RESULT}, headers=worker.auth)
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).json()["id"] == second
    client.post(f"/api/v1/worker/tasks/{second}/skip", headers=worker.auth).raise_for_status()
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).status_code == 204
    listed = {
        t["id"]: t["myStatus"]
        for t in client.get("/api/v1/worker/tasks", headers=worker.auth).json()["tasks"]
    }
    assert listed == {first: "done"}  # a skipped task is not one the worker can work
    everything = client.get("/api/v1/worker/tasks?include_closed=true", headers=worker.auth).json()
    assert {t["id"]: t["myStatus"] for t in everything["tasks"]} == {first: "done", second: "skipped"}
    assert client.get("/api/v1/worker/me", headers=worker.auth).json()["resultsToday"] == 1


def test_full_task_is_not_offered_and_refuses_results(client, miner, platform):
    (task_id,) = create_tasks(client, miner, max_results=1)
    holder, late = subscribed_worker(client, miner), subscribed_worker(client, miner)
    assert client.post("/api/v1/worker/tasks/next", headers=holder.auth).json()["id"] == task_id
    assert client.post("/api/v1/worker/tasks/next", headers=late.auth).status_code == 204
    refused = client.post(
        f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=late.auth
    )
    assert refused.status_code == 409
    # The hold lapses: the place is free again.
    sql(platform.database_url, "UPDATE assignments SET held_until = '2000-01-01 00:00:00'")
    assert client.post("/api/v1/worker/tasks/next", headers=late.auth).json()["id"] == task_id
    assert (
        client.post(
            f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=late.auth
        ).status_code
        == 200
    )
    full = client.post(
        f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=holder.auth
    )
    assert full.status_code == 409
    assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["numResults"] == 1


def test_skipping_frees_the_place(client, miner):
    (task_id,) = create_tasks(client, miner, max_results=1)
    first, second = subscribed_worker(client, miner), subscribed_worker(client, miner)
    client.post("/api/v1/worker/tasks/next", headers=first.auth).raise_for_status()
    assert client.post("/api/v1/worker/tasks/next", headers=second.auth).status_code == 204
    assert client.post(f"/api/v1/worker/tasks/{task_id}/skip", headers=first.auth).json() == {
        "taskId": task_id,
        "status": "skipped",
    }
    assert client.post("/api/v1/worker/tasks/next", headers=second.auth).json()["id"] == task_id
    assert client.post("/api/v1/worker/tasks/next", headers=first.auth).status_code == 204


def test_expired_task_is_not_offered_and_refuses_results(client, miner, platform):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    sql(platform.database_url, "UPDATE tasks SET expire_at = '2000-01-01 00:00:00'")
    assert client.post("/api/v1/worker/tasks/next", headers=worker.auth).status_code == 204
    response = client.post(
        f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=worker.auth
    )
    assert response.status_code == 410 and "expired" in response.json()["detail"]
    assert client.get("/api/v1/worker/tasks", headers=worker.auth).json() == {"tasks": []}
    closed = client.get("/api/v1/worker/tasks", params={"include_closed": "true"}, headers=worker.auth).json()
    assert [(t["id"], t["status"]) for t in closed["tasks"]] == [(task_id, "EXPIRED")]


def test_resubmission_replaces_the_result(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    first = client.post(
        f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=worker.auth
    )
    assert first.json()["replaced"] is False
    again = client.post(
        f"/api/v1/worker/tasks/{task_id}/result",
        json={"resultData": ranking(["c2", "c1", "c0"])},
        headers=worker.auth,
    )
    assert again.json()["replaced"] is True
    results = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key).json()["body"][
        "taskResults"
    ]
    assert len(results) == 1 and results[0]["resultData"][0]["value"] == {"c0": 3, "c1": 2, "c2": 1}
    assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["numResults"] == 1
    assert client.post(f"/api/v1/worker/tasks/{task_id}/skip", headers=worker.auth).status_code == 409


def test_no_worker_sees_another_workers_result(client, miner):
    (task_id,) = create_tasks(client, miner)
    author, peer = subscribed_worker(client, miner), subscribed_worker(client, miner)
    client.post(
        f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": RESULT}, headers=author.auth
    ).raise_for_status()
    assert client.get(f"/api/v1/worker/tasks/{task_id}", headers=author.auth).json()["myResult"] == RESULT
    seen = client.get(f"/api/v1/worker/tasks/{task_id}", headers=peer.auth)
    assert seen.json()["myResult"] is None
    assert client.post("/api/v1/worker/tasks/next", headers=peer.auth).json()["myResult"] is None
    assert (
        client.get(
            f"/api/v1/tasks/task-result/{task_id}", headers={"x-api-key": "sk-x", **peer.auth}
        ).status_code
        == 401
    )


BAD_RANKINGS = [
    [{"type": "ranking", "value": {"c0": 1, "c1": 2}}],  # a completion missing
    [{"type": "ranking", "value": {"c0": 1, "c1": 2, "c2": 3, "c9": 4}}],  # an unknown completion
    [{"type": "ranking", "value": {"c0": 1, "c1": 1, "c2": 3}}],  # a tie
    [{"type": "ranking", "value": {"c0": 0, "c1": 1, "c2": 2}}],  # ranks from 0
    [{"type": "ranking", "value": {"c0": 1.0, "c1": 2, "c2": 3}}],  # not integers
    [{"type": "ranking", "value": {"c0": True, "c1": 2, "c2": 3}}],
    [{"type": "ranking", "value": ["c0", "c1"]}],  # not a permutation
    [{"type": "ranking", "value": ["c0", "c1", "c1"]}],
    [{"type": "multi-score", "value": {"c0": 1, "c1": 2, "c2": 3}}],  # the task asks for a ranking
    [{"type": "ranking", "value": {"c0": 1, "c1": 2, "c2": 3}}, {"type": "ranking", "value": {}}],
    [{"type": "ranking", "value": "c0,c1,c2"}],
]


def test_bad_rankings_are_422(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    for result_data in BAD_RANKINGS:
        response = client.post(
            f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": result_data}, headers=worker.auth
        )
        assert response.status_code == 422, (result_data, response.text)
    assert client.get(f"/api/v1/tasks/{task_id}", headers=miner.key).json()["numResults"] == 0


def test_ranking_as_a_list_of_ids_is_accepted(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    response = client.post(
        f"/api/v1/worker/tasks/{task_id}/result",
        json={"resultData": [{"type": "ranking", "value": ["c2", "c0", "c1"]}]},
        headers=worker.auth,
    )
    assert response.status_code == 200
    stored = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key).json()["body"][
        "taskResults"
    ]
    assert stored[0]["resultData"] == [{"type": "ranking", "value": {"c0": 2, "c1": 3, "c2": 1}}]


SCORES = [
    ({"c0": 0, "c1": 5, "c2": 10}, 422),  # below min
    ({"c0": 1, "c1": 5, "c2": 10.01}, 422),  # above max
    ({"c0": 1, "c1": 5}, 422),  # one missing
    ({"c0": 1, "c1": "5", "c2": 3}, 422),
    ({"c0": 1, "c1": False, "c2": 3}, 422),
    ({"c0": 1, "c1": 5.5, "c2": 10}, 200),  # the bounds are inclusive
]


def test_multi_scores_must_be_in_range(client, miner):
    (task_id,) = create_tasks(client, miner, criteria=[{"type": "multi-score", "min": 1, "max": 10}])
    worker = subscribed_worker(client, miner)
    for scores, status in SCORES:
        response = client.post(
            f"/api/v1/worker/tasks/{task_id}/result",
            json={"resultData": [{"type": "multi-score", "value": scores}]},
            headers=worker.auth,
        )
        assert response.status_code == status, (scores, response.text)


def test_unknown_task_is_404_for_workers(client, miner):
    worker = subscribed_worker(client, miner)
    for path in ("/api/v1/worker/tasks/nope/result", "/api/v1/worker/tasks/nope/skip"):
        assert client.post(path, json={"resultData": RESULT}, headers=worker.auth).status_code == 404
    assert client.get("/api/v1/worker/tasks/nope", headers=worker.auth).status_code == 404


def test_miner_dashboard_counts_results_and_agreement(client, miner):
    agree, split = create_tasks(client, miner, tasks=2)
    workers = [subscribed_worker(client, miner) for _ in range(3)]
    for worker in workers:
        client.post(
            f"/api/v1/worker/tasks/{agree}/result", json={"resultData": RESULT}, headers=worker.auth
        ).raise_for_status()
    for worker, order in zip(workers[:2], (["c0", "c1", "c2"], ["c2", "c1", "c0"]), strict=True):
        client.post(
            f"/api/v1/worker/tasks/{split}/result", json={"resultData": ranking(order)}, headers=worker.auth
        ).raise_for_status()
    board = client.get("/api/v1/miner/dashboard", headers=miner.session).json()
    by_id = {t["id"]: t for t in board["tasks"]}
    assert by_id[agree]["numResults"] == 3 and by_id[agree]["agreement"] == pytest.approx(1.0)
    # The validator's kappa: two reversed rankings are opposed (-1), not merely unrelated.
    assert by_id[split]["numResults"] == 2 and by_id[split]["agreement"] == pytest.approx(-1.0)
    assert (board["totalTasks"], board["totalResults"], board["workers"]) == (2, 5, 3)
