"""Helpers for the platform tests: a live uvicorn server and real log-ins.

Everything here is real: the app under uvicorn on loopback, sr25519 signatures made with
the wallets' hotkeys, EIP-191 signatures made with eth-account, a LocalChain on disk.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI

from dojo.platform.storage.db import Database
from template.storage import own_schema

PG_BASE = "postgresql+psycopg://{user}@127.0.0.1:5432/test"
PG_USERS = ("postgres", "root")


def bound_socket() -> socket.socket:
    """A loopback socket bound to a free port, to build an app that must know its own URL
    (the platform signs it into every log-in message) before the server starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LiveServer:
    """The app under a real uvicorn server on loopback, in a thread: on ``sock`` when given
    (see :func:`bound_socket`), else on a free port."""

    def __init__(self, app: FastAPI, sock: socket.socket | None = None):
        self.app = app
        self.sock = sock
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        run_kwargs = {"sockets": [sock]} if sock is not None else {}
        self.thread = threading.Thread(
            target=self.server.run, kwargs=run_kwargs, name="platform-server", daemon=True
        )
        self.url = ""

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the platform server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        if self.sock is not None:
            self.sock.close()


def postgres_admin_url() -> str | None:
    """The first PostgreSQL role that can connect to ``test`` on 127.0.0.1:5432, else None."""
    for user in PG_USERS:
        try:
            with psycopg.connect(f"host=127.0.0.1 port=5432 dbname=test user={user}", connect_timeout=3):
                return PG_BASE.format(user=user)
        except psycopg.OperationalError:
            continue
    return None


def postgres_schema(admin_url: str) -> AbstractContextManager[str]:
    """A fresh schema for one test (:func:`template.storage.own_schema`): the URL of its
    connections while it lasts."""
    return own_schema(admin_url, f"t_{uuid.uuid4().hex[:12]}")


def iso_in(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def task_body(
    *,
    expire_in: float = 3600,
    completions: int = 3,
    criteria: list[dict[str, Any]] | None = None,
    max_results: int = 3,
    tasks: int = 1,
) -> dict[str, Any]:
    return {
        "title": "Rank the completions",
        "body": "Which program does what the prompt asks best?",
        "expireAt": iso_in(expire_in),
        "maxResults": max_results,
        "taskData": [
            {
                "prompt": f"Write a bouncing ball in HTML ({t})",
                "responses": [
                    {
                        "model": f"model-{i}",
                        "completion": {
                            "files": [
                                {"filename": "index.html", "content": f"<p>{i}</p>", "language": "html"}
                            ]
                        },
                        "cid": f"c{i}",
                    }
                    for i in range(completions)
                ],
                "task": "CODE_GENERATION",
                "criteria": criteria or [{"type": "ranking"}],
            }
            for t in range(tasks)
        ],
    }


def ranking(cids: list[str]) -> list[dict[str, Any]]:
    """A valid ranking: the given order, best first."""
    return [{"type": "ranking", "value": {cid: rank for rank, cid in enumerate(cids, start=1)}}]


@dataclass
class MinerClient:
    """A registered miner logged in over HTTP, with an API key and a subscription key."""

    hotkey: str
    token: str
    api_key: str
    subscription_key: str

    @property
    def session(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def key(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}


def sign_in_miner(client: httpx.Client, keypair: Any) -> str:
    challenge = client.post("/api/v1/miner/challenge", json={"hotkey": keypair.ss58_address})
    challenge.raise_for_status()
    body = challenge.json()
    signature = "0x" + keypair.sign(body["message"].encode()).hex()
    session = client.post(
        "/api/v1/miner/session",
        json={"hotkey": keypair.ss58_address, "nonce": body["nonce"], "signature": signature},
    )
    session.raise_for_status()
    return session.json()["token"]


def miner_with_keys(client: httpx.Client, keypair: Any) -> MinerClient:
    token = sign_in_miner(client, keypair)
    headers = {"authorization": f"Bearer {token}"}
    api_key = client.post("/api/v1/miner/api-keys", headers=headers).json()["key"]
    sub_key = client.post("/api/v1/miner/subscription-keys", headers=headers).json()["key"]
    return MinerClient(keypair.ss58_address, token, api_key, sub_key)


@dataclass
class WorkerClient:
    """A worker logged in with a wallet signature (bearer token)."""

    address: str
    token: str
    worker_id: str
    account: Any = field(repr=False)

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def sign_in_worker(client: httpx.Client, account: Any | None = None) -> WorkerClient:
    account = account or Account.create()
    challenge = client.post("/api/v1/worker/challenge", json={"address": account.address})
    challenge.raise_for_status()
    signature = account.sign_message(encode_defunct(text=challenge.json()["message"])).signature.hex()
    login = client.post(
        "/api/v1/worker/login",
        json={"address": account.address, "signature": signature, "nonce": challenge.json()["nonce"]},
    )
    login.raise_for_status()
    return WorkerClient(account.address, login.json()["token"], login.json()["workerId"], account)


def subscribed_worker(client: httpx.Client, miner: MinerClient, name: str = "team") -> WorkerClient:
    worker = sign_in_worker(client)
    response = client.post(
        "/api/v1/worker/subscriptions",
        json={"name": name, "key": miner.subscription_key},
        headers=worker.auth,
    )
    response.raise_for_status()
    return worker


def create_tasks(client: httpx.Client, miner: MinerClient, **kwargs: Any) -> list[str]:
    response = client.post("/api/v1/tasks/create-tasks", json=task_body(**kwargs), headers=miner.key)
    assert response.status_code == 200, response.text
    return response.json()["body"]


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def page_csrf(client: httpx.Client) -> str:
    """The CSRF token a page gives this client's cookies, as the web UI's script reads it
    (bound to the client's session: fetch it again after a log-in)."""
    page = client.get("/login", headers={"accept": "text/html"})
    match = CSRF_META.search(page.text)
    assert match is not None, page.text[:300]
    return match.group(1)


def sql(database_url: str, statement: str, **params: Any) -> list[Any]:
    """Run one statement on the platform database (to age a nonce, a hold, a task)."""
    from sqlalchemy import text

    database = Database(database_url, pool_size=1)
    try:
        with database.session() as db:
            result = db.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        database.dispose()


def workers_by_invite(database_url: str, miner_hotkey: str, count: int) -> list[WorkerClient]:
    """``count`` workers on the miner's team, made the way an invite link makes them (fast setup)."""
    from dojo.platform.services import auth
    from dojo.platform.settings import PlatformSettings
    from dojo.platform.storage.models import Subscription

    settings = PlatformSettings(database_url=database_url)
    database = Database(database_url, pool_size=1)
    made = []
    try:
        with database.session() as db:
            miner = auth.get_or_create_miner(db, miner_hotkey)
            for _ in range(count):
                worker = auth._new_worker(db)
                db.add(Subscription(worker_id=worker.id, miner_id=miner.id, key_id=None, name="invited"))
                opened = auth.open_worker_session_for(db, settings, worker)
                made.append(WorkerClient("", opened.token, worker.public_id, None))
    finally:
        database.dispose()
    return made
