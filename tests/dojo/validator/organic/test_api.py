"""The organic API over real HTTP on loopback: who may call, what they may send, how much,
and what they see. Every refusal is checked for its status and its reason."""

from __future__ import annotations

import json
import time
import uuid

import bittensor as bt
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from commons.organic import OrganicAuthError, OrganicClient, TaskView
from dojo.validator.models import OrganicKey, OrganicTask
from dojo.validator.organic.api import TaskIds
from template.clock import utcnow
from tests.dojo.validator.organic.conftest import text_task


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_task_is_on_disk_when_accepted_and_only_its_caller_sees_it(organic_api):
    mine, theirs = organic_api.key(name="mine"), organic_api.key(name="theirs")
    with httpx.Client(base_url=organic_api.url) as http:
        r = http.post(
            "/v1/tasks", json=text_task(external_id="e1", visibility="public"), headers=_bearer(mine.api_key)
        )
        assert r.status_code == 202, r.text
        assert r.headers["X-RateLimit-Limit"] == "1000" and r.headers["X-RateLimit-Remaining"] == "999"
        accepted = r.json()
        assert accepted["status"] == "queued" and not accepted["duplicate"]
        # On disk before the answer: another connection reads it now.
        with Session(organic_api.store.engine) as db:
            row = db.get(OrganicTask, accepted["task_id"])
            assert row is not None and row.status == "queued" and row.visibility == "public"
            assert row.request["completions"][1] == {
                "label": "a1",
                "model": "m1",
                "content": {"kind": "text", "text": "answer 1"},
            }
        view = TaskView.model_validate(
            http.get(f"/v1/tasks/{accepted['task_id']}", headers=_bearer(mine.api_key)).json()
        )
        assert view.status == "queued" and view.external_id == "e1" and view.result is None
        # Another key's task is a 404, exactly as an unknown one.
        other = http.get(f"/v1/tasks/{accepted['task_id']}", headers=_bearer(theirs.api_key))
        unknown = http.get("/v1/tasks/nope", headers=_bearer(theirs.api_key))
        assert other.status_code == unknown.status_code == 404
        assert http.get("/v1/tasks", headers=_bearer(theirs.api_key)).json()["tasks"] == []
        # The same external id with the same body: the same task; with another body: 409.
        again = http.post(
            "/v1/tasks", json=text_task(external_id="e1", visibility="public"), headers=_bearer(mine.api_key)
        )
        assert (
            again.status_code == 202
            and again.json()["task_id"] == accepted["task_id"]
            and again.json()["duplicate"]
        )
        changed = http.post("/v1/tasks", json=text_task(4, external_id="e1"), headers=_bearer(mine.api_key))
        assert changed.status_code == 409 and accepted["task_id"] in changed.json()["detail"]
        # ... and the duplicate did not count against the quota.
        usage = http.get("/v1/usage", headers=_bearer(mine.api_key)).json()
        assert usage["daily_quota"]["used"] == 1 and usage["kind"] == "key"


