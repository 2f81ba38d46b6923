"""The llm backend's text, dialogue and image tasks and the semantic duplicate filter, against a
real HTTP server on loopback that speaks the OpenAI API (chat completions with image parts,
images generations, embeddings). Its "models" are small deterministic programs: a writer that
follows the facts and steps it is asked for (or, scripted, gets one wrong), a painter that
draws the scene its prompt describes, a viewer that reads a picture's shapes back, and a
bag-of-words embedder."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Callable

import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from commons.protocol import DialogueContent, ImageContent, TextContent
from dojo.synthetic.backend import TaskDiscarded
from dojo.synthetic.imagegen import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    Group,
    Scene,
    png_bytes,
    read_scene,
    render,
)
from dojo.synthetic.kinds import response_text
from dojo.synthetic.llm import LLMBackend, LLMSettings
from dojo.synthetic.llm_kinds import EmbeddingFilter, LLMImageBackend, LLMTextBackend
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.store import SyntheticStore
from tests.dojo.synthetic._instructions import instruction_counts

TEXT_SCENARIO = {
    "instruction": (
        "Write a short email to the design team about the workshop. It moved from Tuesday to Thursday. "
        "It starts at 2 pm (the old invite said 10 am). Meet in Room 4B, because the library is closed. "
        "Cover, in this order: the welcome talk, the safety briefing, the lunch break and the group photo."
    ),
    "facts": [
        {"name": "day", "value": "Thursday", "decoy": "Tuesday"},
        {"name": "time", "value": "2 pm", "decoy": "10 am"},
        {"name": "room", "value": "Room 4B", "decoy": "the library"},
    ],
    "steps": ["the welcome talk", "the safety briefing", "the lunch break", "the group photo"],
}
DIALOGUE_SCENARIO = {
    "turns": [
        {
            "role": "user",
            "content": "Help me write a note to my sister about our trip. We fly on BA 2274 at 8:05 am.",
        },
        {"role": "assistant", "content": "Sure. Where do you stay? Casa Azul?"},
        {
            "role": "user",
            "content": "Hotel Adler. Oh, correction: flight LX 318, not BA 2274, still 8:05 am "
            "(not 6:40 am). Plan: the boat trip, the market, the museum visit.",
        },
    ],
    "facts": [
        {"name": "flight", "value": "LX 318", "decoy": "BA 2274"},
        {"name": "time", "value": "8:05 am", "decoy": "6:40 am"},
        {"name": "hotel", "value": "Hotel Adler", "decoy": "Casa Azul"},
    ],
    "steps": ["the boat trip", "the market", "the museum visit"],
}


def write_response(ask: str, wrong: bool) -> str:
    """The writer: states each fact given (or, when ``wrong``, the first one's decoy from the
    'never write' list) and names the steps in the order given."""
    facts = re.findall(r"^- ([^:]+): (.+)$", ask, re.MULTILINE)
    steps = re.findall(r"^\d+\. (.+)$", ask, re.MULTILINE)
    avoid = re.findall(r"'([^']+)'", ask.split("Never write:")[1].split("\n")[0])
    lines = ["Hello,"]
    for n, (key, value) in enumerate(facts):
        if wrong and n == 0 and avoid:
            value = avoid[0]
        lines.append(f"The {key} is {value}.")
    lines.append("First " + ", then ".join(steps) + ".")
    return " ".join(lines)


_PLURAL = {f"{s}s": s for s in SHAPES}
_GROUP = re.compile(
    r"\b(a single|a|one|two|three|four|five|six|\d+)\s("
    + "|".join(COLOURS)
    + r")\s("
    + "|".join([*SHAPES, *_PLURAL])
    + r")\s"
    r"(?:in|at) the (top|bottom|upper|lower)[ -](left|right)"
)
_NUMBERS = {"a": 1, "a single": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def paint(prompt: str) -> Scene:
    """The painter's reading of a prompt in the scene grammar's words."""
    groups = []
    for count, colour, shape, vertical, side in _GROUP.findall(prompt):
        n = int(count) if count.isdigit() else _NUMBERS[count.lower()]
        top = "top" if vertical in ("top", "upper") else "bottom"
        groups.append(Group(colour, _PLURAL.get(shape, shape), n, f"{top} {side}"))
    background = next(b for b in sorted(BACKGROUNDS, key=len, reverse=True) if f"{b} background" in prompt)
    return Scene(tuple(groups), background)


class OpenAIServer:
    def __init__(self) -> None:
        self.url = ""
        self.calls: dict[str, int] = {}
        self.wrong_on_first_attempt = False  # each response written wrong until it is told why
        self.always_wrong = False
        self.bad_scenario_first = False
        self.requests: list[dict] = []

    def count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        system = body["messages"][0]["content"]
        if "describe pictures" in system:
            self.count("vision")
            part = next(p for p in body["messages"][1]["content"] if p["type"] == "image_url")
            data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
            image = Image.open(io.BytesIO(data)).convert("RGB")
            background = min(
                BACKGROUNDS,
                key=lambda b: sum(
                    abs(x - y) for x, y in zip(image.getpixel((2, 2)), BACKGROUNDS[b], strict=True)
                ),
            )
            scene = read_scene(image, background)
            answer = {"groups": [g.__dict__ for g in scene.groups], "background": scene.background}
        elif "benchmark of everyday writing" in system or "benchmark of assistants" in system:
            self.count("scenario")
            answer = dict(TEXT_SCENARIO if "everyday writing" in system else DIALOGUE_SCENARIO)
            if self.bad_scenario_first and self.calls["scenario"] == 1:
                answer = {
                    **answer,
                    "facts": [*answer["facts"][:2], {"name": "x", "value": "nowhere", "decoy": "absent"}],
                }
        else:
            self.count("response")
            ask = body["messages"][1]["content"]
            wrong = self.always_wrong or (self.wrong_on_first_attempt and len(body["messages"]) == 2)
            answer = {"response": write_response(ask, wrong)}
        return web.json_response(
            {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(answer)}}],
                "usage": {"total_tokens": 40},
            }
        )

    async def images(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.count("image")
        import random

        scene = paint(body["prompt"])
        data = png_bytes(render(scene, 1024, random.Random(body["prompt"])))
        return web.json_response({"data": [{"b64_json": base64.b64encode(data).decode()}]})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.count("embeddings")
        rows = []
        for i, text in enumerate(body["input"]):
            vector = np.zeros(256)
            for word in re.findall(r"\w+", text.lower()):
                vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
            rows.append({"index": i, "embedding": vector.tolist()})
        return web.json_response({"data": rows, "model": body["model"]})


@pytest.fixture
async def openai():
    server = OpenAIServer()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post("/v1/images/generations", server.images)
    app.router.add_post("/v1/embeddings", server.embeddings)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    yield server
    await runner.cleanup()


def _settings(server: OpenAIServer, **changes) -> LLMSettings:
    settings = LLMSettings(
        base_url=server.url,
        api_key="k",
        models=["writer"],
        backoff=0.0,
        max_retries=2,
        image_model="painter",
        vision_model="viewer",
        embedding_model="embedder",
    )
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


def _pipeline(
    server: OpenAIServer, store: SyntheticStore | None = None, embeddings: bool = False, **options
) -> SyntheticPipeline:
    llm = _settings(server)
    code = LLMBackend(llm)
    backends = {
        "text": LLMTextBackend(llm, "text", code.chat),
        "dialogue": LLMTextBackend(llm, "dialogue", code.chat),
        "image": LLMImageBackend(llm, code.chat),
    }
    factory: Callable | None = None
    if embeddings:

        def factory(store, kind, threshold):
            return EmbeddingFilter(store, 0.9, kind=kind, chat=code.chat, model="embedder")

    return SyntheticPipeline(
        code,
        store or SyntheticStore(),
        seed="llm",
        backends=backends,
        filter_factory=factory,
        options=PipelineOptions(**options),
    )


async def test_a_text_task_from_the_model_is_kept_once_the_checker_reads_its_levels(openai):
    pipeline = _pipeline(openai)
    try:
        task = await pipeline.generate_task("text")
    finally:
        await pipeline.aclose()
    assert task.kind == "text" and task.prompt == TEXT_SCENARIO["instruction"]
    by_rank = {task.ground_truth[r.cid]: response_text(r.completion.content) for r in task.responses}
    assert all(isinstance(r.completion.content, TextContent) for r in task.responses)
    assert "Thursday" in by_rank[1] and "2 pm" in by_rank[1] and "Room 4B" in by_rank[1]
    assert (
        "the welcome talk, then the safety briefing, then the lunch break, then the group photo" in by_rank[1]
    )
    # The levels were planned here: each response was asked for with its own values and order.
    asks = [
        r["messages"][1]["content"]
        for r in openai.requests
        if r["messages"][0]["content"].startswith("You write the response")
    ]
    assert len(asks) == 4 and len(set(asks)) == 4
    assert pipeline.stats["text"].generated == 1


async def test_a_response_with_the_wrong_defects_is_asked_for_again_told_why(openai):
    openai.wrong_on_first_attempt = True
    pipeline = _pipeline(openai)
    try:
        task = await pipeline.generate_task("text")
    finally:
        await pipeline.aclose()
    assert pipeline.stats["text"].generated == 1 and pipeline.stats["text"].discarded == 0
    retries = [r["messages"][-1]["content"] for r in openai.requests if len(r["messages"]) == 3]
    assert retries and all("refused" in m for m in retries)
    assert any("defects" in m or "stated" in m for m in retries)
    best = next(r for r in task.responses if task.ground_truth[r.cid] == 1)
    assert "Thursday" in response_text(best.completion.content)


async def test_a_model_that_never_writes_the_planned_defects_gets_its_task_discarded(openai):
    openai.always_wrong = True
    pipeline = _pipeline(openai, max_generation_attempts=2)
    try:
        with pytest.raises(TaskDiscarded, match="defects"):
            await pipeline.generate_task("text")
    finally:
        await pipeline.aclose()
    assert pipeline.stats["text"].discarded == 1
    # Each level's second ask told the model what the checker read.
    retries = [r for r in openai.requests if len(r["messages"]) == 3]
    assert retries and all("refused" in r["messages"][-1]["content"] for r in retries)


async def test_a_scenario_whose_facts_are_not_in_its_text_is_asked_for_again(openai):
    openai.bad_scenario_first = True
    pipeline = _pipeline(openai)
    try:
        task = await pipeline.generate_task("text")
    finally:
        await pipeline.aclose()
    assert openai.calls["scenario"] == 2
    retry = next(
        r
        for r in openai.requests
        if "everyday writing" in r["messages"][0]["content"] and len(r["messages"]) > 2
    )
    assert "word for word" in retry["messages"][-1]["content"]
    assert task.kind == "text"


async def test_a_dialogue_task_ranks_the_assistants_last_turn(openai):
    pipeline = _pipeline(openai)
    try:
        task = await pipeline.generate_task("dialogue")
    finally:
        await pipeline.aclose()
    for response in task.responses:
        content = response.completion.content
        assert isinstance(content, DialogueContent)
        assert [t.role for t in content.turns] == ["user", "assistant", "user", "assistant"]
    best = next(r for r in task.responses if task.ground_truth[r.cid] == 1)
    assert "LX 318" in best.completion.content.turns[-1].message


async def test_images_from_the_images_endpoint_are_kept_once_a_vision_model_reads_their_levels(openai):
    pipeline = _pipeline(openai)
    try:
        task = await pipeline.generate_task("image")
    finally:
        await pipeline.aclose()
    assert task.kind == "image" and openai.calls["image"] == 4
    assert openai.calls["vision"] == 8  # each picture as drawn, and as miners get it
    for response in task.responses:
        sent = response.completion.content
        assert isinstance(sent, ImageContent) and sent.media_type == "image/jpeg"
        assert sent.byte_size <= 150_000 and (sent.width, sent.height) == (1024, 1024)
        assert response.model == "painter"


async def test_the_semantic_filter_refuses_a_near_repeat_and_keeps_its_vectors(openai, tmp_path):
    store = SyntheticStore(tmp_path / "s.sqlite")
    chat_llm = _settings(openai)
    from dojo.synthetic.llm import ChatClient

    chat = ChatClient(chat_llm)
    try:
        f = EmbeddingFilter(store, 0.9, kind="text", chat=chat, model="embedder")
        first = await f.decide(
            "Write an email inviting the design team to the workshop on Thursday in Room 4B."
        )
        again = await f.decide(
            "Write an email inviting the design team to the workshop in Room 4B on Thursday!"
        )
        other = await f.decide("Explain to a beginner how to bake banana bread at 180C for 40 minutes.")
        assert (
            first.accepted
            and not again.accepted
            and again.similarity > 0.9
            and again.nearest_id == first.instruction_id
        )
        assert other.accepted
        assert instruction_counts(store) == {"accepted": 2, "rejected": 1}
        calls = openai.calls["embeddings"]
        # After a restart the stored vectors are used: only the new text is embedded.
        g = EmbeddingFilter(store, 0.9, kind="text", chat=chat, model="embedder")
        assert not (
            await g.decide("Write an email inviting the design team to the workshop on Thursday in Room 4B")
        ).accepted
        assert openai.calls["embeddings"] == calls + 1
        # Another kind's filter has its own instructions.
        h = EmbeddingFilter(store, 0.9, kind="image", chat=chat, model="embedder")
        assert (
            await h.decide("Write an email inviting the design team to the workshop on Thursday in Room 4B.")
        ).accepted
    finally:
        await chat.aclose()
        store.close()


async def test_the_pipeline_filters_with_embeddings_when_an_embedding_model_is_set(openai):
    pipeline = _pipeline(openai, embeddings=True)
    try:
        await pipeline.generate_task("text")
        # The model writes the same scenario again: the semantic filter refuses it every time.
        with pytest.raises(Exception, match="similarity filter"):
            await pipeline.generate_task("text")
    finally:
        await pipeline.aclose()
    assert openai.calls["embeddings"] >= 2
    assert instruction_counts(pipeline.store)["rejected"] >= 1
