"""The Dojo API client against a contract-following platform (MockTransport) and real sockets."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import httpx
import pytest

import commons.dojo_api as dojo_api
from commons.dojo_api import (
    AuthRejected,
    BadResponse,
    DojoAPI,
    DojoAPIError,
    KeyKind,
    RateLimited,
    RequestInvalid,
    RequestRejected,
    ResourceNotFound,
    RetryPolicy,
    ServerError,
    Unreachable,
)
from commons.dojo_wire import ResultItem, TaskResultOut
from tests.commons.contract_platform import ContractPlatform

FAST = RetryPolicy(attempts=4, base_delay=0.1, max_delay=0.3, jitter=0.5)


class Sleeps:
    """The client's backoff clock: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def platform() -> ContractPlatform:
    return ContractPlatform()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def api(platform: ContractPlatform, sleeps: Sleeps) -> AsyncIterator[DojoAPI]:
    client = DojoAPI(
        platform.base_url,
        retry=FAST,
        transport=httpx.MockTransport(platform.handler),
        sleep=sleeps,
        rng=random.Random(7),
    )
    async with client:
        yield client


@pytest.fixture
def miner(make_wallet, platform: ContractPlatform):
    wallet = make_wallet("miner")
    platform.registered.add(wallet.hotkey.ss58_address)
    return wallet


def _paths(platform: ContractPlatform) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in platform.requests]


def test_public_names_are_exported():
    public = {name for name in vars(dojo_api) if not name.startswith("_") and name[0].isupper()}
    public -= {
        "Any",
        "Awaitable",
        "Callable",
        "CookieJar",
        "DefaultCookiePolicy",
        "Protocol",
        "Sequence",
        "TypeVar",
    }
    assert public - {"LOGIN_MESSAGE_HEADER"} <= set(dojo_api.__all__)
    assert all(hasattr(dojo_api, name) for name in dojo_api.__all__)


def test_error_tree():
    for cls in (AuthRejected, ResourceNotFound, RequestInvalid, RateLimited):
        assert issubclass(cls, RequestRejected)
    for cls in (RequestRejected, ServerError, Unreachable, BadResponse):
        assert issubclass(cls, DojoAPIError)
    assert not issubclass(ServerError, RequestRejected)


# --- login and keys ---------------------------------------------------------------------


async def test_login_signs_the_challenge_and_keys_round_trip(api, platform, miner):
    session = await api.login(miner.hotkey)
    assert session.expires_at > datetime.now(timezone.utc)
    assert platform.sessions[session.token] == miner.hotkey.ss58_address

    new_key = await api.generate_api_key()
    assert new_key.key.startswith("dojo_api_") and new_key.key.startswith(new_key.prefix)
    sub = await api.generate_subscription_key()
    [listed] = await api.list_keys(KeyKind.API)
    assert (listed.id, listed.prefix, listed.disabled) == (new_key.id, new_key.prefix, False)
    assert [k.id for k in await api.list_keys(KeyKind.SUBSCRIPTION)] == [sub.id]

    # The platform set a session cookie; the client must not send it back, or a DELETE
    # would look like a browser request without its CSRF token.
    assert await api.disable_key(KeyKind.API, new_key.id) == new_key.id
    [listed] = await api.list_keys(KeyKind.API)
    assert listed.disabled
    assert all("cookie" not in r.headers for r in platform.requests)
    assert platform.requests[-1].headers["authorization"] == f"Bearer {session.token}"


async def test_unregistered_hotkey_is_refused_with_the_platforms_reason(api, platform, make_wallet):
    stranger = make_wallet("stranger")
    with pytest.raises(AuthRejected) as caught:
        await api.login(stranger.hotkey)
    assert caught.value.status_code == 403
    assert "not registered" in str(caught.value)
    assert api.token is None


async def test_a_signature_by_another_key_is_refused(api, platform, miner, make_wallet):
    impostor = make_wallet("impostor")

    class WrongSigner:
        ss58_address = miner.hotkey.ss58_address

        @staticmethod
        def sign(data: bytes) -> bytes:
            return impostor.hotkey.sign(data)

    with pytest.raises(AuthRejected) as caught:
        await api.login(WrongSigner())
    assert caught.value.status_code == 401
    assert _paths(platform).count("POST /api/v1/miner/session") == 1  # a 401 is not retried