def test_keys_are_stored_hashed_and_refused_when_missing_wrong_or_revoked(organic_api):
    key = organic_api.key()
    secret = httpx.get(f"{organic_api.url}/v1/webhook-secret", headers=_bearer(key.api_key))
    assert secret.status_code == 403 and "shown once" in secret.json()["detail"]
    with Session(organic_api.store.engine) as db:
        row = db.get(OrganicKey, key.key_id)
        assert row.key_hash != key.api_key and key.api_key not in json.dumps([row.key_hash, row.key_prefix])
    with httpx.Client(base_url=organic_api.url) as http:
        assert http.get("/v1/usage").status_code == 401
        assert "no credentials" in http.get("/v1/usage").json()["detail"]
        assert http.get("/v1/usage", headers={"Authorization": "Basic abc"}).status_code == 401
        wrong = http.get("/v1/usage", headers=_bearer("dojo_org_not-a-key"))
        assert wrong.status_code == 401 and wrong.json() == {"detail": "unknown API key"}
        assert http.get("/v1/usage", headers=_bearer(key.api_key)).status_code == 200
        assert organic_api.organic.revoke(key.key_id, utcnow())
        deadline = time.monotonic() + 10
        while (r := http.get("/v1/usage", headers=_bearer(key.api_key))).status_code == 200:
            assert time.monotonic() < deadline, "a revoked key kept working"
            time.sleep(0.1)
        assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_bad_bodies_get_a_precise_status_and_nothing_is_stored(organic_api):
    key = organic_api.key()
    with httpx.Client(base_url=organic_api.url, headers=_bearer(key.api_key)) as http:
        cases = {
            "not json": (
                http.post("/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}),
                422,
                "invalid request",
            ),
            "one completion": (http.post("/v1/tasks", json=text_task(1)), 422, "completions"),
            "unknown kind": (
                http.post(
                    "/v1/tasks",
                    json={**text_task(), "completions": [{"content": {"kind": "video", "url": "x"}}] * 2},
                ),
                422,
                "completions.0.content",
            ),
            "same ids": (
                http.post(
                    "/v1/tasks",
                    json={
                        **text_task(),
                        "completions": [{"id": "x", "content": {"kind": "text", "text": "a"}}] * 2,
                    },
                ),
                422,
                "unique",
            ),
            "too long": (http.post("/v1/tasks", json={**text_task(), "prompt": "p" * 20_001}), 422, "prompt"),
            "deadline": (http.post("/v1/tasks", json=text_task(deadline=5)), 422, "deadline"),
            "miners": (http.post("/v1/tasks", json=text_task(miners=500)), 422, "miners"),
            "criteria": (
                http.post("/v1/tasks", json=text_task(criteria={"type": "multi-score", "min": 5, "max": 1})),
                422,
                "max must be greater",
            ),
            "oversized": (
                http.post(
                    "/v1/tasks", content=b"x" * (2 << 20), headers={"content-type": "application/json"}
                ),
                413,
                "exceeds the limit",
            ),
        }
        for name, (response, status, words) in cases.items():
            assert response.status_code == status, (name, response.text)
            assert words in response.json()["detail"], (name, response.json())
        # A multi-score task within the rules is taken.
        ok = http.post("/v1/tasks", json=text_task(criteria={"type": "multi-score", "min": 1, "max": 10}))
        assert ok.status_code == 202, ok.text
    with Session(organic_api.store.engine) as db:
        assert len(db.scalars(select(OrganicTask)).all()) == 1


@pytest.mark.parametrize(
    "url, words",
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:8080/hook", "loopback"),
        ("ftp://example.com/hook", "http or https"),
        ("http://user:pw@8.8.8.8/hook", "user name"),
    ],
)
def test_callback_urls_to_private_places_are_refused(organic_api, url, words):
    key = organic_api.key()
    r = httpx.post(
        f"{organic_api.url}/v1/tasks", json=text_task(callback_url=url), headers=_bearer(key.api_key)
    )
    assert r.status_code == 422 and words in r.json()["detail"], r.text


def test_with_private_callbacks_allowed_the_validators_own_ports_stay_refused(tmp_path, make_wallet):
    from tests.dojo.validator.organic.conftest import start_api

    api_iter = start_api(tmp_path, make_wallet, **{"--organic.allow_private_callbacks": "true"})
    api = next(api_iter)
    try:
        key = api.key()
        own = {api.config.organic.port, api.config.axon.port}
        with httpx.Client(base_url=api.url, headers=_bearer(key.api_key)) as http:
            for port in own:
                r = http.post("/v1/tasks", json=text_task(callback_url=f"http://127.0.0.1:{port}/x"))
                assert r.status_code == 422 and "own services" in r.json()["detail"], r.text
            assert (
                http.post("/v1/tasks", json=text_task(callback_url="http://127.0.0.1:9/x")).status_code == 202
            )
    finally:
        next(api_iter, None)


