"""Delivering webhooks: signed as Standard Webhooks, retried for about a day, resumed after a
restart.

Each delivery is a row written with the result it announces (its ``webhook-id`` and its body
are fixed then, so every attempt sends the same id and bytes). A loop takes the rows that
are due, checks the callback URL again (:mod:`dojo.validator.organic.callbacks`), connects to
an address it has just checked, and posts with fresh signature headers. A 2xx delivers it;
a 410 gives up (the receiver says it is gone); anything else, or no answer within the
timeout, is tried again after ``DELIVERY_RETRY``'s backoff with jitter, for at most
``DELIVERY_WINDOW`` (and a last try at its end). Nothing here runs on the validator's loops.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from loguru import logger

from commons.organic import webhook_headers
from commons.retry import RetryPolicy
from dojo.validator.organic.callbacks import CallbackGuard, CallbackRefused, CallbackTarget
from dojo.validator.organic.store import DueDelivery, OrganicStore
from template.clock import utcnow
from template.failpoints import failpoint

# 30 s, doubling, at most 6 h apart, jittered by up to 20% (so many receivers that failed at
# once are not retried in lockstep): 14 attempts over the day, the last at its end.
DELIVERY_RETRY = RetryPolicy(attempts=16, base_delay=30.0, max_delay=6 * 3600.0, jitter=0.2)
DELIVERY_WINDOW = timedelta(hours=24)
MAX_REPLY_BYTES = 64 << 10


class WebhookSender:
    def __init__(
        self,
        store: OrganicStore,
        guard: CallbackGuard,
        *,
        policy: RetryPolicy = DELIVERY_RETRY,
        window: timedelta = DELIVERY_WINDOW,
        timeout: float = 10.0,
        concurrency: int = 16,
        poll: float = 1.0,
    ) -> None:
        self.store = store
        self.guard = guard
        self.policy = policy
        self.window = window
        self.poll = poll
        self._semaphore = asyncio.Semaphore(concurrency)
        self._rng = random.SystemRandom()
        # No redirects: a 3xx to an address nobody checked is not followed.
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.deliver_due()
            except Exception:  # logged; the rows stay due and the next pass tries them
                logger.exception("webhook delivery pass failed")
            try:
                await asyncio.wait_for(stop.wait(), self.poll)
            except asyncio.TimeoutError:
                continue

    async def deliver_due(self) -> int:
        """One attempt at every delivery that is due; returns how many were attempted."""
        due = await asyncio.to_thread(self.store.due_deliveries, utcnow())
        await asyncio.gather(*(self._attempt(d) for d in due))
        return len(due)

    async def _attempt(self, d: DueDelivery) -> None:
        async with self._semaphore:
            code: int | None = None
            error: str | None = None
            final = False
            try:
                target = await self.guard.check(d.url)
            except CallbackRefused as exc:
                error, final = f"refused: {exc}", True
            else:
                code, error = await self._post(d, target)
                failpoint("validator.webhook.after_post")  # delivered, not yet written down
                final = code == 410
        now = utcnow()
        delivered = code is not None and 200 <= code < 300
        next_at = None if delivered or final else self._next(d, now)
        if delivered:
            logger.info(
                "webhook {} for task {} delivered ({}) after {} attempts",
                d.delivery_id,
                d.task_id,
                code,
                d.attempts + 1,
            )
        else:
            logger.info(
                "webhook {} for task {}: attempt {} failed ({}); {}",
                d.delivery_id,
                d.task_id,
                d.attempts + 1,
                error or code,
                f"again at {next_at.isoformat()}" if next_at else "giving up",
            )
        await asyncio.to_thread(
            self.store.record_attempt,
            d.delivery_id,
            now,
            delivered=delivered,
            status_code=code,
            error=error,
            next_at=next_at,
        )

    def _next(self, d: DueDelivery, now: datetime) -> datetime | None:
        attempts = d.attempts + 1
        end = d.created_at + self.window
        if attempts >= self.policy.attempts or now >= end:
            return None
        return min(now + timedelta(seconds=self.policy.delay(attempts - 1, self._rng)), end)

    async def _post(self, d: DueDelivery, target: CallbackTarget) -> tuple[int | None, str | None]:
        body = d.body.encode()
        headers = {
            **webhook_headers(d.secret, d.delivery_id, body),
            "content-type": "application/json",
            "user-agent": "dojo-validator-webhooks/1",
        }
        parts = urlsplit(d.url)
        address = target.addresses[0]
        host = f"[{address}]" if ":" in address else address
        # Connect to the address just checked; the name goes in Host (and in TLS's SNI).
        pinned = urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))
        headers["host"] = parts.netloc.rsplit("@", 1)[-1]
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            request = self._http.build_request(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            )
            response = await self._http.send(request, stream=True)
            try:
                read = 0
                # Raw: the reply is only drained, never decoded, so a compressed one cannot inflate.
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > MAX_REPLY_BYTES:
                        break
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None if response.status_code < 300 else f"HTTP {response.status_code}"