async def test_refuses_to_sign_a_challenge_for_another_platform(api, platform, miner):
    platform.base_url = "http://evil.example"
    with pytest.raises(BadResponse, match="names platform 'http://evil.example'"):
        await api.login(miner.hotkey)
    assert _paths(platform) == ["POST /api/v1/miner/challenge"]


async def test_key_calls_need_a_session(api, platform):
    with pytest.raises(AuthRejected, match="log in first"):
        await api.list_keys(KeyKind.API)
    assert platform.requests == []


async def test_an_expired_or_unknown_token_is_an_auth_error(api, platform, miner):
    api.token = "not-a-token"
    with pytest.raises(AuthRejected) as caught:
        await api.generate_api_key()
    assert caught.value.status_code == 401 and "log in again" in caught.value.detail


# --- retries ------------------------------------------------------------------------------


async def test_retries_5xx_with_backoff_then_succeeds(api, platform, sleeps, miner):
    await api.login(miner.hotkey)
    platform.fail_next(platform.status(503), platform.status(500), platform.status(502))
    assert await api.list_keys(KeyKind.API) == []
    assert _paths(platform)[-4:] == ["GET /api/v1/miner/api-keys"] * 4
    assert len(sleeps.delays) == 3
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = min(FAST.max_delay, FAST.base_delay * 2**attempt)
        assert ceiling * (1 - FAST.jitter) <= delay <= ceiling
    # The same request id across attempts, so the platform's logs show one request retried.
    ids = {r.headers["x-request-id"] for r in platform.requests[-4:]}
    assert len(ids) == 1


async def test_5xx_on_every_attempt_is_a_server_error(api, platform, miner):
    await api.login(miner.hotkey)
    platform.fail_next(*[platform.status(500)] * FAST.attempts)
    with pytest.raises(ServerError) as caught:
        await api.list_keys(KeyKind.API)
    assert caught.value.status_code == 500
    assert _paths(platform).count("GET /api/v1/miner/api-keys") == FAST.attempts


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RequestInvalid),
        (404, ResourceNotFound),
        (409, RequestInvalid),
        (422, RequestInvalid),
        (405, RequestRejected),
    ],
)
async def test_4xx_is_never_retried(api, platform, sleeps, miner, status, error):
    await api.login(miner.hotkey)
    before = len(platform.requests)
    platform.fail_next(platform.status(status))
    with pytest.raises(error) as caught:
        await api.list_keys(KeyKind.SUBSCRIPTION)
    assert len(platform.requests) == before + 1
    assert sleeps.delays == []
    assert caught.value.status_code == status
    assert caught.value.detail == f"injected {status}"


async def test_rate_limited_carries_retry_after(api, platform, sleeps):
    platform.fail_next(
        lambda request: httpx.Response(429, json={"detail": "slow down"}, headers={"retry-after": "12"})
    )
    with pytest.raises(RateLimited) as caught:
        await api.challenge("5Fabc")
    assert caught.value.retry_after == 12.0
    assert len(platform.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    "exc_type", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError]
)
async def test_transport_errors_are_retried_then_unreachable(api, platform, sleeps, exc_type):
    platform.fail_next(*[platform.raises(exc_type)] * FAST.attempts)
    with pytest.raises(Unreachable, match=exc_type.__name__):
        await api.challenge("5Fabc")
    assert len(platform.requests) == FAST.attempts
    assert len(sleeps.delays) == FAST.attempts - 1


async def test_a_timeout_then_an_answer_succeeds(api, platform, miner):
    platform.fail_next(platform.raises(httpx.ReadTimeout))
    session = await api.login(miner.hotkey)
    assert session.token in platform.sessions


async def test_a_failed_session_step_restarts_from_a_fresh_challenge(api, platform, miner):
    # The session request spends the nonce: resending it could only earn a 401.
    platform.fail_next(None, platform.status(502))
    await api.login(miner.hotkey)
    assert _paths(platform) == [
        "POST /api/v1/miner/challenge",
        "POST /api/v1/miner/session",
        "POST /api/v1/miner/challenge",
        "POST /api/v1/miner/session",
    ]
    nonces = [r.content for r in platform.requests if r.url.path.endswith("/session")]
    assert nonces[0] != nonces[1]


