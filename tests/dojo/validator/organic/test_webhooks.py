"""Webhooks to a real receiver on loopback: signed as Standard Webhooks, the same id and body
on every attempt, retried with backoff, resumed by a new sender (a restart), and never sent
to an address the guard refuses at delivery time."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from commons.organic import WebhookInvalid, verify_webhook, webhook_headers
from commons.retry import RetryPolicy
from dojo.validator.models import OrganicDelivery
from dojo.validator.organic.callbacks import CallbackGuard, CallbackRefused
from dojo.validator.organic.store import NewOrganic, OrganicStore, record_organic_results
from dojo.validator.organic.webhooks import WebhookSender
from dojo.validator.store import TaskStore
from template.clock import utcnow
from tests.hostile_miner import BombServer, PeakRss

FAST = RetryPolicy(attempts=12, base_delay=0.02, max_delay=0.05, jitter=0.2)


class Receiver:
    """An HTTP server that answers each webhook with the next status of ``statuses``."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()
                if status < 300:
                    outer.got.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/dojo?team=a"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(tmp_path) -> Iterator[OrganicStore]:
    tasks = TaskStore(tmp_path / "v.sqlite")
    yield OrganicStore(tasks.engine)
    tasks.close()


def _scored_task(store: OrganicStore, url: str) -> tuple[str, str]:
    """An organic task scored with a callback: its webhook is written. Returns (task id, secret)."""
    key = store.create_key("k", 100, 100, utcnow())
    task_id = uuid.uuid4().hex
    store.accept(
        [
            NewOrganic(
                task_id,
                key.key_id,
                None,
                "h",
                utcnow(),
                "private",
                url,
                60.0,
                3,
                {"prompt": "p", "task_type": "text", "criteria": [{"type": "ranking"}], "completions": []},
            )
        ]
    )
    result = {
        "criteria_type": "ranking",
        "ranking": ["c2", "c1"],
        "agreement": 0.8,
        "miners": 3,
        "workers": 9,
        "completions": [
            {"id": "c1", "consensus_rank": 2.0, "mean": 1.8, "spread": 0.4},
            {"id": "c2", "consensus_rank": 1.0, "mean": 1.2, "spread": 0.4},
        ],
        "raw": [],
    }
    with Session(store.engine) as db, db.begin():
        from dojo.validator.models import OrganicTask

        db.get(OrganicTask, task_id).status = "sent"
        db.get(OrganicTask, task_id).labels = {"c1": "first", "c2": "second"}
        record_organic_results(db, {task_id: result}, utcnow())
    return task_id, key.webhook_secret


def _delivery(store: OrganicStore) -> OrganicDelivery:
    with Session(store.engine) as db:
        return db.scalars(select(OrganicDelivery)).one()


async def _until_final(sender: WebhookSender, store: OrganicStore, rounds: int = 200) -> OrganicDelivery:
    import asyncio

    for _ in range(rounds):
        await sender.deliver_due()
        delivery = _delivery(store)
        if delivery.status != "pending":
            return delivery
        await asyncio.sleep(0.02)
    raise AssertionError("the delivery never finished")


async def test_a_webhook_verifies_keeps_its_id_on_retries_and_survives_a_restart(store):
    receiver = Receiver([500, 503, 502, 200])
    guard = CallbackGuard(allow_private=True, own_ports={1})
    try:
        task_id, secret = _scored_task(store, receiver.url)
        # The first sender tries once and "dies" (a restart); the state is the database's.
        first = WebhookSender(store, guard, policy=FAST)
        assert await first.deliver_due() == 1
        await first.aclose()
        assert _delivery(store).attempts == 1 and _delivery(store).status == "pending"
        second = WebhookSender(store, guard, policy=FAST)
        delivery = await _until_final(second, store)
        await second.aclose()
    finally:
        receiver.close()
    assert delivery.status == "delivered" and delivery.attempts == 4 and delivery.last_status_code == 200
    ids = {headers["webhook-id"] for headers, _ in receiver.calls}
    bodies = {body for _, body in receiver.calls}
    assert ids == {delivery.delivery_id} and len(bodies) == 1 and len(receiver.calls) == 4
    for headers, body in receiver.calls:
        # Verified by the Standard Webhooks package itself, and by our client's helper.
        assert json.loads(body) == Webhook(secret).verify(body, headers)
        event = verify_webhook(secret, headers, body)
        assert event.type == "task.scored" and event.data.task_id == task_id
        assert event.data.result.ranking == ["second", "first"]
        assert headers["host"] == receiver.url.split("/")[2]
    headers, body = receiver.calls[-1]
    with pytest.raises(WebhookInvalid):
        verify_webhook(secret, headers, body.replace(b"second", b"third"))
    with pytest.raises(WebhookInvalid):
        verify_webhook("whsec_" + "A" * 44, headers, body)
    # What GET shows of it.
    view = store.view(next(k.key_id for k in store.list_keys()), task_id, utcnow())
    assert view.delivery.state == "delivered" and view.delivery.webhook_id == delivery.delivery_id


