"""Simulated workers on the worker platform's real HTTP API, as a browser would use it.

A :class:`SimulatedWorker` logs in with an Ethereum key (challenge, EIP-191 signature,
bearer token) or through an invite link (the page's CSRF token, then the form; a session
cookie), subscribes with the miner's subscription key, and loops: next task, answer by its
behaviour, think, submit, with an HTTP client (and so cookies) of its own. The contract is
``docs/platform-api.md``. Given the key and the session token of an earlier run, it is the
same worker again and logs in only if that session has ended.

A *stand-in* (``due_within``) takes only tasks whose deadline is at most that many seconds
away, from the task list rather than the queue: it fills the place a task keeps for a
person once the task has waited long enough for one.

What a worker does with each answer from the platform:

- 204 on next task: nothing to do; ask again after ``poll_interval``.
- 409/410/404 on submit (the task filled up, expired or went away): move on.
- 422 on submit (the platform refused the answer): count an error, skip the task.
- 429: wait ``Retry-After``; 5xx, timeouts, refused connections: back off and retry.
- 401 (the session ended): a wallet worker logs in again; an invited worker stops.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from loguru import logger

from commons.dojo_api import normalize_base_url
from commons.platform_contract import CSRF_HEADER, WORKER_COOKIE
from commons.retry import RetryPolicy, is_transient, retry_after
from dojo.workers._behaviours import Behaviour, UnsupportedTask, result_data
from dojo.workers._oracle import Oracle
from template.http_body import ResponseTooLarge, capped

SUBMIT_ATTEMPTS = 4
LOGIN_ATTEMPTS = 3
BACKOFF = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=0.5)
# The most a platform reply may take, compressed and decoded (template.http_body): a page or
# a task with its completions is far under it; over it is an error, retried like a lost connection.
MAX_REPLY_BYTES = 16 * 1024 * 1024
_CSRF_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass
class WorkerStats:
    """What one worker did. ``worker_id``: its platform id (a miner sees a pseudonym of it,
    ``dojo.platform.services.auth.worker_pseudonym_for_miner``); ``missed``: tasks that filled up, expired or
    went away before its answer; ``rate_limited``: 429s waited out; ``errors``: failed
    requests and refused answers; ``idle``: asks for a task that found none for it;
    ``failed``: why it stopped before it was told to."""

    name: str
    behaviour: str
    worker_id: str | None = None
    submitted: int = 0
    skipped: int = 0
    missed: int = 0
    rate_limited: int = 0
    errors: int = 0
    idle: int = 0
    failed: str | None = None


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop``; True if stopped."""
    if seconds > 0 and not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return False
    return stop.is_set()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:200]


class SimulatedPerson:
    """What every simulated worker has, on the Dojo platform or on Label Studio: its behaviour
    and the oracle it may ask for the true order, its pace (``think_time`` before each answer,
    ``poll_interval`` between asks when there is no task), its dice, its requests' timeout and
    the count of what it did, under its ``name``."""

    def __init__(
        self,
        behaviour: Behaviour,
        oracle: Oracle | None,
        name: str,
        think_time: tuple[float, float],
        poll_interval: float,
        rng: random.Random | None,
        timeout: float,
    ):
        self.behaviour = behaviour
        self.oracle = oracle
        self.think_time = think_time
        self.poll_interval = poll_interval
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.stats = WorkerStats(name, str(behaviour))

    @property
    def name(self) -> str:
        return self.stats.name

    async def _truth(self, cids: list[str]) -> dict[str, int] | None:
        """The true ranks of ``cids`` when the behaviour wants them and the oracle knows them."""
        if self.behaviour.needs_truth and self.oracle is not None:
            return await asyncio.to_thread(self.oracle.true_ranks, cids)
        return None

    async def _think(self, stop: asyncio.Event) -> bool:
        """Think over an answer for a while at the worker's pace; True if stopped meanwhile."""
        return await _pause(stop, self.rng.uniform(*self.think_time))


