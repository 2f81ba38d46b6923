"""The platform's edge under hostile or odd input: every refusal a precise 4xx, never a 500.

Over real HTTP to the live platform: times at the calendar's edges, JSON nested past any
sane depth, numbers JSON cannot carry (NaN, Infinity, 1e400), names the file system
refuses; an internal error that must not cost the client its keep-alive connection; proxy
headers trusted only when the operator says so; and one error shape, ``{"detail": str}``,
on every path, as documented and as the OpenAPI schema says.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from commons.platform_contract import CSRF_COOKIE
from dojo.cli import build_parser
from dojo.cli.platform import uvicorn_options
from dojo.platform.http.app import create_app
from dojo.platform.security import MAX_JSON_DEPTH
from tests.dojo.platform._support import (
    create_tasks,
    page_csrf,
    sign_in_worker,
    sql,
    subscribed_worker,
    task_body,
)
from tests.dojo.platform.conftest import _settings

CREATE = "/api/v1/tasks/create-tasks"
NEXT = "/api/v1/worker/tasks/next"
HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
DEEP = "[" * 100_000 + "]" * 100_000


def _form(body: dict[str, Any], task_data: str | None = None) -> dict[str, Any]:
    """The original miner's multipart form for ``body``."""
    return {
        "title": (None, body["title"]),
        "expireAt": (None, body["expireAt"]),
        "taskData": (None, task_data if task_data is not None else json.dumps(body["taskData"])),
    }


def _json(client: httpx.Client, path: str, content: str | bytes, headers: dict[str, str]) -> httpx.Response:
    data = content.encode() if isinstance(content, str) else content
    return client.post(path, content=data, headers={**headers, "content-type": "application/json"})