async def test_retries_back_off_with_jitter_and_give_up_after_the_day(store):
    receiver = Receiver([500] * 100)
    guard = CallbackGuard(allow_private=True, own_ports=set())
    try:
        _scored_task(store, receiver.url)
        sender = WebhookSender(store, guard, policy=FAST, window=timedelta(hours=24))
        delivery = await _until_final(sender, store, rounds=2000)
        await sender.aclose()
    finally:
        receiver.close()
    assert (
        delivery.status == "failed"
        and delivery.attempts == FAST.attempts
        and delivery.last_status_code == 500
    )
    # The production schedule: at least 10 attempts within about a day, the gaps growing.
    import random

    from dojo.validator.organic.webhooks import DELIVERY_RETRY, DELIVERY_WINDOW

    rng, at, attempts = random.Random(1), 0.0, 1
    while attempts < DELIVERY_RETRY.attempts and at < DELIVERY_WINDOW.total_seconds():
        at = min(at + DELIVERY_RETRY.delay(attempts - 1, rng), DELIVERY_WINDOW.total_seconds())
        attempts += 1
    assert attempts >= 10 and 20 * 3600 <= at <= 24 * 3600


async def test_an_address_refused_at_delivery_is_never_called(store):
    receiver = Receiver([200])

    async def now_private(host: str, port: int) -> list[str]:
        return ["10.9.8.7"]  # the name resolves elsewhere since the task was accepted

    try:
        _scored_task(store, receiver.url.replace("127.0.0.1", "localhost"))
        sender = WebhookSender(
            store, CallbackGuard(allow_private=False, own_ports=set(), resolver=now_private), policy=FAST
        )
        delivery = await _until_final(sender, store)
        await sender.aclose()
    finally:
        receiver.close()
    assert delivery.status == "failed" and "private address" in delivery.last_error and receiver.calls == []


def test_a_signed_body_that_is_no_event_is_refused_naming_the_field():
    secret = "whsec_" + "A" * 44
    body = json.dumps({"type": "task.scored", "timestamp": "2026-10-21T07:28:00Z"}).encode()
    with pytest.raises(WebhookInvalid, match="not an event: data: Field required"):
        verify_webhook(secret, webhook_headers(secret, "msg_1", body), body)


async def test_a_receiver_answering_a_gzip_bomb_is_drained_undecoded_and_the_webhook_delivered(store):
    # The receiver's 200 counts; its body (1 GiB of whitespace in about 1 MiB of gzip) is read
    # raw up to 64 KiB and dropped, never inflated.
    async with BombServer() as bomb:
        _scored_task(store, bomb.url + "/hooks/dojo")
        sender = WebhookSender(store, CallbackGuard(allow_private=True, own_ports=set()), policy=FAST)
        with PeakRss() as peak:
            delivery = await _until_final(sender, store)
        await sender.aclose()
    assert delivery.status == "delivered" and delivery.last_status_code == 200 and bomb.requests == 1
    if not peak.available:
        pytest.skip("the peak resident size cannot be reset here")
    assert peak.grew < 16 * 1024 * 1024, f"the peak grew by {peak.grew >> 20} MiB"


async def test_the_guard_remembers_passed_addresses_and_resolves_names_every_time():
    resolved: list[str] = []
    answers = iter([["93.184.215.14"], ["10.9.8.7"]])

    async def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return next(answers)

    guard = CallbackGuard(allow_private=False, own_ports={8080}, resolver=resolver)
    first = await guard.check("https://93.184.215.14/hook")
    assert await guard.check("https://93.184.215.14/hook") is first
    for _ in range(2):  # a refused address stays refused
        with pytest.raises(CallbackRefused, match="private address"):
            await guard.check("http://10.1.2.3/hook")
    assert (await guard.check("https://example.com/hook")).addresses == ("93.184.215.14",)
    with pytest.raises(CallbackRefused, match="10.9.8.7, a private address"):
        await guard.check("https://example.com/hook")  # the name resolves elsewhere now
    assert resolved == ["example.com", "example.com"]
