"""The signed transport over real HTTP on loopback: server checks and client outcomes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import aiohttp
import bittensor as bt
import pytest
from yarl import URL

from commons.protocol import (
    Ack,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    ScoringResult,
    TaskResultReply,
    TaskResultRequest,
)
from dojo.localnet.net import free_port
from template.chain.base import AxonEndpoint, Metagraph, NeuronInfo
from template.clock import utcnow
from template.transport import BlacklistPolicy, PriorityGate, SignedClient, SignedServer, Status, Target


class ServerThread:
    """A SignedServer running in its own thread and event loop."""

    def __init__(self, server: SignedServer, host: str = "127.0.0.1"):
        self.server = server
        self.host = host
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            ready = asyncio.Event()
            task = asyncio.create_task(self.server.serve(self.host, self.port, ready))
            await ready.wait()
            self._started.set()
            await task

        asyncio.run(main())

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._started.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._thread.join(10)


def neuron(uid: int, keypair, stake: float, permit: bool) -> NeuronInfo:
    return NeuronInfo(
        uid=uid,
        hotkey=keypair.ss58_address,
        coldkey=keypair.ss58_address,
        stake=stake,
        validator_permit=permit,
        axon=AxonEndpoint("127.0.0.1", 1),
        last_update=0,
    )


@pytest.fixture
def keys(make_wallet):
    return {
        name: make_wallet(name).hotkey for name in ("miner", "validator", "small", "nopermit", "stranger")
    }


@pytest.fixture
def metagraph(keys) -> Metagraph:
    return Metagraph(
        netuid=1,
        block=10,
        neurons=(
            neuron(0, keys["miner"], 0.0, False),
            neuron(1, keys["validator"], 1000.0, True),
            neuron(2, keys["small"], 5.0, True),
            neuron(3, keys["nopermit"], 1000.0, False),
        ),
    )


class Handlers:
    def __init__(self, hotkey: str):
        self.hotkey = hotkey
        self.calls: list[str] = []

    async def heartbeat(self, request, caller):
        self.calls.append(caller.hotkey)
        return HeartbeatReply(hotkey=self.hotkey)

    async def slow(self, request, caller):
        await asyncio.sleep(5)
        return Ack()

    async def broken(self, request, caller):
        raise RuntimeError("handler bug")

    async def wrong_reply(self, request, caller):
        return Ack()


@pytest.fixture
def served(keys, metagraph) -> Iterator[tuple[ServerThread, Handlers]]:
    handlers = Handlers(keys["miner"].ss58_address)
    server = SignedServer(
        keys["miner"],
        lambda: metagraph,
        policy=BlacklistPolicy(minimum_stake=10.0),
        max_body_bytes=64 * 1024,
        handler_timeout=0.5,
        protocol_version=1,
    )
    server.route(Heartbeat, handlers.heartbeat)
    server.route(TaskResultRequest, handlers.slow)
    server.route(ScoringResult, handlers.broken)
    server.route(FeedbackRequest, handlers.wrong_reply)
    with ServerThread(server) as thread:
        yield thread, handlers


def target(thread: ServerThread, keys, receiver: str = "miner") -> Target:
    return Target(hotkey=keys[receiver].ss58_address, url=thread.url, uid=0)


async def call_as(keys, sender: str, thread, request=None, receiver="miner", reply=HeartbeatReply, **kw):
    async with SignedClient(keys[sender], **kw) as client:
        return await client.call(target(thread, keys, receiver), request or Heartbeat(), reply)


async def raw_post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST to ``url + path`` with the target sent exactly as given (no re-encoding by yarl)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(URL(url + path, encoded=True), data=body, headers=headers) as response,
    ):
        return response.status, await response.text()


def signed(keys, path: str, body: bytes, sender: str = "validator") -> dict[str, str]:
    """Headers from the SDK's own signer, addressed to the served miner."""
    return bt.http_auth.sign(
        keys[sender], method="POST", path=path, body=body, receiver_ss58=keys["miner"].ss58_address
    )