def test_a_flood_past_the_rate_limit_gets_429_with_retry_after(organic_api):
    key = organic_api.key(rate=5)
    with httpx.Client(base_url=organic_api.url, headers=_bearer(key.api_key)) as http:
        answers = [http.get("/v1/usage") for _ in range(8)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    assert [r.headers["X-RateLimit-Remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
    refused = answers[5]
    assert refused.headers["X-RateLimit-Limit"] == "5" and refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "rate limit of 5 requests per minute" in refused.json()["detail"]


def test_the_daily_quota_is_spent_then_refused_until_the_next_day(organic_api):
    key = organic_api.key(quota=2)
    with httpx.Client(base_url=organic_api.url, headers=_bearer(key.api_key)) as http:
        codes = [http.post("/v1/tasks", json=text_task()).status_code for _ in range(3)]
        usage = http.get("/v1/usage").json()
        spent = http.post("/v1/tasks", json=text_task())
    assert codes == [202, 202, 429]
    assert "daily quota of 2 tasks is spent" in spent.json()["detail"]
    assert 0 < int(spent.headers["Retry-After"]) <= 86400
    assert usage["daily_quota"] == {**usage["daily_quota"], "limit": 2, "used": 2, "remaining": 0}


def test_listing_is_paged_newest_first(organic_api):
    key = organic_api.key()
    with httpx.Client(base_url=organic_api.url, headers=_bearer(key.api_key)) as http:
        ids = [http.post("/v1/tasks", json=text_task()).json()["task_id"] for _ in range(5)]
        seen, cursor = [], None
        while True:
            page = http.get("/v1/tasks", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            seen += [t["task_id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]
        assert http.get("/v1/tasks", params={"status": "scored"}).json()["tasks"] == []
        assert len(http.get("/v1/tasks", params={"status": "queued"}).json()["tasks"]) == 5
        assert http.get("/v1/tasks", params={"cursor": "garbage"}).status_code == 422
        assert http.get("/v1/tasks", params={"status": "bogus"}).status_code == 422
    schema = httpx.get(f"{organic_api.url}/openapi.json").json()
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/usage"} <= set(schema["paths"])


async def test_other_subnets_validators_call_with_their_hotkey(organic_api):
    receiver = organic_api.validator.hotkey.ss58_address
    staked = organic_api.callers["staked"].hotkey
    async with OrganicClient(organic_api.url, keypair=staked, validator_hotkey=receiver) as client:
        accepted = await client.submit(text_task())
        assert (await client.task(accepted.task_id)).status == "queued"
        assert (await client.usage()).kind == "hotkey"
        secret = await client.webhook_secret()
    with Session(organic_api.store.engine) as db:
        row = db.scalars(select(OrganicKey).where(OrganicKey.hotkey == staked.ss58_address)).one()
        assert row.kind == "hotkey" and secret == row.webhook_secret and secret.startswith("whsec_")
    for name, words in (("poor", "below the minimum 1000"), ("unpermitted", "no validator permit")):
        async with OrganicClient(
            organic_api.url, keypair=organic_api.callers[name].hotkey, validator_hotkey=receiver
        ) as client:
            with pytest.raises(OrganicAuthError) as refused:
                await client.submit(text_task())
        assert refused.value.status_code == 403 and words in refused.value.detail
    # A hotkey on no caller subnet at all, and a signature for another validator.
    async with OrganicClient(
        organic_api.url, keypair=organic_api.validator.hotkey, validator_hotkey=receiver
    ) as client:
        with pytest.raises(OrganicAuthError, match="not registered on subnet 7"):
            await client.usage()
    async with OrganicClient(organic_api.url, keypair=staked, validator_hotkey=staked.ss58_address) as client:
        with pytest.raises(OrganicAuthError, match="WrongReceiver"):
            await client.usage()


def test_a_replayed_signed_request_is_refused(organic_api):
    receiver = organic_api.validator.hotkey.ss58_address
    body = json.dumps(text_task()).encode()
    headers = bt.http_auth.sign(
        organic_api.callers["staked"].hotkey,
        method="POST",
        path="/v1/tasks",
        body=body,
        receiver_ss58=receiver,
    )
    headers["content-type"] = "application/json"
    with httpx.Client(base_url=organic_api.url) as http:
        first = http.post("/v1/tasks", content=body, headers=headers)
        replay = http.post("/v1/tasks", content=body, headers=headers)
        tampered = http.post("/v1/tasks", content=body.replace(b"best", b"worst"), headers=headers)
    assert first.status_code == 202, first.text
    assert replay.status_code == 401 and "Replayed" in replay.json()["detail"]
    assert tampered.status_code == 401


def test_ids_and_labels_a_caller_chooses_may_not_hold_control_characters(organic_api):
    """They are stored and logged: a line break or a terminal escape in one could forge a log
    line or rewrite a terminal. Each is refused (422, naming the field) and nothing is stored."""
    key = organic_api.key()
    forged = "e1\n2026-01-01 INFO forged \x1b[31mred\x1b[0m"
    completions = text_task()["completions"]
    cases = {
        "external_id": text_task(external_id=forged),
        "completions.0.model": {
            **text_task(),
            "completions": [{**completions[0], "model": forged}, *completions[1:]],
        },
        "completions.1.id": {
            **text_task(),
            "completions": [completions[0], {**completions[1], "id": "a\x1b[2J"}, *completions[2:]],
        },
    }
    with httpx.Client(base_url=organic_api.url, headers=_bearer(key.api_key)) as http:
        for field, body in cases.items():
            r = http.post("/v1/tasks", json=body)
            assert r.status_code == 422, (field, r.text)
            assert field in r.json()["detail"], (field, r.json())
        line = http.post("/v1/tasks", json=text_task(external_id="e\u2028x"))
        assert line.status_code == 422 and "external_id" in line.json()["detail"], line.text
    with Session(organic_api.store.engine) as db:
        assert db.scalars(select(OrganicTask)).all() == []


def test_task_ids_are_distinct_random_uuid4s_across_refills():
    ids = TaskIds(batch=4)
    drawn = [ids() for _ in range(4 * 25 + 3)]
    assert len(set(drawn)) == len(drawn)
    for task_id in drawn:
        parsed = uuid.UUID(hex=task_id)
        assert parsed.hex == task_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
