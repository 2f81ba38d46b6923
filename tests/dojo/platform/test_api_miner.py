"""Miner log-in (sr25519 challenge), sessions, API and subscription keys."""

from __future__ import annotations

import re

import httpx
import pytest

from commons.platform_contract import CSRF_COOKIE
from tests.dojo.platform._support import page_csrf, sign_in_miner, sql


def _challenge(client: httpx.Client, hotkey: str) -> dict:
    response = client.post("/api/v1/miner/challenge", json={"hotkey": hotkey})
    assert response.status_code == 200, response.text
    return response.json()


def _session(client: httpx.Client, keypair, body: dict, message: str | None = None) -> httpx.Response:
    signature = "0x" + keypair.sign((message or body["message"]).encode()).hex()
    return client.post(
        "/api/v1/miner/session",
        json={
            "hotkey": keypair.ss58_address if keypair else "",
            "nonce": body["nonce"],
            "signature": signature,
        },
    )


def test_login_opens_a_session_usable_by_bearer_and_cookie(client, register_hotkey, platform):
    hotkey = register_hotkey()
    body = _challenge(client, hotkey.ss58_address)
    lines = body["message"].splitlines()
    assert lines == [
        "dojo-platform-login",
        f"platform: {platform.settings.public_url}",
        f"hotkey: {hotkey.ss58_address}",
        f"nonce: {body['nonce']}",
        f"expires: {body['expiresAt']}",
    ]
    response = _session(client, hotkey, body)
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    cookie = response.headers["set-cookie"]
    assert "dojo_miner_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/v1/miner/me", headers={"authorization": f"Bearer {token}"}).json() == {
        "hotkey": hotkey.ss58_address
    }
    # The client kept the cookie: a GET needs nothing else.
    assert client.get("/api/v1/miner/me").json()["hotkey"] == hotkey.ss58_address


def test_signature_by_another_key_is_refused(client, register_hotkey):
    hotkey, other = register_hotkey(), register_hotkey()
    body = _challenge(client, hotkey.ss58_address)
    signature = "0x" + other.sign(body["message"].encode()).hex()
    response = client.post(
        "/api/v1/miner/session",
        json={"hotkey": hotkey.ss58_address, "nonce": body["nonce"], "signature": signature},
    )
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]


def test_signature_of_another_message_is_refused(client, register_hotkey):
    hotkey = register_hotkey()
    body = _challenge(client, hotkey.ss58_address)
    tampered = body["message"].replace("platform: http://platform.test", "platform: http://evil.test")
    assert _session(client, hotkey, body, message=tampered).status_code == 401


def test_malformed_signatures_are_401(client, register_hotkey):
    hotkey = register_hotkey()
    body = _challenge(client, hotkey.ss58_address)
    for signature in ("0xnothex", "0x" + "00" * 64, "0x1234", ""):
        response = client.post(
            "/api/v1/miner/session",
            json={"hotkey": hotkey.ss58_address, "nonce": body["nonce"], "signature": signature},
        )
        assert response.status_code in (401, 422), signature
        assert response.status_code == 401 or signature == ""


def test_replayed_signature_is_refused(client, register_hotkey):
    hotkey = register_hotkey()
    body = _challenge(client, hotkey.ss58_address)
    assert _session(client, hotkey, body).status_code == 200
    replay = _session(client, hotkey, body)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]


def test_expired_challenge_is_refused(client, register_hotkey, platform):
    hotkey = register_hotkey()
    body = _challenge(client, hotkey.ss58_address)
    sql(
        platform.database_url,
        "UPDATE login_nonces SET expires_at = '2000-01-01 00:00:00' WHERE nonce = :n",
        n=body["nonce"],
    )
    response = _session(client, hotkey, body)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_unknown_nonce_is_refused(client, register_hotkey):
    hotkey = register_hotkey()
    body = {"nonce": "f" * 32, "message": "anything"}
    assert _session(client, hotkey, body).status_code == 401


def test_unregistered_hotkey_is_forbidden_until_registered(client, make_wallet, chain):
    wallet = make_wallet()
    body = _challenge(client, wallet.hotkey.ss58_address)
    response = _session(client, wallet.hotkey, body)
    assert response.status_code == 403
    assert "not registered" in response.json()["detail"]
    # The refusal did not burn the challenge; once registered the same signature opens a session.
    chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=0.0)
    assert _session(client, wallet.hotkey, body).status_code == 200


def test_invalid_hotkey_is_422(client):
    response = client.post("/api/v1/miner/challenge", json={"hotkey": "not-an-ss58"})
    assert response.status_code == 422
    assert "SS58" in response.json()["detail"]


