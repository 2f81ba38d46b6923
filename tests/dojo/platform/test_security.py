"""Security headers, body caps, the CSRF cookie; and the registration snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from commons.platform_contract import CSRF_COOKIE
from dojo.platform.registry import HotkeyRegistry


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