async def test_good_call(served, keys):
    thread, handlers = served
    outcome = await call_as(keys, "validator", thread)
    assert outcome.status is Status.OK, outcome.detail
    assert outcome.reply.hotkey == keys["miner"].ss58_address
    assert handlers.calls == [keys["validator"].ss58_address]


async def test_bad_signature_is_401(served, keys):
    thread, _ = served
    body = Heartbeat().model_dump_json().encode()
    headers = signed(keys, "/Heartbeat", body)
    # Signed by the stranger, claimed by the validator.
    forged = signed(keys, "/Heartbeat", body, "stranger")
    headers["X-Bittensor-Signature"] = forged["X-Bittensor-Signature"]
    headers["X-Bittensor-Nonce"] = forged["X-Bittensor-Nonce"]
    status, text = await raw_post(thread.url, "/Heartbeat", body, headers)
    assert status == 401
    assert "BadSignature" in text


async def test_tampered_body_is_401(served, keys):
    thread, handlers = served
    body = Heartbeat().model_dump_json().encode()
    headers = signed(keys, "/Heartbeat", body)
    status, text = await raw_post(thread.url, "/Heartbeat", body.replace(b"1", b"2"), headers)
    assert status == 401 and "BadSignature" in text
    assert handlers.calls == []


async def test_replay_is_401(served, keys):
    thread, handlers = served
    body = Heartbeat().model_dump_json().encode()
    headers = signed(keys, "/Heartbeat", body)
    first = await raw_post(thread.url, "/Heartbeat", body, headers)
    second = await raw_post(thread.url, "/Heartbeat", body, headers)
    assert first[0] == 200
    assert second[0] == 401 and "ReplayedRequest" in second[1]
    assert len(handlers.calls) == 1


async def test_wrong_receiver_is_401(served, keys):
    thread, handlers = served
    outcome = await call_as(keys, "validator", thread, receiver="stranger")
    assert outcome.status is Status.UNAUTHORIZED
    assert "WrongReceiver" in outcome.detail
    assert handlers.calls == []


async def test_stale_nonce_is_401(served, keys):
    thread, _ = served
    body = Heartbeat().model_dump_json().encode()
    old = time.time_ns() - 60 * 10**9
    headers = bt.http_auth.sign(
        keys["validator"],
        method="POST",
        path="/Heartbeat",
        body=body,
        receiver_ss58=keys["miner"].ss58_address,
        nonce_ns=old,
    )
    status, text = await raw_post(thread.url, "/Heartbeat", body, headers)
    assert status == 401 and "StaleRequest" in text


async def test_missing_headers_is_401(served):
    thread, _ = served
    status, text = await raw_post(thread.url, "/Heartbeat", b"{}", {})
    assert status == 401 and "MalformedAuth" in text


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("stranger", "is not registered on subnet 1"),
        ("nopermit", "holds no validator permit"),
        ("small", "below the minimum 10"),
    ],
)
async def test_blacklisted_callers_get_403_with_reason(served, keys, sender, reason):
    thread, handlers = served
    outcome = await call_as(keys, sender, thread)
    assert outcome.status is Status.FORBIDDEN
    assert reason in outcome.detail
    assert handlers.calls == []


async def test_oversized_body_is_413(served, keys):
    thread, _ = served
    body = b'{"protocol_version": 1, "pad": "' + b"x" * (70 * 1024) + b'"}'
    headers = signed(keys, "/Heartbeat", body)
    status, text = await raw_post(thread.url, "/Heartbeat", body, headers)
    assert status == 413 and "exceeds the limit of 65536 bytes" in text


async def test_oversized_chunked_body_is_413(served, keys):
    thread, _ = served

    async def chunks():
        for _ in range(20):
            yield b"x" * 8192

    headers = bt.http_auth.sign(
        keys["validator"],
        method="POST",
        path="/Heartbeat",
        body=b"",
        receiver_ss58=keys["miner"].ss58_address,
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(thread.url + "/Heartbeat", data=chunks(), headers=headers) as response,
    ):
        assert response.status == 413