def test_platform_urls_are_normalised():
    assert dojo_api.normalize_base_url("127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert dojo_api.normalize_base_url(" https://dojo.example/api/ ") == "https://dojo.example/api"
    for bad in ("ftp://x", "http://", ""):
        with pytest.raises(ValueError, match="not a platform URL"):
            dojo_api.normalize_base_url(bad)


async def test_the_challenge_may_spell_the_platform_differently(api, platform, miner):
    platform.base_url = "HTTP://Platform.Test:80/"  # the same origin as http://platform.test
    session = await api.login(miner.hotkey)
    assert session.token in platform.sessions


def test_jitter_stays_within_bounds_and_varies():
    policy = RetryPolicy(attempts=8, base_delay=0.5, max_delay=4.0, jitter=0.5)
    rng = random.Random(1)
    for attempt in range(8):
        ceiling = min(4.0, 0.5 * 2**attempt)
        samples = [policy.delay(attempt, rng) for _ in range(500)]
        assert all(ceiling * 0.5 <= s <= ceiling for s in samples)
        # Spread over the window, not one value: that is what stops miners retrying in lockstep.
        assert max(samples) - min(samples) > ceiling * 0.4
    assert RetryPolicy(jitter=0.0).delay(2, rng) == 2.0
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


# --- tasks --------------------------------------------------------------------------------


def _task_data() -> list[dict]:
    return [
        {
            "prompt": "Write a bouncing ball",
            "responses": [
                {"model": "m1", "completion": "print(1)", "cid": "c1"},
                {"model": "m2", "completion": "print(2)", "cid": "c2"},
            ],
            "task": "CODE_GENERATION",
            "criteria": [{"type": "ranking"}],
        }
    ]


async def test_tasks_with_an_api_key(api, platform, miner, make_wallet):
    await api.login(miner.hotkey)
    key = await api.generate_api_key()
    expire = (datetime.now(timezone.utc) + timedelta(hours=4)).replace(microsecond=0)  # as the wire has it
    async with DojoAPI(
        platform.base_url, api_key=key.key, transport=httpx.MockTransport(platform.handler)
    ) as tasks:
        [task_id] = await tasks.create_task(
            title="t", body="Write a bouncing ball", expire_at=expire, task_data=_task_data(), max_results=3
        )
        sent = platform.tasks[task_id]["body"]
        assert sent["taskData"] == _task_data() and sent["maxResults"] == 3
        status = await tasks.task_status(task_id)
        assert (status.num_results, status.max_results, status.expire_at) == (0, 3, expire)
        answered = datetime(2026, 1, 1, tzinfo=timezone.utc)
        platform.tasks[task_id]["results"].append(
            TaskResultOut(
                id=1,
                worker_id="w-1",
                result_data=[ResultItem(type="ranking", value={"c1": 1, "c2": 2})],
                created_at=answered,
                updated_at=answered,
            )
        )
        [result] = await tasks.task_results(task_id)
        assert result.worker_id == "w-1" and result.result_data[0].value == {"c1": 1.0, "c2": 2.0}
        with pytest.raises(RequestInvalid, match="future"):
            await tasks.create_task(
                title="t",
                body="b",
                expire_at=expire - timedelta(days=1),
                task_data=_task_data(),
                max_results=3,
            )
        with pytest.raises(ValueError, match="timezone"):
            await tasks.create_task(
                title="t", body="b", expire_at=datetime.now(), task_data=_task_data(), max_results=3
            )

        # Another miner's key sees no such task.
        other = make_wallet("other")
        platform.registered.add(other.hotkey.ss58_address)
        await api.login(other.hotkey)
        other_key = await api.generate_api_key()
        tasks.api_key = other_key.key
        with pytest.raises(ResourceNotFound):
            await tasks.task_results(task_id)

        # A disabled key stops working at once.
        await api.login(miner.hotkey)
        await api.disable_key(KeyKind.API, key.id)
        tasks.api_key = key.key
        with pytest.raises(AuthRejected, match="disabled"):
            await tasks.task_status(task_id)


async def test_create_task_sends_the_callers_idempotency_key(api, platform, miner):
    await api.login(miner.hotkey)
    api.api_key = (await api.generate_api_key()).key
    expire = datetime.now(timezone.utc) + timedelta(hours=1)
    for key in ("k", None, None):
        await api.create_task(
            title="t", body="b", expire_at=expire, task_data=_task_data(), max_results=1, idempotency_key=key
        )
    sent = [r.headers["idempotency-key"] for r in platform.requests if r.url.path.endswith("/create-tasks")]
    # The caller's key as given; without one, a fresh key per call.
    assert sent[0] == "k" and len(set(sent)) == 3


async def test_task_calls_need_an_api_key(api):
    with pytest.raises(AuthRejected, match="DOJO_API_KEY"):
        await api.task_status("t1")


async def test_ids_cannot_escape_their_path_segment(api, platform, miner):
    await api.login(miner.hotkey)
    with pytest.raises(ResourceNotFound):
        await api.disable_key(KeyKind.API, "../subscription-keys")
    assert platform.requests[-1].url.raw_path == b"/api/v1/miner/api-keys/..%2Fsubscription-keys"


async def test_a_reply_that_breaks_the_contract_is_a_bad_response(api, platform):
    platform.fail_next(lambda request: httpx.Response(200, json={"nonce": "n"}))
    with pytest.raises(BadResponse, match="contract"):
        await api.challenge("5Fabc")
    platform.fail_next(lambda request: httpx.Response(200, text="<html>proxy login</html>"))
    with pytest.raises(BadResponse):
        await api.challenge("5Fabc")


async def test_a_result_value_other_than_numbers_by_cid_is_a_bad_response(api, platform, miner):
    """The platform's ``ResultItem`` also reads a worker's ranking given as a list; what the
    platform sends, and all the miner takes, is ``{cid: number}``."""
    await api.login(miner.hotkey)
    api.api_key = (await api.generate_api_key()).key
    expire = datetime.now(timezone.utc) + timedelta(hours=1)
    [task_id] = await api.create_task(
        title="t", body="b", expire_at=expire, task_data=_task_data(), max_results=1
    )
    answered = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for value in (["c1", "c2"], {"c1": "first", "c2": "second"}):
        item = ResultItem(type="ranking", value=value)
        result = TaskResultOut(
            id=1, worker_id="w-1", result_data=[item], created_at=answered, updated_at=answered
        )
        platform.tasks[task_id]["results"][:] = [result]
        with pytest.raises(BadResponse, match="contract"):
            await api.task_results(task_id)


# --- real sockets -------------------------------------------------------------------------


async def test_a_real_timeout_on_loopback_is_retried_then_unreachable():
    """A server that accepts and never answers: httpx's own read timeout, not an injected one."""
    accepted = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.read(65536)
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01)
    try:
        # A short read, a long connect: a slow machine's connect must not pass for the read.
        timeout = httpx.Timeout(0.2, connect=5.0)
        async with DojoAPI(f"http://127.0.0.1:{port}", timeout=timeout, retry=policy) as client:
            with pytest.raises(Unreachable, match="ReadTimeout"):
                await client.challenge("5Fabc")
    finally:
        server.close()
    assert accepted == 2


