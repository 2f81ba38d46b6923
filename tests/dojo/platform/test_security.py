"""Security headers, body caps, CSRF (origin and a token bound to the session); and the registration snapshot."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from commons.platform_contract import CSRF_COOKIE
from dojo.platform.services.registry import HotkeyRegistry
from tests.dojo.platform._support import page_csrf, sign_in_worker
from tests.dojo.platform.conftest import PUBLIC_URL


def test_security_headers_on_api_responses(client):
    response = client.get("/health")
    assert response.json() == {"status": "ok"}
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    # Errors carry them too.
    assert client.get("/api/v1/miner/me").headers["x-frame-options"] == "DENY"


def test_csrf_cookie_is_issued_once_and_readable_by_scripts(client):
    first = client.get("/health")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" not in cookie and "SameSite=Lax" in cookie
    assert "set-cookie" not in client.get("/health").headers  # the client sends it back now
    # Clients authenticating by header never need it.
    assert "set-cookie" not in client.get("/health", headers={"x-api-key": "sk-x"}).headers


def test_bodies_over_the_cap_are_413(client, platform, miner):
    limit = platform.settings.max_body_bytes
    declared = client.post(
        "/api/v1/worker/challenge", content=b"x" * (limit + 1), headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["detail"] == f"request body larger than {limit} bytes"

    def chunks():  # no Content-Length: the cap applies while the body streams in
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = client.post(
        "/api/v1/miner/challenge", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    # create-tasks has its own, larger cap.
    assert limit < platform.settings.max_task_body_bytes


def test_registration_snapshot_is_cached_then_refreshed(chain, make_wallet: Callable[..., Any]):
    wallet = make_wallet()
    hotkey = wallet.hotkey.ss58_address
    cached = HotkeyRegistry(chain, refresh_seconds=3600, miss_refresh_seconds=3600)
    assert cached.is_registered(hotkey) is False
    chain.register(hotkey, wallet.coldkeypub.ss58_address, stake=0.0)
    assert cached.is_registered(hotkey) is False  # the snapshot is an hour fresh
    assert HotkeyRegistry(chain, refresh_seconds=3600, miss_refresh_seconds=0).is_registered(hotkey) is True


def test_a_failed_refresh_keeps_the_last_snapshot(chain, register_hotkey):
    hotkey = register_hotkey().ss58_address
    registry = HotkeyRegistry(chain, refresh_seconds=0)
    assert registry.is_registered(hotkey)
    # Make the chain unreadable: its file is not a database any more.
    from template.chain.local import LocalChain

    broken_dir = chain.directory.parent / "broken"
    broken_dir.mkdir()
    (broken_dir / chain.path.name).write_bytes(chain.path.read_bytes())
    broken = LocalChain(broken_dir, netuid=chain.netuid)
    registry.chain = broken
    (broken_dir / chain.path.name).write_bytes(b"not a database" * 100)
    assert registry.is_registered(hotkey) is True
    fresh = HotkeyRegistry(broken, refresh_seconds=0)
    with pytest.raises(Exception, match="database|chain"):
        fresh.is_registered(hotkey)


# --- CSRF: where a cookie request comes from, and a token bound to the session ----------------

SUBSCRIBE = "/api/v1/worker/subscriptions"


@contextmanager
def _cookie_worker(platform: Any, miner: Any) -> Iterator[httpx.Client]:
    """A browser-like client with a live worker session cookie."""
    with httpx.Client(base_url=platform.url, timeout=30) as browser:
        browser.get("/login")
        sign_in_worker(browser)  # the cookie stays in the client
        yield browser


def test_cookie_posts_from_another_site_are_refused_even_with_the_token(platform, miner):
    with _cookie_worker(platform, miner) as browser:
        token = page_csrf(browser)
        body = {"name": "team", "key": miner.subscription_key}
        for origin in (
            "http://evil.example",
            "null",
            "http://platform.test.evil.example",
            "https://platform.test",
        ):
            refused = browser.post(SUBSCRIBE, json=body, headers={"x-csrf-token": token, "origin": origin})
            assert refused.status_code == 403, origin
            assert "cross-site request refused" in refused.json()["detail"]
        for site in ("cross-site", "same-site"):
            refused = browser.post(
                SUBSCRIBE, json=body, headers={"x-csrf-token": token, "sec-fetch-site": site}
            )
            assert refused.status_code == 403, site
        # Nothing was subscribed by the refused requests.
        assert browser.get(SUBSCRIBE).json()["subscriptions"] == []
        # The platform's public URL and the host the request went to are its own origins.
        assert (
            browser.post(
                SUBSCRIBE, json=body, headers={"x-csrf-token": token, "origin": PUBLIC_URL}
            ).status_code
            == 201
        )
        own = browser.post(
            "/api/v1/worker/tasks/next",
            headers={"x-csrf-token": token, "origin": platform.url, "sec-fetch-site": "same-origin"},
        )
        assert own.status_code == 204
        assert browser.post("/api/v1/worker/tasks/next", headers={"x-csrf-token": token}).status_code == 204


def test_a_csrf_token_is_bound_to_the_session(platform, client, miner):
    body = {"name": "team", "key": miner.subscription_key}
    with httpx.Client(base_url=platform.url, timeout=30) as attacker:
        sign_in_worker(attacker)
        attackers_token = page_csrf(attacker)
    with httpx.Client(base_url=platform.url, timeout=30) as browser:
        before_login = page_csrf(browser)
        sign_in_worker(browser)
        # A cookie and header both chosen by an attacker (who can plant cookies) do not pass ...
        browser.cookies.set(CSRF_COOKIE, "chosen-by-the-attacker")
        forged = browser.post(SUBSCRIBE, json=body, headers={"x-csrf-token": "chosen-by-the-attacker"})
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
        # ... nor the token of the attacker's own session, nor this browser's from before it logged in.
        for token in (attackers_token, before_login):
            assert browser.post(SUBSCRIBE, json=body, headers={"x-csrf-token": token}).status_code == 403
        assert browser.get(SUBSCRIBE).json()["subscriptions"] == []
        # The token its own pages carry does (any masking of it), whatever the anonymous cookie says.
        first, second = page_csrf(browser), page_csrf(browser)
        assert first != second
        assert browser.post(SUBSCRIBE, json=body, headers={"x-csrf-token": first}).status_code == 201
        assert browser.get(SUBSCRIBE, headers={"x-csrf-token": second}).status_code == 200


def test_the_csrf_secret_is_kept_in_the_database_for_every_replica(platform, start_platform, miner):
    other = start_platform()  # another process on the same database, as a replica
    with _cookie_worker(platform, miner) as browser:
        token = page_csrf(browser)
        cookies = dict(browser.cookies)
    with httpx.Client(base_url=other.url, timeout=30, cookies=cookies) as same_browser:
        response = same_browser.post(
            SUBSCRIBE, json={"name": "team", "key": miner.subscription_key}, headers={"x-csrf-token": token}
        )
        assert response.status_code == 201, response.text


# --- the API's interactive documentation --------------------------------------------------------


def test_api_docs_are_off_unless_asked_for_and_then_pinned_with_integrity(client, start_platform):
    # By default no page loads a script from elsewhere: /docs and /redoc are not served ...
    for path in ("/docs", "/redoc"):
        assert client.get(path).status_code == 404, path
    # ... while the schema itself (no script in it) is.
    assert client.get("/openapi.json").json()["info"]["title"] == "Dojo worker platform"

    with httpx.Client(base_url=start_platform(docs=True).url) as docs:
        for path, marker in (("/docs", "swagger-ui-dist@"), ("/redoc", "redoc@")):
            page = docs.get(path)
            assert page.status_code == 200, path
            scripts = re.findall(
                r"<script src=\"([^\"]+)\" integrity=\"(sha384-[A-Za-z0-9+/=]{64})\" "
                r"crossorigin=\"anonymous\"></script>",
                page.text,
            )
            assert scripts and all(marker in url for url, _ in scripts), page.text
            # One release, not a moving major version.
            assert all(re.search(r"@\d+\.\d+\.\d+/", url) for url, _ in scripts)
            assert page.text.count("<script") == len(scripts) + (path == "/docs")  # Swagger's own init
            policy = page.headers["content-security-policy"]
            script_src = next(p for p in policy.split("; ") if p.startswith("script-src "))
            assert "'unsafe-inline'" not in script_src and all(url in script_src for url, _ in scripts)
