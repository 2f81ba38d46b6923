"""Simulated annotators on a Label Studio server, through its real HTTP API as its web UI uses it.

A :class:`LabelStudioAnnotator` signs up on the sign-up page (the CSRF cookie, then the
form: a session), takes its own API token from ``/api/current-user/token``, and loops over
the miner's projects (those whose title starts with ``project_prefix``): ask the project for
its next task (``GET /api/projects/{id}/next``, Label Studio's label stream), rank the
responses by its behaviour, think, and submit the annotation
(``POST /api/tasks/{id}/annotations/``) with the ranker's result and its lead time; a skip
is an annotation with ``was_cancelled``. The item ids are the validator's completion ids,
so an honest annotator learns the true order from the same :class:`Oracle` as the Dojo
platform's simulated workers.

The lower-level calls (:meth:`submit`, :meth:`skip`) are public so that tests can make
the answers Label Studio does not stop: a second answer to the same task, a partial
ranking, an annotation beyond the task's overlap.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx
from loguru import logger

from dojo.workers._behaviours import Behaviour, parse_mix
from dojo.workers._oracle import Oracle
from dojo.workers._team import TeamStats, run_members
from dojo.workers._worker import MAX_REPLY_BYTES, SimulatedPerson, _pause
from template.http_body import capped

RANKER, LIST = "rank", "answers"


def ranker_result(order: Sequence[str]) -> list[dict[str, Any]]:
    """An annotation's ``result`` holding one ranking, best first, as Label Studio's ``Ranker`` writes it."""
    return [
        {
            "id": secrets.token_hex(5),
            "from_name": RANKER,
            "to_name": LIST,
            "type": "ranker",
            "origin": "manual",
            "value": {"ranker": {RANKER: list(order)}},
        }
    ]


class LabelStudioAnnotator(SimulatedPerson):
    """One simulated annotator; ``email`` and ``password`` are made up when not given."""

    def __init__(
        self,
        url: str,
        behaviour: Behaviour,
        oracle: Oracle | None = None,
        *,
        name: str = "annotator",
        project_prefix: str = "Dojo",
        think_time: tuple[float, float] = (0.2, 1.0),
        poll_interval: float = 1.0,
        rng: random.Random | None = None,
        timeout: float = 30.0,
        email: str | None = None,
        password: str | None = None,
    ):
        super().__init__(behaviour, oracle, name, think_time, poll_interval, rng, timeout)
        self.url = url.rstrip("/")
        self.project_prefix = project_prefix
        self.email = email or f"{name}-{secrets.token_hex(4)}@annotators.localhost"
        self.password = password or secrets.token_urlsafe(12)
        self.token: str | None = None
        self.user_id: int | None = None
        self._exhausted: dict[int, float] = {}

    def client(self) -> httpx.AsyncClient:
        # A reply over MAX_REPLY_BYTES raises ResponseTooLarge, an httpx.HTTPError: counted as an error.
        return httpx.AsyncClient(
            base_url=self.url,
            timeout=self.timeout,
            follow_redirects=False,
            transport=capped(MAX_REPLY_BYTES, name="Label Studio"),
        )

    def _auth(self) -> dict[str, str]:
        assert self.token is not None, "join first"
        return {"authorization": f"Token {self.token}"}

    # -- joining ---------------------------------------------------------------------------

    async def join(self, client: httpx.AsyncClient) -> None:
        """Sign up on the sign-up page as a person would (or log in, when an earlier attempt
        signed up and its answer was lost), then take this user's API token."""
        if not await self._take_token(client):
            page = await client.get("/user/signup/")
            if page.status_code != 302:  # 302: the session of an earlier attempt is logged in
                page.raise_for_status()
                signed = await self._send_form(client, "/user/signup/")
                if signed.status_code != 302:  # the e-mail is taken: an earlier attempt made the user
                    await client.get("/user/login/")
                    logged = await self._send_form(client, "/user/login/")
                    if logged.status_code != 302:
                        raise RuntimeError(
                            f"Label Studio refused the sign-up and the log-in ({signed.status_code}, "
                            f"{logged.status_code}): signups may be closed"
                        )
            if not await self._take_token(client):
                raise RuntimeError("Label Studio gave no API token to the new user")
        me = await client.get("/api/current-user/whoami", headers=self._auth())
        me.raise_for_status()
        self.user_id = int(me.json()["id"])
        client.cookies.clear()  # from here on the token speaks, as for any API client
        self.stats.worker_id = str(self.user_id)
        logger.info("{}: joined Label Studio as user {} ({})", self.name, self.user_id, self.behaviour)

    async def _send_form(self, client: httpx.AsyncClient, path: str) -> httpx.Response:
        csrf = client.cookies.get("csrftoken")
        if not csrf:
            raise RuntimeError(f"Label Studio's page {path} set no CSRF cookie")
        return await client.post(
            path,
            data={"csrfmiddlewaretoken": csrf, "email": self.email, "password": self.password},
            headers={"referer": f"{self.url}{path}"},
        )

    async def _take_token(self, client: httpx.AsyncClient) -> bool:
        """This user's API token, when the client's session is logged in."""
        if client.cookies.get("sessionid") is None:
            return False
        token = await client.get("/api/current-user/token")
        if token.status_code != 200:
            return False
        self.token = token.json()["token"]
        return True

    # -- the API calls ---------------------------------------------------------------------

    async def projects(self, client: httpx.AsyncClient) -> list[int]:
        reply = await client.get("/api/projects", params={"page_size": 100}, headers=self._auth())
        reply.raise_for_status()
        body = reply.json()
        items = body.get("results", []) if isinstance(body, dict) else body
        return sorted(int(p["id"]) for p in items if str(p.get("title", "")).startswith(self.project_prefix))

    async def next_task(self, client: httpx.AsyncClient, project: int) -> dict[str, Any] | None:
        """The project's next task for this annotator (Label Studio's label stream), or None."""
        reply = await client.get(f"/api/projects/{project}/next", headers=self._auth())
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        task: dict[str, Any] = reply.json()
        return task

    async def submit(
        self, client: httpx.AsyncClient, task: dict[str, Any], order: Sequence[str], lead_time: float
    ) -> httpx.Response:
        """Submit a ranking (best first) of the task's items as this annotator's annotation."""
        return await client.post(
            f"/api/tasks/{task['id']}/annotations/",
            params={"project": task.get("project")},
            json={
                "result": ranker_result(order),
                "lead_time": round(lead_time, 3),
                "was_cancelled": False,
                "project": task.get("project"),
            },
            headers=self._auth(),
        )

    async def skip(self, client: httpx.AsyncClient, task: dict[str, Any]) -> httpx.Response:
        """Skip the task, as the Skip button does: a cancelled annotation with no result."""
        return await client.post(
            f"/api/tasks/{task['id']}/annotations/",
            params={"project": task.get("project")},
            json={"result": [], "was_cancelled": True, "lead_time": 0.5, "project": task.get("project")},
            headers=self._auth(),
        )

    # -- working ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Join, then work every project of the miner until ``stop`` is set."""
        async with self.client() as client:
            while self.token is None and not stop.is_set():
                try:
                    await self.join(client)
                except (httpx.HTTPError, RuntimeError) as exc:
                    self.stats.errors += 1
                    logger.warning("{}: cannot join Label Studio yet ({}); again soon", self.name, exc)
                    if await _pause(stop, 2.0):
                        return
            while not stop.is_set():
                try:
                    worked = await self._round(client, stop)
                except httpx.HTTPError as exc:
                    self.stats.errors += 1
                    logger.warning(
                        "{}: Label Studio call failed ({}: {})", self.name, type(exc).__name__, exc
                    )
                    worked = False
                if not worked and await _pause(stop, self.poll_interval):
                    return

    async def _round(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """One task from the first project that has one for this annotator; False if none had."""
        for project in await self.projects(client):
            if self._exhausted.get(project, 0.0) > time.monotonic():
                continue
            task = await self.next_task(client, project)
            if task is None:
                # Nothing left here for now: ask this project again a little later.
                self._exhausted[project] = time.monotonic() + 2 * self.poll_interval
                continue
            await self._answer(client, stop, task)
            return True
        return False

    async def _answer(self, client: httpx.AsyncClient, stop: asyncio.Event, task: dict[str, Any]) -> None:
        started = time.monotonic()
        cids = [str(item["id"]) for item in task["data"]["items"]]
        if not self.behaviour.takes_task(self.rng):
            reply = await self.skip(client, task)
            self.stats.skipped += reply.status_code == 201
            return
        order = self.behaviour.order(cids, await self._truth(cids), self.rng)
        if await self._think(stop):
            return
        reply = await self.submit(client, task, order, time.monotonic() - started)
        if reply.status_code == 201:
            self.stats.submitted += 1
            logger.info(
                "{} ({}) ranked task {}: {}", self.name, self.behaviour, task["id"], " > ".join(order)
            )
        else:
            self.stats.errors += 1
            logger.warning(
                "{}: annotation of task {} refused: {} {}",
                self.name,
                task["id"],
                reply.status_code,
                reply.text[:200],
            )


class LabelStudioTeam:
    """Annotators with the given behaviours (or a mix spec) on one Label Studio server."""

    def __init__(
        self,
        url: str,
        behaviours: Sequence[Behaviour] | str,
        oracle: Oracle | None = None,
        *,
        project_prefix: str = "Dojo",
        think_time: tuple[float, float] = (0.2, 1.0),
        poll_interval: float = 1.0,
        seed: int | None = None,
    ):
        workers = parse_mix(behaviours) if isinstance(behaviours, str) else list(behaviours)
        if not workers:
            raise ValueError("a team needs at least one annotator")
        self.annotators = [
            LabelStudioAnnotator(
                url,
                behaviour,
                oracle,
                name=f"annotator-{i}",
                project_prefix=project_prefix,
                think_time=think_time,
                poll_interval=poll_interval,
                rng=random.Random(f"{seed}/{i}") if seed is not None else None,
            )
            for i, behaviour in enumerate(workers)
        ]

    async def run(self, stop: asyncio.Event) -> None:
        await run_members(self.annotators, stop)

    def stats(self) -> TeamStats:
        return TeamStats([replace(a.stats) for a in self.annotators])