def _detail(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert list(body) == ["detail"] and isinstance(body["detail"], str), body
    return body["detail"]


# --- 1. times at the calendar's edges ----------------------------------------------------------


@pytest.mark.parametrize("edge", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_expire_at_beyond_the_calendar_in_utc_is_a_422(client, miner, edge):
    body = {**task_body(), "expireAt": edge}
    as_json = _detail(client.post(CREATE, json=body, headers=miner.key), 422)
    assert "expireAt" in as_json and "UTC" in as_json
    as_form = _detail(client.post(CREATE, files=_form(body), headers=miner.key), 422)
    assert as_form == as_json
    assert client.get("/api/v1/miner/dashboard", headers=miner.session).json()["totalTasks"] == 0


# --- 2. nesting -------------------------------------------------------------------------------


def test_json_nested_too_deeply_is_refused_on_every_path(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    result = f"/api/v1/worker/tasks/{task_id}/result"
    nested = '{"resultData": [{"type": "ranking", "value": ' + DEEP + "}]}"
    answers = {
        "create-tasks JSON": _json(client, CREATE, DEEP, miner.key),
        "create-tasks form": client.post(CREATE, files=_form(task_body(), DEEP), headers=miner.key),
        "result, hot path": _json(client, result, nested, worker.auth),
        "result, route": _json(client, result, nested, {"authorization": "Bearer dws_unknown"}),
        "challenge": _json(client, "/api/v1/worker/challenge", DEEP, {}),
        "subscriptions": _json(client, "/api/v1/worker/subscriptions", DEEP, worker.auth),
    }
    for where, response in answers.items():
        assert "nests too deeply" in _detail(response, 400), where

    # Just at the limit is fine (a completion that is itself JSON may nest): the body, its
    # taskData, one entry, its responses, one response and its completion object are 6 levels.
    body = task_body()
    inner: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 6):
        inner = [inner]
    body["taskData"][0]["responses"][0]["completion"] = {"tree": inner}
    assert client.post(CREATE, json=body, headers=miner.key).status_code == 200
    body["taskData"][0]["responses"][0]["completion"] = {"tree": [inner, inner]}  # one level more
    assert "nests too deeply" in _detail(client.post(CREATE, json=body, headers=miner.key), 400)


# --- 3. numbers JSON cannot carry -------------------------------------------------------------


def _create_body(completion: str = '"x"', criteria: list[dict[str, Any]] | None = None) -> str:
    """A create-tasks body as JSON text, the first completion spliced in as given."""
    body = task_body(criteria=criteria)
    body["taskData"][0]["responses"][0]["completion"] = "COMPLETION"
    return json.dumps(body).replace('"COMPLETION"', completion)


def test_non_finite_numbers_are_refused_and_the_queue_keeps_working(client, miner):
    worker = subscribed_worker(client, miner)
    for bad, named in [
        (_create_body('{"score": NaN}'), "NaN"),
        (_create_body("[Infinity]"), "Infinity"),
        (_create_body(criteria=[{"type": "ranking", "weight": float("-inf")}]), "-Infinity"),
        (_create_body('{"big": 1e400}'), "1e400"),
        (_create_body('{"big": ' + "9" * 400 + "}"), "999"),
    ]:
        detail = _detail(_json(client, CREATE, bad, miner.key), 400)
        assert named in detail and "finite" in detail, detail
    # Nothing was stored, so nothing poisons the queue: a good task is handed out.
    (task_id,) = create_tasks(client, miner)
    claimed = client.post(NEXT, headers=worker.auth)
    assert claimed.status_code == 200 and claimed.json()["id"] == task_id

    scored = {
        "resultData": [{"type": "ranking", "value": {"c0": 1, "c1": 2, "c2": 3}}],
        "leadTime": float("nan"),
    }
    as_sent = json.dumps(scored)  # Python writes NaN as the bare word
    detail = _detail(_json(client, f"/api/v1/worker/tasks/{task_id}/result", as_sent, worker.auth), 400)
    assert "NaN" in detail
    assert client.post(NEXT, headers=worker.auth).json()["id"] == task_id  # still held, still served


# --- 4. odd paths and internal errors -----------------------------------------------------------


def test_static_names_the_file_system_refuses_are_404(client):
    for name in ["x%00.css", "a" * 300 + ".css", "..%5C..%5Cetc", "%2e%2e"]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 404, (name, response.status_code)
    assert client.get("/static/dojo.js").status_code == 200


def _local_port(response: httpx.Response) -> int:
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


@pytest.fixture
def faulty_platform(platform, chain) -> Iterator[str]:
    """The platform with one extra route, added by this test only, that fails as a bug would."""
    app = create_app(_settings(platform.database_url), chain=chain)

    def broken() -> None:
        raise RuntimeError("a bug in a handler")

    app.add_api_route("/test-only/broken", broken)
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical")).start()
    yield server.url
    server.stop()


def test_an_internal_error_is_a_500_that_keeps_the_connection(faulty_platform):
    with httpx.Client(base_url=faulty_platform, timeout=30) as http:
        first = http.get("/health")
        failed = http.get("/test-only/broken")
        assert failed.status_code == 500 and failed.headers.get("connection") != "close"
        assert "internal error" in _detail(failed, 500)
        assert failed.headers["x-content-type-options"] == "nosniff"
        after = http.get("/health")
        assert after.json() == {"status": "ok"}
        assert _local_port(first) == _local_port(failed) == _local_port(after)


def test_a_failure_in_the_hot_path_is_a_500_that_keeps_the_connection(platform, client, miner):
    """A task stored before the platform refused NaN (SQLite kept it as the bare word)."""
    if not platform.settings.is_sqlite:
        pytest.skip("PostgreSQL's json type never held NaN: no such row can exist there")
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    legacy = '[{"type": "ranking", "weight": NaN}]'
    sql(platform.database_url, "UPDATE tasks SET criteria = :c WHERE id = :t", c=legacy, t=task_id)
    failed = client.post(NEXT, headers=worker.auth)
    assert failed.status_code == 500 and "internal error" in _detail(failed, 500)
    after = client.get("/health")
    assert after.json() == {"status": "ok"} and _local_port(failed) == _local_port(after)


# --- 5. proxy headers -------------------------------------------------------------------------


class _Server:
    """uvicorn with a given config, in a thread, on loopback."""

    def __init__(self, config: uvicorn.Config):
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def start(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def _served(platform, chain, argv: list[str]) -> _Server:
    """The platform as ``dojo platform serve ARGV`` configures uvicorn, log-ins limited to 3."""
    args = build_parser().parse_args(["platform", "serve", "--port", "0", *argv])
    settings = _settings(
        platform.database_url, login_rate_limit=3, port=0, forwarded_allow_ips=args.forwarded_allow_ips
    )
    config = uvicorn.Config(create_app(settings, chain=chain), **uvicorn_options(settings, "critical"))
    return _Server(config).start()


def _challenges(url: str, count: int) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as http:
        return [
            http.post(
                "/api/v1/miner/challenge",
                json={"hotkey": HOTKEY},
                headers={"x-forwarded-for": f"203.0.113.{n}"},
            ).status_code
            for n in range(count)
        ]


def test_forwarded_for_is_trusted_only_from_the_proxies_the_operator_names(platform, chain):
    default = _served(platform, chain, [])
    try:  # a new X-Forwarded-For each time does not make a new client
        assert _challenges(default.url, 4) == [200, 200, 200, 429]
    finally:
        default.stop()
    behind_proxy = _served(platform, chain, ["--forwarded-allow-ips", "127.0.0.1"])
    try:  # behind a proxy the operator named, the forwarded address is the client's
        assert _challenges(behind_proxy.url, 4) == [200, 200, 200, 200]
    finally:
        behind_proxy.stop()


# --- 6. one error shape, and the codes the docs give ---------------------------------------------


def test_malformed_json_is_a_400_on_every_path(client, miner):
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner)
    paths = {
        "create-tasks": (CREATE, miner.key),
        "result, hot path": (f"/api/v1/worker/tasks/{task_id}/result", worker.auth),
        "challenge": ("/api/v1/worker/challenge", {}),
        "session": ("/api/v1/miner/session", {}),
    }
    for where, (path, headers) in paths.items():
        for broken in ["{not json", '{"a": 1} trailing', b'{"a": "\xff"}']:
            detail = _detail(_json(client, path, broken, headers), 400)
            assert "JSON" in detail, (where, detail)
    form = _detail(client.post(CREATE, files=_form(task_body(), "{not json"), headers=miner.key), 400)
    assert "taskData" in form and "JSON" in form


def test_every_error_is_a_detail_string(client, miner):
    worker = subscribed_worker(client, miner)
    responses = [
        client.get("/api/v1/no-such-route"),
        client.delete("/health"),
        client.post("/api/v1/worker/challenge", json={"address": 5}),  # FastAPI's own validation
        client.get("/api/v1/worker/history?limit=0", headers=worker.auth),
        client.post(CREATE, files={**_form(task_body()), "title": ("t.txt", b"x")}, headers=miner.key),
        client.post(
            CREATE,
            content=b"--x\r\nbroken",
            headers={**miner.key, "content-type": "multipart/form-data; boundary=x"},
        ),
        client.post(CREATE, content=b"[]", headers={**miner.key, "content-type": "application/json"}),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
        _detail(response, response.status_code)


def test_an_unknown_session_cookie_is_401_and_a_missing_csrf_header_403(platform, client, miner):
    (task_id,) = create_tasks(client, miner)
    with httpx.Client(base_url=platform.url, timeout=30) as browser:
        browser.get("/health")  # the CSRF cookie
        csrf = {"x-csrf-token": browser.cookies[CSRF_COOKIE]}
        browser.cookies.set("dojo_worker_session", "dws_expired")
        browser.cookies.set("dojo_miner_session", "dms_expired")
        for method, path in [
            ("POST", NEXT),
            ("POST", "/api/v1/miner/api-keys"),
            ("GET", "/api/v1/worker/me"),
        ]:
            assert browser.request(method, path).status_code == 401, path
            assert browser.request(method, path, headers=csrf).status_code == 401, path
        browser.cookies.delete("dojo_worker_session")
        worker = sign_in_worker(browser)  # a live cookie session now
        browser.post(
            "/api/v1/worker/subscriptions",
            json={"name": "team", "key": miner.subscription_key},
            headers={**csrf, **worker.auth},
        ).raise_for_status()
        assert "CSRF" in _detail(browser.post(NEXT), 403)
        assert browser.post(NEXT, headers={"x-csrf-token": page_csrf(browser)}).json()["id"] == task_id


ERROR_CODES = {"400", "401", "403", "404", "409", "410", "413", "422", "429"}


def test_the_schema_lists_each_operations_errors_in_the_shape_they_have(client):
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorOut"]
    assert error["properties"]["detail"]["type"] == "string" and error["required"] == ["detail"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            errors = {code for code in responses if code in ERROR_CODES}
            for code in errors:
                content = responses[code]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
            if operation.get("security"):
                assert {"401"} <= errors, (method, path)
            if "{" in path:
                assert "404" in errors, (method, path)
            if operation.get("requestBody"):
                assert {"400", "413", "422"} <= errors, (method, path)
    create = schema["paths"][CREATE]["post"]["responses"]
    assert {"400", "401", "409", "413", "422"} <= set(create)
    assert "429" in schema["paths"]["/api/v1/worker/login"]["post"]["responses"]
    result = schema["paths"]["/api/v1/worker/tasks/{task_id}/result"]["post"]["responses"]
    assert {"403", "404", "409", "410", "422"} <= set(result)
