"""The synthetic API client against scripted handlers (httpx.MockTransport); the real
service on loopback is exercised in tests/dojo/synthetic/test_service.py."""

from __future__ import annotations

import httpx
import pytest

import commons.synthetic_api as api
from commons.synthetic_api import (
    SyntheticAPIAuthError,
    SyntheticAPIClient,
    SyntheticAPIResponseError,
    SyntheticAPIUnavailable,
    SyntheticTask,
    task_source_for,
)


def _task_body(ranks=(1, 2, 3)) -> dict:
    responses = [
        {
            "model": "m",
            "cid": f"c{n}",
            "completion": {
                "files": [{"filename": "index.html", "content": f"<p>{n}</p>", "language": "html"}]
            },
        }
        for n in range(len(ranks))
    ]
    return {
        "prompt": "Draw things.",
        "responses": responses,
        "ground_truth": {f"c{n}": r for n, r in enumerate(ranks)},
    }


def _client(handler, **options) -> SyntheticAPIClient:
    options.setdefault("backoff", 0.0)
    return SyntheticAPIClient(
        "http://synthetic.test", "tok", transport=httpx.MockTransport(handler), **options
    )


def test_public_api_is_exactly_all():
    public = {
        name
        for name in vars(api)
        if not name.startswith("_") and getattr(vars(api)[name], "__module__", "") == api.__name__
    }
    assert public <= set(api.__all__)
    assert all(hasattr(api, name) for name in api.__all__)


async def test_next_task_sends_the_token_and_parses_the_envelope():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "body": _task_body(), "error": None})

    async with _client(handler) as client:
        task = await client.next_task()
    assert isinstance(task, SyntheticTask)
    assert task.ground_truth == {"c0": 1, "c1": 2, "c2": 3}
    assert seen[0].url.path == "/api/synthetic-gen"
    assert seen[0].headers["authorization"] == "Bearer tok"


async def test_retries_unavailable_and_honours_retry_after():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(
                503, headers={"Retry-After": "0"}, json={"success": False, "body": None, "error": "x"}
            )
        return httpx.Response(200, json={"success": True, "body": _task_body(), "error": None})

    async with _client(handler, max_retries=3) as client:
        await client.next_task()
    assert len(calls) == 3


async def test_gives_up_after_its_retries():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(502, text="bad gateway")

    async with _client(handler, max_retries=2) as client:
        with pytest.raises(SyntheticAPIUnavailable, match="3 attempts"):
            await client.next_task()
    assert len(calls) == 3


async def test_a_refused_token_is_not_retried():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            401, json={"success": False, "body": None, "error": "missing or wrong bearer token"}
        )

    async with _client(handler) as client:
        with pytest.raises(SyntheticAPIAuthError, match="token"):
            await client.next_task()
    assert len(calls) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"success": False, "body": None, "error": "generation failed"}),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"success": True, "body": _task_body(ranks=(1, 1, 2)), "error": None}),
        httpx.Response(404, text="no such route"),
    ],
    ids=["success-false", "not-json", "ranks-not-a-permutation", "404"],
)
async def test_answers_that_are_not_tasks_raise_response_errors(response):
    async with _client(lambda request: response) as client:
        with pytest.raises(SyntheticAPIResponseError):
            await client.next_task()


async def test_task_source_for(monkeypatch):
    built = []

    class Local:
        async def next_task(self) -> SyntheticTask:
            return SyntheticTask.model_validate(_task_body())

        async def aclose(self) -> None:
            return None

    def factory():
        built.append(1)
        return Local()

    monkeypatch.setenv("SYNTHETIC_API_URL", "http://127.0.0.1:5003")  # not read: settings are passed in
    source = task_source_for(factory)
    assert isinstance(source, Local) and built == [1]

    remote = task_source_for(factory, url="http://127.0.0.1:5003", token="secret")
    assert isinstance(remote, SyntheticAPIClient) and built == [1]
    assert remote.base_url == "http://127.0.0.1:5003"
    await remote.aclose()