async def test_a_closed_port_is_unreachable():
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with DojoAPI(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=2, base_delay=0.01)) as client:
        with pytest.raises(Unreachable, match="ConnectError"):
            await client.challenge("5Fabc")


# --- the real platform on loopback ----------------------------------------------------------


@pytest.fixture(scope="module")
def real_platform(tmp_path_factory):
    from tests.dojo.live_platform import live_platform

    with live_platform(tmp_path_factory.mktemp("platform")) as platform:
        yield platform


def _worker_ranks(platform_url: str, subscription_key: str, ranking: list[str]) -> str:
    """A worker logs in with an EIP-191 signature, subscribes, takes the task and ranks it."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    account = Account.create()
    with httpx.Client(base_url=platform_url, timeout=30) as http:
        challenge = http.post("/api/v1/worker/challenge", json={"address": account.address}).json()
        signature = account.sign_message(encode_defunct(text=challenge["message"])).signature.hex()
        login = http.post(
            "/api/v1/worker/login",
            json={"address": account.address, "signature": signature, "nonce": challenge["nonce"]},
        )
        auth = {"authorization": f"Bearer {login.json()['token']}"}
        http.post(
            "/api/v1/worker/subscriptions", json={"name": "team", "key": subscription_key}, headers=auth
        )
        task = http.post("/api/v1/worker/tasks/next", headers=auth)
        assert task.status_code == 200, task.text
        task_id = task.json()["id"]
        submitted = http.post(
            f"/api/v1/worker/tasks/{task_id}/result",
            json={"resultData": [{"type": "ranking", "value": ranking}]},
            headers=auth,
        )
        assert submitted.status_code < 300, submitted.text
        return task_id


async def test_every_miner_call_against_the_real_platform(real_platform, make_wallet):
    miner, other, stranger = make_wallet("miner"), make_wallet("other"), make_wallet("stranger")
    real_platform.register(miner)
    real_platform.register(other)
    async with DojoAPI(real_platform.url, retry=FAST) as api:
        with pytest.raises(AuthRejected) as refused:
            await api.login(stranger.hotkey)
        assert refused.value.status_code == 403

        await api.login(miner.hotkey)
        key = await api.generate_api_key()
        sub = await api.generate_subscription_key()
        assert [k.id for k in await api.list_keys(KeyKind.API)] == [key.id]
        assert [k.prefix for k in await api.list_keys(KeyKind.SUBSCRIPTION)] == [sub.prefix]
        assert key.key.startswith(key.prefix)

        api.api_key = key.key
        expire = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
        [task_id] = await api.create_task(
            title="Rank",
            body="Write a bouncing ball",
            expire_at=expire,
            task_data=_task_data(),
            max_results=2,
        )
        status = await api.task_status(task_id)
        assert (status.status, status.num_results, status.max_results, status.expire_at) == (
            "IN_PROGRESS",
            0,
            2,
            expire,
        )
        assert await api.task_results(task_id) == []

        assert await asyncio.to_thread(_worker_ranks, real_platform.url, sub.key, ["c2", "c1"]) == task_id
        [result] = await api.task_results(task_id)
        assert result.result_data[0].type == "ranking"
        assert result.result_data[0].value == {"c1": 2, "c2": 1}
        assert (await api.task_status(task_id)).num_results == 1

        with pytest.raises(RequestInvalid):
            await api.create_task(
                title="Rank",
                body="b",
                expire_at=expire - timedelta(hours=2),
                task_data=_task_data(),
                max_results=2,
            )

        # Another miner's key: no such task. A disabled key: refused at once.
        await api.login(other.hotkey)
        other_key = await api.generate_api_key()
        async with DojoAPI(real_platform.url, api_key=other_key.key) as others:
            with pytest.raises(ResourceNotFound):
                await others.task_results(task_id)
        await api.login(miner.hotkey)
        assert await api.disable_key(KeyKind.API, key.id) == key.id
        with pytest.raises(AuthRejected):
            await api.task_status(task_id)
        with pytest.raises(ResourceNotFound):
            await api.disable_key(KeyKind.SUBSCRIPTION, "999999")

        # Logging out ends the session on the platform.
        token = api.token
        await api.logout()
        api.token = token
        with pytest.raises(AuthRejected) as expired:
            await api.list_keys(KeyKind.API)
        assert expired.value.status_code == 401


class _LoseFirstCreateReply(httpx.AsyncBaseTransport):
    """Real HTTP; the platform's reply to the first create-tasks is lost, as a timeout would lose it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost: list[list[str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/create-tasks") and not self.lost:
            await response.aread()
            self.lost.append(json.loads(response.content)["body"])  # stored on the platform
            raise httpx.ReadTimeout("the reply was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_create_retried_after_its_reply_was_lost_creates_the_tasks_once(real_platform, make_wallet):
    miner = make_wallet("retrying-miner")
    real_platform.register(miner)
    async with DojoAPI(real_platform.url, retry=FAST) as api:
        await api.login(miner.hotkey)
        api_key = (await api.generate_api_key()).key
    transport = _LoseFirstCreateReply()
    async with DojoAPI(real_platform.url, api_key=api_key, retry=FAST, transport=transport) as api:
        expire = datetime.now(timezone.utc) + timedelta(hours=1)
        ids = await api.create_task(
            title="Rank", body="b", expire_at=expire, task_data=_task_data() * 2, max_results=2
        )
    # The retry carried the same Idempotency-Key: the platform answered with the tasks the
    # lost reply named instead of creating two more.
    assert transport.lost == [ids] and len(ids) == 2
