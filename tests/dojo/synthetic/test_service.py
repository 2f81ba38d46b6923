"""The synthetic API under uvicorn on loopback, through raw HTTP and the commons client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from commons.synthetic_api import SyntheticAPIAuthError, SyntheticAPIClient
from dojo.synthetic.service import create_app
from dojo.synthetic.settings import ServiceSettings
from dojo.synthetic.store import SyntheticStore
from tests.dojo.synthetic._instructions import instruction_counts


@contextlib.asynccontextmanager
async def running(settings: ServiceSettings) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def wait_for_queue(url: str, size: int, timeout: float = 30.0) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        deadline = asyncio.get_running_loop().time() + timeout
        while (await http.get("/health")).json()["queue_size"] != size:
            assert asyncio.get_running_loop().time() < deadline, "the queue did not reach its target"
            await asyncio.sleep(0.05)


async def test_serves_tasks_in_the_documented_format_and_refills(tmp_path):
    settings = ServiceSettings(db=str(tmp_path / "s.sqlite"), queue_size=2, seed="service", no_token=True)
    async with running(settings) as url:
        await wait_for_queue(url, 2)
        async with httpx.AsyncClient(base_url=url) as http:
            health = (await http.get("/health")).json()
            assert health == {
                "status": "ok",
                "backend": "procedural",
                "mix": "code:1",
                "queue_size": 2,
                "queue_target": 2,
                "queue": {"code": {"size": 2, "target": 2}},
                "tasks": {"code": {"generated": 2, "discarded": 0, "failed": 0}},
            }
            reply = (await http.get("/api/synthetic-gen")).json()
        assert (
            set(reply) == {"success", "body", "error"} and reply["success"] is True and reply["error"] is None
        )
        body = reply["body"]
        assert set(body) == {"prompt", "kind", "responses", "ground_truth"} and body["kind"] == "code"
        for response in body["responses"]:
            assert set(response) == {"model", "completion", "cid"}
            for file in response["completion"]["files"]:
                assert set(file) == {"filename", "content", "language"}
        assert sorted(body["ground_truth"].values()) == [1, 2, 3, 4]
        await wait_for_queue(url, 2)  # refilled after the hand-out
        async with SyntheticAPIClient(url) as client:
            task = await client.next_task()
        assert task.prompt != body["prompt"]


async def test_a_token_guards_the_tasks(tmp_path):
    settings = ServiceSettings(db=str(tmp_path / "s.sqlite"), queue_size=1, token="s3cret")
    async with running(settings) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/api/synthetic-gen")).status_code == 401
            bad = await http.get("/api/synthetic-gen", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401 and bad.json()["success"] is False
            assert (await http.get("/health")).status_code == 200
        async with SyntheticAPIClient(url, "wrong") as client:
            with pytest.raises(SyntheticAPIAuthError):
                await client.next_task()
        async with SyntheticAPIClient(url, "s3cret") as client:
            assert len((await client.next_task()).responses) == 4


async def test_the_queue_survives_a_restart_and_an_empty_queue_still_answers(tmp_path):
    db = str(tmp_path / "s.sqlite")
    async with running(ServiceSettings(db=db, queue_size=2, seed="persist", no_token=True)) as url:
        await wait_for_queue(url, 2)
    store = SyntheticStore(db)
    assert store.queue_size() == 2
    store.close()
    async with (
        running(ServiceSettings(db=db, queue_size=0, no_token=True)) as url,
        SyntheticAPIClient(url) as client,
    ):
        await client.next_task()
        await client.next_task()
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/health")).json()["queue_size"] == 0
        fresh = await client.next_task()  # generated for this request
        assert len(fresh.responses) == 4
    store = SyntheticStore(db)
    assert instruction_counts(store)["accepted"] == 3
    store.close()


def test_the_app_needs_a_token_unless_told_explicitly_to_go_without(tmp_path):
    with pytest.raises(ValueError, match="give it a bearer token"):
        create_app(ServiceSettings(db=str(tmp_path / "s.sqlite")))


async def test_only_loopback_and_configured_host_names_are_answered(tmp_path):
    settings = ServiceSettings(
        db=str(tmp_path / "s.sqlite"), queue_size=0, token="s3cret", allowed_hosts=["synthetic.example"]
    )
    bearer = {"Authorization": "Bearer s3cret"}
    async with running(settings) as url, httpx.AsyncClient(base_url=url) as http:
        # A page of a domain rebound to 127.0.0.1 sends its own name as Host.
        rebound = await http.get("/api/synthetic-gen", headers={**bearer, "Host": "attacker.example:5003"})
        assert rebound.status_code == 400
        assert (await http.get("/health", headers={"Host": "attacker.example"})).status_code == 400
        for host in ("127.0.0.1", "localhost:5003", "synthetic.example"):
            assert (await http.get("/health", headers={"Host": host})).status_code == 200, host
        assert (await http.get("/api/synthetic-gen", headers=bearer)).status_code == 200


async def test_a_request_head_over_the_cap_is_refused(tmp_path):
    from dojo.synthetic.service import MAX_HEAD_BYTES, server_options

    settings = ServiceSettings(db=str(tmp_path / "s.sqlite"), queue_size=0, token="s3cret", port=0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **server_options(settings)))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/health")).status_code == 200
            padded = {f"x-pad-{i}": "a" * 1000 for i in range(MAX_HEAD_BYTES // 1000 + 1)}
            assert (await http.get("/health", headers=padded)).status_code == 431
            huge = {f"x-pad-{i}": "a" * 1000 for i in range(200)}  # past what the parser buffers
            assert (await http.get("/health", headers=huge)).status_code in (400, 431)
            assert (await http.get("/health")).status_code == 200  # and it keeps serving
    finally:
        server.should_exit = True
        await task