async def test_validation_error_names_the_field(served, keys):
    thread, _ = served
    request = FeedbackRequest.model_construct(
        request_id="r1",
        prompt="p",
        task_type="code_generation",
        criteria=[],
        completions=[],
        expire_at=utcnow() + timedelta(hours=1),
        protocol_version=1,
    )
    outcome = await call_as(keys, "validator", thread, request=request, reply=Ack)
    assert outcome.status is Status.CLIENT_ERROR and outcome.http_status == 422
    assert "criteria" in outcome.detail and "completions" in outcome.detail


@pytest.mark.parametrize("version", ['"1"', "1.0", "true"])
async def test_protocol_version_must_be_a_json_integer(served, keys, version):
    """Lax parsing would read each of these as version 1 and run the handler."""
    thread, handlers = served
    body = b'{"protocol_version": ' + version.encode() + b"}"
    status, text = await raw_post(thread.url, "/Heartbeat", body, signed(keys, "/Heartbeat", body))
    assert status == 422
    assert "protocol_version: Input should be a valid integer" in text
    assert handlers.calls == []


async def test_other_protocol_version_is_400(served, keys):
    thread, _ = served
    outcome = await call_as(keys, "validator", thread, request=Heartbeat(protocol_version=2))
    assert outcome.http_status == 400
    assert "speaks 1" in outcome.detail


async def test_a_signed_query_string_verifies(served, keys):
    thread, handlers = served
    async with SignedClient(keys["validator"]) as client:
        outcome = await client.call(
            target(thread, keys), Heartbeat(), HeartbeatReply, query={"round": "3", "note": "a b/é~"}
        )
    assert outcome.status is Status.OK, outcome.detail
    # The SDK's signer over the same target, query included, is accepted too.
    body = Heartbeat().model_dump_json().encode()
    status, text = await raw_post(
        thread.url, "/Heartbeat?round=3", body, signed(keys, "/Heartbeat?round=3", body)
    )
    assert status == 200, text
    assert len(handlers.calls) == 2


@pytest.mark.parametrize(
    ("signed_target", "sent_target"),
    [
        ("/Heartbeat?round=3", "/Heartbeat?round=4"),  # changed
        ("/Heartbeat", "/Heartbeat?round=3"),  # added
        ("/Heartbeat?round=3", "/Heartbeat"),  # dropped
        ("/Heartbeat?note=a+b", "/Heartbeat?note=a%20b"),  # re-encoded: the same words, other bytes
    ],
)
async def test_a_query_changed_after_signing_is_401(served, keys, signed_target, sent_target):
    thread, handlers = served
    body = Heartbeat().model_dump_json().encode()
    status, text = await raw_post(thread.url, sent_target, body, signed(keys, signed_target, body))
    assert status == 401
    assert "BadSignature" in text and f"verified POST {sent_target} with the body as received" in text
    assert handlers.calls == []


async def test_handler_timeout_is_504(served, keys):
    thread, _ = served
    outcome = await call_as(
        keys, "validator", thread, request=TaskResultRequest(request_id="r1"), reply=TaskResultReply
    )
    assert outcome.status is Status.SERVER_ERROR and outcome.http_status == 504
    assert "did not finish within 0.5s" in outcome.detail


async def test_client_timeout_is_an_outcome(served, keys):
    thread, _ = served
    outcome = await call_as(
        keys,
        "validator",
        thread,
        request=TaskResultRequest(request_id="r1"),
        reply=TaskResultReply,
        timeout=0.1,
    )
    assert outcome.status is Status.TIMEOUT


async def test_handler_crash_is_5xx_outcome(served, keys):
    thread, _ = served
    request = ScoringResult(request_id="r1", hotkey=keys["miner"].ss58_address, score=0.5)
    outcome = await call_as(keys, "validator", thread, request=request, reply=Ack)
    assert outcome.status is Status.SERVER_ERROR and outcome.http_status == 500


async def test_invalid_reply_is_an_outcome(served, keys):
    thread, _ = served
    outcome = await call_as(keys, "validator", thread, reply=Ack, request=Heartbeat())
    # Heartbeat answers HeartbeatReply; reading it as Ack (which forbids extra fields) fails.
    assert outcome.status is Status.INVALID_REPLY
    # The detail names the field and the reason, not only how many errors there were.
    assert "hotkey: Extra inputs are not permitted" in outcome.detail


