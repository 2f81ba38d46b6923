"""The llm backend against a real chat-completions server on loopback (aiohttp) with
scripted answers: success, malformed JSON, timeout, 429 with Retry-After, token limits,
and a whole task through the pipeline with a completion that fails its checks once."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from dojo.cli import synthetic as synthetic_cli
from dojo.synthetic.backend import BudgetExceeded, TaskBudget
from dojo.synthetic.checks import CompletionChecker
from dojo.synthetic.llm import (
    ChatClient,
    ChatError,
    InstructionAnswer,
    LLMBackend,
    LLMSettings,
    llm_settings,
)
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.settings import ServiceSettings, settings_from_args
from template.config import resolve_values

Action = Callable[[dict], Awaitable[web.StreamResponse]]


def completion(content: str, tokens: int = 50) -> web.Response:
    return web.json_response(
        {
            "id": "cmpl-1",
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": tokens // 2,
                "completion_tokens": tokens - tokens // 2,
                "total_tokens": tokens,
            },
        }
    )


def answer(payload: dict, tokens: int = 50) -> Action:
    async def act(body: dict) -> web.StreamResponse:
        return completion(json.dumps(payload), tokens)

    return act


def raw(text: str) -> Action:
    async def act(body: dict) -> web.StreamResponse:
        return completion(text)

    return act


def slow(seconds: float, then: Action) -> Action:
    async def act(body: dict) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await then(body)

    return act


def status(code: int, retry_after: str | None = None) -> Action:
    async def act(body: dict) -> web.StreamResponse:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return web.json_response({"error": {"message": "scripted"}}, status=code, headers=headers)

    return act


class ChatServer:
    """Answers POST /v1/chat/completions from a script (or a router when the script is empty)."""

    def __init__(self) -> None:
        self.script: list[Action] = []
        self.router: Action | None = None
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        action = self.script.pop(0) if self.script else self.router
        assert action is not None, "the scripted server ran out of answers"
        return await action(body)


@pytest.fixture
async def server():
    chat = ChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    chat.url = f"http://127.0.0.1:{port}/v1"
    yield chat
    await runner.cleanup()


def settings(server: ChatServer, **changes) -> LLMSettings:
    base = LLMSettings(
        base_url=server.url, api_key="test-key", models=["model-a", "model-b"], backoff=0.0, max_retries=2
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


MESSAGES = [{"role": "user", "content": "Write a task."}]
GOOD = {"instruction": "Draw twelve coral hexagons in a ring; clicking one turns it gold."}


async def test_success_is_parsed_and_tokens_are_counted(server):
    server.script = [answer(GOOD, tokens=70)]
    client = ChatClient(settings(server))
    budget = TaskBudget(seconds=30)
    try:
        result = await client.ask("model-a", MESSAGES, InstructionAnswer, budget)
    finally:
        await client.aclose()
    assert result.instruction == GOOD["instruction"]
    assert budget.tokens_used == 70
    sent = server.requests[0]
    assert sent["model"] == "model-a" and sent["messages"] == MESSAGES
    assert sent["response_format"]["type"] == "json_schema"
    assert server.headers[0]["Authorization"] == "Bearer test-key"


async def test_malformed_json_is_asked_for_again_with_the_error(server):
    server.script = [raw('{"instruction": "unterminated'), raw("```json\n" + json.dumps(GOOD) + "\n```")]
    client = ChatClient(settings(server))
    try:
        result = await client.ask("model-a", MESSAGES, InstructionAnswer, TaskBudget(seconds=30))
    finally:
        await client.aclose()
    assert result.instruction == GOOD["instruction"]
    assert len(server.requests) == 2
    retry = server.requests[1]["messages"]
    assert retry[-1]["role"] == "user" and "not valid" in retry[-1]["content"]


async def test_a_timeout_is_retried(server):
    # The first answer would come after 10 s; the retry's at once, well within its 1.5 s.
    server.script = [slow(10.0, answer(GOOD)), answer(GOOD)]
    client = ChatClient(settings(server, request_timeout=1.5))
    try:
        result = await client.ask("model-a", MESSAGES, InstructionAnswer, TaskBudget(seconds=30))
    finally:
        await client.aclose()
    assert result.instruction == GOOD["instruction"]
    assert len(server.requests) == 2  # the slow one given up, then asked again


async def test_timeouts_every_time_end_in_an_error(server):
    server.script = [slow(3.0, answer(GOOD)) for _ in range(2)]
    client = ChatClient(settings(server, request_timeout=0.2, max_retries=1))
    try:
        with pytest.raises(ChatError, match="no answer within"):
            await client.ask("model-a", MESSAGES, InstructionAnswer, TaskBudget(seconds=30))
    finally:
        await client.aclose()
    assert len(server.requests) == 2


async def test_429_waits_for_retry_after(server):
    server.script = [status(429, retry_after="1"), answer(GOOD)]
    client = ChatClient(settings(server, backoff=0.0))
    started = time.monotonic()
    try:
        await client.ask("model-a", MESSAGES, InstructionAnswer, TaskBudget(seconds=30))
    finally:
        await client.aclose()
    assert time.monotonic() - started >= 0.95
    assert len(server.requests) == 2


async def test_a_retry_after_past_the_time_limit_gives_up_at_once(server):
    server.script = [status(503, retry_after="120")]
    client = ChatClient(settings(server))
    try:
        with pytest.raises(BudgetExceeded, match="time limit"):
            await client.ask("model-a", MESSAGES, InstructionAnswer, TaskBudget(seconds=5))
    finally:
        await client.aclose()


async def test_token_limit_caps_max_tokens_and_stops_the_task(server):
    server.script = [answer(GOOD, tokens=150)]
    client = ChatClient(settings(server))
    budget = TaskBudget(seconds=30, tokens=100)
    try:
        await client.ask("model-a", MESSAGES, InstructionAnswer, budget)
        assert server.requests[0]["max_tokens"] == 100
        with pytest.raises(BudgetExceeded, match="tokens"):
            await client.ask("model-a", MESSAGES, InstructionAnswer, budget)
    finally:
        await client.aclose()
    assert len(server.requests) == 1


async def test_a_refused_key_is_not_retried(server):
    server.script = [status(401)]
    client = ChatClient(settings(server))
    try:
        with pytest.raises(ChatError, match="401"):
            await client.ask("model-a", MESSAGES, InstructionAnswer, TaskBudget(seconds=30))
    finally:
        await client.aclose()
    assert len(server.requests) == 1


PAGE = (
    '<!DOCTYPE html><html><head><title>t</title></head><body><canvas id="c"></canvas>'
    "<script>\n// draws {n} things\nconst canvas = document.getElementById('c');\n"
    "const ctx = canvas.getContext('2d');\nfunction paint(count) {{\n  for (let i = 0; i < count; i += 1) {{\n"
    "    ctx.fillRect(i * 10, 10, 8, 8);\n  }}\n}}\npaint({n});\n</script></body></html>"
)


async def test_a_whole_task_with_a_completion_regenerated_after_failing_its_checks(server):
    generated = []

    async def route(body: dict) -> web.StreamResponse:
        system = body["messages"][0]["content"]
        if "write tasks" in system:
            return completion(json.dumps({"instruction": "Draw twelve squares in a row on a black canvas."}))
        if "degraded variants" in system:
            variants = [
                "Draw ten squares in a row.",
                "Draw ten circles in a row.",
                "Draw ten circles in a column.",
            ]
            return completion(json.dumps({"variants": variants}))
        generated.append(body)
        if len(generated) == 1:  # the first completion has a syntax error
            files = [
                {
                    "filename": "index.html",
                    "content": "<html><body><script>function (</script></body></html>",
                    "language": "HTML",
                }
            ]
        else:
            files = [{"filename": "index.html", "content": PAGE.format(n=len(generated)), "language": "html"}]
        return completion(json.dumps({"files": files}), tokens=300)

    server.router = route
    backend = LLMBackend(settings(server))
    pipeline = SyntheticPipeline(
        backend, seed=3, options=PipelineOptions(n_completions=4, task_tokens=100_000)
    )
    checker = CompletionChecker()
    try:
        task = await pipeline.generate_task()
        assert task.prompt == "Draw twelve squares in a row on a black canvas."
        assert sorted(task.ground_truth.values()) == [1, 2, 3, 4]
        assert len(generated) == 5
        feedback = [b for b in generated if "failed these checks" in b["messages"][-1]["content"]]
        assert len(feedback) == 1 and "JavaScript syntax error" in feedback[0]["messages"][-1]["content"]
        for response in task.responses:
            assert response.model in ("model-a", "model-b")
            assert checker.problems(response.completion.files) == []
            assert "draws" not in response.completion.files[0].content  # comments obfuscated away
    finally:
        checker.close()
        await pipeline.aclose()


def _llm(flags: dict, environ: dict) -> LLMSettings:
    return llm_settings(resolve_values(ServiceSettings, {"no_token": True, **flags}, environ))


def test_settings_from_the_services_resolved_settings():
    s = _llm(
        {},
        {"OPENROUTER_API_KEY": "k", "SYNTHETIC_LLM_MODELS": "a/b, c/d", "SYNTHETIC_LLM_IMAGE_MODEL": "img"},
    )
    assert s.base_url.startswith("https://openrouter.ai") and s.api_key == "k" and s.models == ["a/b", "c/d"]
    assert s.image_model == "img" and s.vision_model is None
    assert (
        _llm({"llm_provider": "together"}, {"TOGETHER_API_KEY": "t", "OPENROUTER_API_KEY": "k"}).api_key
        == "t"
    )
    assert _llm({}, {"SYNTHETIC_LLM_API_KEY": "any", "OPENROUTER_API_KEY": "k"}).api_key == "any"
    local = _llm({"llm_provider": "ollama", "llm_models": ["llama3"]}, {})
    assert local.base_url == "http://127.0.0.1:11434/v1" and local.api_key is None
    custom = _llm({}, {"SYNTHETIC_LLM_BASE_URL": "http://10.0.0.5:8000/v1"})
    assert custom.base_url == "http://10.0.0.5:8000/v1"
    with pytest.raises(ValueError, match="OPENROUTER_API_KEY"):
        _llm({}, {})
    with pytest.raises(ValueError, match="unknown LLM provider"):
        _llm({"llm_provider": "nope"}, {})


def test_the_key_in_dotenv_reaches_the_llm_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text('OPENROUTER_API_KEY="from-dotenv"\n')
    parser = argparse.ArgumentParser(prog="dojo")
    synthetic_cli.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(
        ["synthetic", "serve", "--backend", "llm", "--no-token", "--env-file", str(env_file)]
    )
    assert llm_settings(settings_from_args(args)).api_key == "from-dotenv"