def test_logout_ends_the_session(client, register_hotkey):
    token = sign_in_miner(client, register_hotkey())
    headers = {"authorization": f"Bearer {token}"}
    assert client.post("/api/v1/miner/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/miner/me", headers=headers).status_code == 401


def test_no_session_is_401(client):
    assert client.get("/api/v1/miner/me").status_code == 401
    assert client.get("/api/v1/miner/me", headers={"authorization": "Bearer dms_forged"}).status_code == 401


@pytest.mark.parametrize("kind", ["api-keys", "subscription-keys"])
def test_keys_generate_list_disable(client, register_hotkey, kind):
    headers = {"authorization": f"Bearer {sign_in_miner(client, register_hotkey())}"}
    created = client.post(f"/api/v1/miner/{kind}", headers=headers)
    assert created.status_code == 201
    key = created.json()["key"]
    # The kind's prefix and 256 random bits in URL-safe base64 (43 characters).
    start = "dojo_api_" if kind == "api-keys" else "dojo_sub_"
    assert re.fullmatch(start + r"[A-Za-z0-9_-]{43}", key)
    assert created.json()["prefix"] == key[:16]
    second = client.post(f"/api/v1/miner/{kind}", headers=headers).json()
    assert second["key"] != key

    listed = client.get(f"/api/v1/miner/{kind}", headers=headers)
    assert listed.status_code == 200
    assert key not in listed.text and second["key"] not in listed.text
    rows = listed.json()["keys"]
    assert [r["prefix"] for r in rows] == [key[:16], second["key"][:16]]
    assert all(r["createdAt"].endswith("Z") and r["lastUsedAt"] is None and not r["disabled"] for r in rows)

    disabled = client.delete(f"/api/v1/miner/{kind}/{created.json()['id']}", headers=headers)
    assert disabled.json() == {"id": created.json()["id"], "disabled": True}
    assert [r["disabled"] for r in client.get(f"/api/v1/miner/{kind}", headers=headers).json()["keys"]] == [
        True,
        False,
    ]


def test_keys_are_stored_hashed(client, miner, platform):
    stored = sql(platform.database_url, "SELECT key_hash, prefix FROM api_keys")
    assert stored and all(miner.api_key not in row[0] and len(row[0]) == 64 for row in stored)


def test_disabled_api_key_stops_at_once_and_last_use_is_shown(client, miner):
    assert client.get("/api/v1/tasks/does-not-exist", headers=miner.key).status_code == 404
    keys = client.get("/api/v1/miner/api-keys", headers=miner.session).json()["keys"]
    assert keys[0]["lastUsedAt"] is not None
    client.delete(f"/api/v1/miner/api-keys/{keys[0]['id']}", headers=miner.session)
    response = client.get("/api/v1/tasks/does-not-exist", headers=miner.key)
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


def test_a_miner_cannot_disable_another_miners_key(client, miner, register_hotkey):
    other = {"authorization": f"Bearer {sign_in_miner(client, register_hotkey())}"}
    key_id = client.get("/api/v1/miner/api-keys", headers=miner.session).json()["keys"][0]["id"]
    assert client.delete(f"/api/v1/miner/api-keys/{key_id}", headers=other).status_code == 404
    assert client.get("/api/v1/tasks/x", headers=miner.key).status_code == 404  # still works


def test_cookie_session_needs_the_csrf_header_on_unsafe_requests(client, register_hotkey):
    sign_in_miner(client, register_hotkey())  # leaves the session cookie in the client
    client.headers.pop("authorization", None)
    refused = client.post("/api/v1/miner/api-keys")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    wrong = client.post("/api/v1/miner/api-keys", headers={"x-csrf-token": "guess"})
    assert wrong.status_code == 403
    # The cookie's own value is not the token: a page gives the token bound to the session.
    cookie = client.cookies[CSRF_COOKIE]
    assert client.post("/api/v1/miner/api-keys", headers={"x-csrf-token": cookie}).status_code == 403
    token = page_csrf(client)
    assert client.post("/api/v1/miner/api-keys", headers={"x-csrf-token": token}).status_code == 201
    assert client.get("/api/v1/miner/api-keys").status_code == 200  # safe methods need no token


def test_login_is_rate_limited(start_platform, register_hotkey):
    platform = start_platform(login_rate_limit=3, login_rate_window_seconds=60)
    hotkey = register_hotkey()
    with httpx.Client(base_url=platform.url) as http:
        codes = [
            http.post("/api/v1/miner/challenge", json={"hotkey": hotkey.ss58_address}).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        limited = http.post(
            "/api/v1/miner/session", json={"hotkey": hotkey.ss58_address, "nonce": "x", "signature": "0x00"}
        )
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