async def test_miner_down_is_refused_and_fanout_never_raises(served, keys):
    thread, _ = served
    down = Target(hotkey=keys["miner"].ss58_address, url=f"http://127.0.0.1:{free_port()}", uid=5)
    async with SignedClient(keys["validator"], timeout=2) as client:
        outcomes = await client.fanout(
            [target(thread, keys), down, target(thread, keys, "stranger")], Heartbeat(), HeartbeatReply
        )
    assert [o.status for o in outcomes] == [Status.OK, Status.REFUSED, Status.UNAUTHORIZED]


def test_server_binds_only_the_address_given(keys, metagraph):
    server = SignedServer(keys["miner"], lambda: metagraph)
    server.route(Heartbeat, Handlers(keys["miner"].ss58_address).heartbeat)
    with ServerThread(server, host="127.0.0.2") as thread:
        with socket.create_connection(("127.0.0.2", thread.port), timeout=2):
            pass
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", thread.port), timeout=2),
        ):
            pass


async def test_priority_gate_admits_highest_stake_first():
    gate = PriorityGate(limit=1)
    order: list[str] = []
    hold = asyncio.Event()

    async def holder():
        async with gate.admit(0):
            await hold.wait()

    async def caller(name: str, stake: float):
        async with gate.admit(stake):
            order.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(caller(n, s)) for n, s in [("low", 1), ("high", 100), ("mid", 10)]]
    await asyncio.sleep(0.01)
    assert order == []
    hold.set()
    await asyncio.gather(first, *waiting)
    assert order == ["high", "mid", "low"]


async def test_priority_comes_from_chain_stake_not_the_request(keys, metagraph):
    """A caller cannot raise its priority: the server reads stake from the metagraph."""
    seen: list[float] = []

    async def record(request, caller):
        seen.append(caller.stake)
        return HeartbeatReply(hotkey=keys["miner"].ss58_address)

    server = SignedServer(keys["miner"], lambda: metagraph)
    server.route(Heartbeat, record)
    with ServerThread(server) as thread:
        outcome = await call_as(keys, "validator", thread)
    assert outcome.ok and seen == [1000.0]


def test_client_signature_is_btauth_and_verifies(keys):
    client = SignedClient(keys["validator"])
    body = b'{"protocol_version":1}'
    receiver = keys["miner"].ss58_address
    headers = client.sign("/Heartbeat", body, receiver)
    reference = bt.http_auth.sign(
        keys["validator"], method="POST", path="/Heartbeat", body=body, receiver_ss58=receiver
    )
    assert set(headers) == set(reference)
    caller = bt.http_auth.verify(
        headers,
        body,
        method="POST",
        path="/Heartbeat",
        self_hotkey_ss58=receiver,
        nonce_store=bt.http_auth.InMemoryNonceStore(),
    )
    assert caller.hotkey_ss58 == keys["validator"].ss58_address
    with pytest.raises(bt.http_auth.BadSignature):
        bt.http_auth.verify(
            headers,
            body + b" ",
            method="POST",
            path="/Heartbeat",
            self_hotkey_ss58=receiver,
            nonce_store=bt.http_auth.InMemoryNonceStore(),
        )


def test_client_signs_the_query_string_as_btauth_does(keys):
    client = SignedClient(keys["validator"])
    body = b'{"protocol_version":1}'
    receiver = keys["miner"].ss58_address
    headers = client.sign("/Heartbeat?round=3&note=a+b", body, receiver)

    def verify(path: str) -> str:
        return bt.http_auth.verify(
            headers,
            body,
            method="POST",
            path=path,
            self_hotkey_ss58=receiver,
            nonce_store=bt.http_auth.InMemoryNonceStore(),
        ).hotkey_ss58

    assert verify("/Heartbeat?round=3&note=a+b") == keys["validator"].ss58_address
    for other in ("/Heartbeat", "/Heartbeat?round=4&note=a+b", "/Heartbeat?note=a+b&round=3"):
        with pytest.raises(bt.http_auth.BadSignature):
            verify(other)