class SimulatedWorker(SimulatedPerson):
    """One simulated worker. ``invite`` (a link from ``dojo platform invite``) makes it join
    by invite instead of by wallet; ``subscription_key`` subscribes it to a miner.

    ``key`` (hex) and ``token``: the wallet key and session of an earlier run, so that the
    worker is the same one again; ``on_session`` is called after each new log-in, to keep
    the token. ``due_within`` makes it a stand-in (see the module's docstring)."""

    def __init__(
        self,
        platform_url: str,
        behaviour: Behaviour,
        oracle: Oracle | None = None,
        *,
        name: str = "worker",
        subscription_key: str | None = None,
        invite: str | None = None,
        think_time: tuple[float, float] = (0.2, 1.0),
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        timeout: float = 10.0,
        key: str | None = None,
        token: str | None = None,
        on_session: Callable[[SimulatedWorker], None] | None = None,
        due_within: float | None = None,
    ):
        if subscription_key is None and invite is None:
            raise ValueError(f"{name}: give a subscription key or an invite link, or it can see no task")
        if invite is not None and not urlsplit(invite).path.startswith("/invite/"):
            raise ValueError(f"{name}: {invite!r} is not an invite link (…/invite/<token>)")
        super().__init__(behaviour, oracle, name, think_time, poll_interval, rng, timeout)
        self.platform_url = normalize_base_url(platform_url)
        self.subscription_key = subscription_key
        self.invite = invite
        self.account = Account.from_key(key) if key else Account.create()
        self._token: str | None = token if invite is None else None
        # A cookie session's CSRF token, as a page of the platform carries it (bound to the session).
        self._csrf: str | None = None
        self._on_session = on_session
        self.due_within = due_within
        # Backoff has dice of its own, so that timing cannot change a seeded worker's answers.
        self._backoff_rng = random.Random()

    @property
    def key(self) -> str:
        """The worker's wallet key (hex): with it a later run is the same worker."""
        return "0x" + bytes(self.account.key).hex()

    @property
    def token(self) -> str | None:
        """The bearer token of the worker's session, once logged in by wallet."""
        return self._token

    async def run(self, stop: asyncio.Event) -> None:
        """Join, then work until ``stop`` is set or the worker cannot go on."""
        async with httpx.AsyncClient(
            base_url=self.platform_url,
            timeout=self.timeout,
            headers={"accept": "application/json"},
            transport=capped(MAX_REPLY_BYTES, name="the platform"),
        ) as client:
            if await self._join(client, stop):
                await self._work(client, stop)

    # -- requests --------------------------------------------------------------------------

    def _headers(self, client: httpx.AsyncClient, method: str) -> dict[str, str]:
        if self._token is not None:
            return {"authorization": f"Bearer {self._token}"}
        # A cookie session sends its page's CSRF token on every unsafe request, as the UI does.
        return {CSRF_HEADER: self._csrf} if self._csrf and method != "GET" else {}

    async def _request(
        self,
        client: httpx.AsyncClient,
        stop: asyncio.Event,
        method: str,
        path: str,
        *,
        attempts: int | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """The platform's answer unless it is a transient failure (``commons.retry.is_transient``:
        no answer, 408/425/429, 5xx), which is retried; None when stopped or after ``attempts``
        failures (None: no limit)."""
        attempt = 0
        while not stop.is_set():
            try:
                sent = {**self._headers(client, method), **(headers or {})}
                response = await client.request(method, path, headers=sent, **kwargs)
            except (httpx.TransportError, ResponseTooLarge) as exc:
                if isinstance(exc, httpx.TransportError) and not is_transient(
                    exc
                ):  # a malformed platform URL
                    raise
                wait, reason = BACKOFF.delay(attempt, self._backoff_rng), f"{type(exc).__name__}: {exc}"
                self.stats.errors += 1
            else:
                if response.status_code == 429:
                    wait = BACKOFF.delay(attempt, self._backoff_rng, retry_after(response.headers))
                    reason = "429 rate limited"
                    self.stats.rate_limited += 1
                elif is_transient(response.status_code):
                    wait, reason = BACKOFF.delay(attempt, self._backoff_rng), f"{response.status_code}"
                    self.stats.errors += 1
                else:
                    return response
            attempt += 1
            if attempts is not None and attempt >= attempts:
                logger.warning(
                    "{}: {} {} failed ({}); giving up after {} attempts",
                    self.name,
                    method,
                    path,
                    reason,
                    attempt,
                )
                return None
            logger.warning("{}: {} {} failed ({}); again in {:.2f}s", self.name, method, path, reason, wait)
            if await _pause(stop, wait):
                return None
        return None

    def _fail(self, why: str) -> bool:
        self.stats.failed = why
        logger.error("{}: {}", self.name, why)
        return False

    # -- joining ---------------------------------------------------------------------------

    async def _join(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        if self.invite:
            joined = await self._join_by_invite(client, stop)
        else:
            joined = await self._resume(client, stop) or await self._log_in(client, stop)
        if not joined:
            return False
        if self.subscription_key is not None and not await self._subscribe(client, stop):
            return False
        logger.info("{}: joined as worker {} ({})", self.name, self.stats.worker_id, self.behaviour)
        return True

    async def _resume(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """Whether the session of an earlier run still works (then no log-in is needed)."""
        if self._token is None:
            return False
        me = await self._request(client, stop, "GET", "/api/v1/worker/me")
        if me is not None and me.status_code == 200:
            self.stats.worker_id = me.json()["workerId"]
            logger.info("{}: the session of an earlier run still works", self.name)
            return True
        return False

    async def _log_in(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """Sign the platform's challenge with the worker's key (EIP-191) and keep the bearer token."""
        self._token = None
        address = self.account.address
        for _ in range(LOGIN_ATTEMPTS):
            challenge = await self._request(
                client, stop, "POST", "/api/v1/worker/challenge", json={"address": address}
            )
            if challenge is None:
                return False
            if challenge.status_code != 200:
                return self._fail(
                    f"the platform refused the log-in challenge: {challenge.status_code} {_detail(challenge)}"
                )
            body = challenge.json()
            signed = self.account.sign_message(encode_defunct(text=body["message"]))
            login = await self._request(
                client,
                stop,
                "POST",
                "/api/v1/worker/login",
                json={
                    "address": address,
                    "signature": "0x" + bytes(signed.signature).hex(),
                    "nonce": body["nonce"],
                },
            )
            if login is None:
                return False
            if login.status_code == 200:
                self._token = login.json()["token"]
                self.stats.worker_id = login.json()["workerId"]
                if self._on_session is not None:
                    self._on_session(self)
                return True
            # A 401 here is a challenge that expired or was spent meanwhile: take a new one.
            self.stats.errors += 1
            logger.warning("{}: log-in refused: {} {}", self.name, login.status_code, _detail(login))
        return self._fail(f"could not log in after {LOGIN_ATTEMPTS} attempts")

    async def _join_by_invite(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """Open the invite page (for its CSRF token) and send its form, as a browser does."""
        assert self.invite is not None
        path = urlsplit(self.invite).path
        shown = path[: len("/invite/") + 8] + "…"  # the rest of the link is a secret
        page = await self._request(client, stop, "GET", path, headers={"accept": "text/html"})
        if page is None:
            return False
        if page.status_code != 200:
            return self._fail(
                f"invite link {shown} does not work ({page.status_code}): used, expired or unknown"
            )
        match = _CSRF_FIELD.search(page.text)
        csrf = match.group(1) if match else None
        if not csrf:
            return self._fail(f"the invite page {shown} has no CSRF token to send back")
        joined = await self._request(
            client, stop, "POST", path, data={"csrf_token": csrf}, attempts=LOGIN_ATTEMPTS
        )
        if joined is None:
            return False if stop.is_set() else self._fail(f"could not send the invite form {shown}")
        if joined.status_code != 303 or client.cookies.get(WORKER_COOKIE) is None:
            return self._fail(f"joining by invite {shown} failed ({joined.status_code}): used or expired")
        # The token that goes with the new session: the one any of its pages carries.
        tasks = await self._request(client, stop, "GET", "/tasks", headers={"accept": "text/html"})
        if tasks is None:
            return False
        meta = _CSRF_META.search(tasks.text)
        if tasks.status_code != 200 or meta is None:
            return self._fail(f"the task list has no CSRF token for the new session ({tasks.status_code})")
        self._csrf = meta.group(1)
        me = await self._request(client, stop, "GET", "/api/v1/worker/me")
        if me is None:
            return False
        if me.status_code != 200:
            return self._fail(f"the invite's session does not work: {me.status_code} {_detail(me)}")
        self.stats.worker_id = me.json()["workerId"]
        return True

    async def _subscribe(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        reply = await self._request(
            client,
            stop,
            "POST",
            "/api/v1/worker/subscriptions",
            json={"name": "simulated team", "key": self.subscription_key},
        )
        if reply is None:
            return False
        if reply.status_code in (201, 409):  # 409: already on this miner's team
            return True
        return self._fail(
            f"cannot subscribe with the subscription key ({reply.status_code} {_detail(reply)}); "
            "check the key the miner generated (`dojo subscription-key generate`)"
        )

    # -- working ---------------------------------------------------------------------------

    async def _work(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.due_within is None:
                reply = await self._request(client, stop, "POST", "/api/v1/worker/tasks/next")
            else:
                reply = await self._claim_due(client, stop, self.due_within)
            if reply is None:
                return
            if reply.status_code == 200:
                try:
                    task = reply.json()
                    await self._answer(client, stop, str(task["id"]), task)
                except (ValueError, KeyError, TypeError) as exc:
                    # A task body this worker cannot read: one bad task must not end the worker.
                    self.stats.errors += 1
                    logger.warning("{}: cannot answer a task ({}: {})", self.name, type(exc).__name__, exc)
                    await _pause(stop, self.poll_interval)
                continue
            if reply.status_code == 401:
                if not await self._session_lost(client, stop):
                    return
                continue
            if reply.status_code == 204:
                self.stats.idle += 1
            else:
                self.stats.errors += 1
                logger.warning("{}: next task: {} {}", self.name, reply.status_code, _detail(reply))
            await _pause(stop, self.poll_interval)

    async def _claim_due(
        self, client: httpx.AsyncClient, stop: asyncio.Event, within: float
    ) -> httpx.Response | None:
        """A stand-in's next task: the soonest due of the listed tasks with a free place and
        at most ``within`` seconds left, held by id; the task's page (200), the listing's
        refusal (401 …), a 204 when none is due yet, or None when stopped."""
        listing = await self._request(client, stop, "GET", "/api/v1/worker/tasks")
        if listing is None or listing.status_code != 200:
            return listing
        now = datetime.now(timezone.utc)
        for task in listing.json()["tasks"]:  # soonest deadline first
            if task["myStatus"] is not None or task["numResults"] >= task["maxResults"]:
                continue
            expire_at = datetime.fromisoformat(task["expireAt"].replace("Z", "+00:00"))
            if (expire_at - now).total_seconds() > within:
                break
            path = f"/api/v1/worker/tasks/{quote(str(task['id']), safe='')}"
            held = await self._request(client, stop, "POST", f"{path}/hold")
            if held is None:
                return None
            if held.status_code == 200:
                return await self._request(client, stop, "GET", path)
            # Taken by someone else meanwhile (409), or closed (404, 410): look at the next.
        return httpx.Response(204)

    async def _session_lost(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        if self.invite is not None:
            return self._fail("the invite's session ended; an invite link works once, ask for a new one")
        logger.info("{}: session ended; logging in again", self.name)
        return await self._log_in(client, stop)

    async def _answer(
        self, client: httpx.AsyncClient, stop: asyncio.Event, task_id: str, task: dict[str, Any]
    ) -> None:
        cids = [str(c["cid"]) for c in task["completions"]]
        if not self.behaviour.takes_task(self.rng):
            await self._skip(client, stop, task_id, "not taking it")
            return
        truth = await self._truth(cids)
        if self.behaviour.needs_truth and truth is None:
            logger.debug("{}: no true order for task {}; ranking it at random", self.name, task_id)
        order = self.behaviour.order(cids, truth, self.rng)
        try:
            data = result_data(task["criteria"], order)
        except UnsupportedTask as exc:
            self.stats.errors += 1
            await self._skip(client, stop, task_id, str(exc))
            return
        if await self._think(stop):
            return  # stopping: the hold lapses on its own
        path = f"/api/v1/worker/tasks/{quote(task_id, safe='')}/result"
        reply = await self._request(
            client, stop, "POST", path, json={"resultData": data}, attempts=SUBMIT_ATTEMPTS
        )
        if reply is None:
            return
        if reply.status_code == 200:
            self.stats.submitted += 1
            logger.info(
                "{} ({}) submitted task {}: {}", self.name, self.behaviour, task_id, " > ".join(order)
            )
        elif reply.status_code in (404, 409, 410):
            self.stats.missed += 1
            logger.info(
                "{}: task {} no longer takes an answer ({}): {}",
                self.name,
                task_id,
                reply.status_code,
                _detail(reply),
            )
        elif reply.status_code == 401:
            # The answer is lost with the session; the next call for a task logs in again.
            self.stats.errors += 1
            logger.warning("{}: session ended before the answer to task {} was in", self.name, task_id)
        else:
            self.stats.errors += 1
            logger.warning(
                "{}: answer to task {} refused: {} {}", self.name, task_id, reply.status_code, _detail(reply)
            )
            if reply.status_code == 422:  # the same answer would be refused again: let the task go
                await self._skip(client, stop, task_id, "the platform refused the answer")

    async def _skip(self, client: httpx.AsyncClient, stop: asyncio.Event, task_id: str, why: str) -> None:
        path = f"/api/v1/worker/tasks/{quote(task_id, safe='')}/skip"
        reply = await self._request(client, stop, "POST", path, attempts=SUBMIT_ATTEMPTS)
        if reply is None:
            return
        if reply.status_code == 200:
            self.stats.skipped += 1
            logger.info("{} ({}) skipped task {} ({})", self.name, self.behaviour, task_id, why)
        elif reply.status_code not in (404, 409, 410):  # gone or answered already: nothing to release
            self.stats.errors += 1
            logger.warning(
                "{}: skip of task {} refused: {} {}", self.name, task_id, reply.status_code, _detail(reply)
            )
