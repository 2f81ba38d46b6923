"""The organic API client against handlers (httpx.MockTransport): what it sends, what it retries,
what it raises, and how much it reads."""

from __future__ import annotations

import json

import httpx
import pytest

import commons.organic
from commons.organic import (
    OrganicAuthError,
    OrganicClient,
    OrganicConflict,
    OrganicNotFound,
    OrganicRateLimited,
    OrganicRequestInvalid,
    OrganicResponseError,
    OrganicUnavailable,
)
from commons.retry import RetryPolicy

FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)
TASK = {
    "prompt": "p",
    "completions": [{"content": {"kind": "text", "text": "a"}}, {"content": {"kind": "text", "text": "b"}}],
}
ACCEPTED = {"task_id": "t1", "status": "queued", "created_at": "2026-12-06T00:00:00Z"}


def _client(handler, **kwargs) -> OrganicClient:
    return OrganicClient(
        "http://validator.test",
        api_key="dojo_org_k",
        retry=FAST,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def test_the_public_api_is_exactly_what_init_exports():
    public = {name for name in dir(commons.organic) if not name.startswith("_")}
    assert set(commons.organic.__all__) == public - {"annotations"}


async def test_submit_sends_the_key_and_an_external_id_and_retries_what_is_transient():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, json={"detail": "busy"})
        if len(seen) == 2:
            raise httpx.ConnectError("reset")
        return httpx.Response(202, json=ACCEPTED)

    async with _client(handler) as client:
        accepted = await client.submit(TASK)
    assert accepted.task_id == "t1" and len(seen) == 3
    bodies = [json.loads(r.content) for r in seen]
    # Every retry is the same request under the same external id: it cannot make two tasks.
    assert bodies[0] == bodies[2] and len(bodies[0]["external_id"]) == 32
    assert all(r.headers["authorization"] == "Bearer dojo_org_k" for r in seen)


@pytest.mark.parametrize(
    "status, error",
    [
        (401, OrganicAuthError),
        (403, OrganicAuthError),
        (404, OrganicNotFound),
        (409, OrganicConflict),
        (413, OrganicRequestInvalid),
        (422, OrganicRequestInvalid),
    ],
)
async def test_refusals_raise_at_once_with_the_servers_reason(status, error):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json={"detail": "because"})

    async with _client(handler) as client:
        with pytest.raises(error) as raised:
            await client.task("t1")
    assert raised.value.status_code == status and raised.value.detail == "because" and len(calls) == 1


async def test_rate_limits_are_waited_out_then_raised():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, json={"detail": "slow down"}, headers={"Retry-After": "0"})

    async with _client(handler) as client:
        with pytest.raises(OrganicRateLimited) as raised:
            await client.usage()
    assert len(calls) == FAST.attempts and raised.value.retry_after == 0.0


async def test_what_never_answers_is_unavailable_and_what_answers_too_much_is_not_read():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no answer")

    async with _client(down) as client:
        with pytest.raises(OrganicUnavailable, match="failed 3 times"):
            await client.task("t1")

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" + b"1," * 5000 + b"1]")

    async with _client(huge, max_response_bytes=1000) as client:
        with pytest.raises(OrganicResponseError, match="over the 1000"):
            await client.task("t1")

    async with _client(lambda r: httpx.Response(200, json={"not": "a view"})) as client:
        with pytest.raises(OrganicResponseError, match="not a TaskView"):
            await client.task("t1")


async def test_a_signing_client_signs_every_attempt_afresh(make_wallet):
    wallet = make_wallet()
    nonces = []

    def handler(request: httpx.Request) -> httpx.Response:
        nonces.append(request.headers["x-bittensor-nonce"])
        assert request.headers["x-bittensor-receiver"] == "5Validator"
        assert "authorization" not in request.headers
        return httpx.Response(502) if len(nonces) == 1 else httpx.Response(202, json=ACCEPTED)

    async with OrganicClient(
        "http://v.test",
        keypair=wallet.hotkey,
        validator_hotkey="5Validator",
        retry=FAST,
        transport=httpx.MockTransport(handler),
    ) as client:
        await client.submit(TASK)
    assert len(nonces) == 2 and nonces[0] != nonces[1]
    with pytest.raises(ValueError):
        OrganicClient("http://v.test", keypair=wallet.hotkey)
