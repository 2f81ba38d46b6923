"""The ``llm`` backend: instructions, variants and completions from a chat-completions model.

Any OpenAI-compatible endpoint works: OpenRouter (the default, ``OPENROUTER_API_KEY``),
Together (``TOGETHER_API_KEY``), OpenAI (``OPENAI_API_KEY``), or a local vLLM or Ollama
server given by base URL. Every answer is requested as JSON and validated with pydantic;
an answer that is not valid JSON of the right shape is asked for again, with the
validation error, up to ``max_retries`` times. Transient failures
(``commons.retry.is_transient``, and 409) are retried after the server's ``Retry-After``
(or an exponential backoff), timeouts likewise. Each task has a
time and token allowance (:class:`~dojo.synthetic.backend.TaskBudget`) that bounds every
request's timeout and ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from loguru import logger
from pydantic import BaseModel, Field, ValidationError

from commons.protocol import CodeFile
from commons.retry import RetryPolicy, is_transient, retry_after
from dojo.synthetic.backend import (
    BudgetExceeded,
    GeneratedCompletion,
    GenerationError,
    Instruction,
    TaskBudget,
)
from dojo.synthetic.settings import ServiceSettings
from template.http_body import ResponseTooLarge, capped
from template.validation import dotted, validation_messages

PROVIDERS: dict[str, tuple[str, str | None]] = {
    # name -> (base URL, the ServiceSettings field holding its key: variable of the same name in capitals)
    "openrouter": ("https://openrouter.ai/api/v1", "openrouter_api_key"),
    "together": ("https://api.together.xyz/v1", "together_api_key"),
    "openai": ("https://api.openai.com/v1", "openai_api_key"),
    "vllm": ("http://127.0.0.1:8000/v1", None),
    "ollama": ("http://127.0.0.1:11434/v1", None),
}

# Domains of the original Dojo code-generation tasks; the instructor combines a few.
TASK_SEEDS = (
    "particle system",
    "physics simulation with gravity",
    "interactive bar chart",
    "line chart with tooltips",
    "analogue clock",
    "colour palette generator",
    "drawing canvas",
    "maze game",
    "memory card game",
    "solar system orbit model",
    "sorting algorithm visualiser",
    "cellular automaton",
    "fractal tree",
    "weather dashboard with mock data",
    "music visualiser with oscillators",
    "flocking birds",
    "snake game",
    "pendulum wave",
    "fireworks",
    "typing speed test",
    "interactive map of fictional islands",
    "traffic light intersection",
    "aquarium with fish",
    "spirograph",
    "pixel art editor",
)


class InstructionAnswer(BaseModel):
    instruction: str = Field(min_length=20, max_length=4000)


class VariantsAnswer(BaseModel):
    variants: list[str] = Field(min_length=1, max_length=9)


class FileAnswer(BaseModel):
    filename: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-/]+$")
    content: str = Field(min_length=1, max_length=200_000)
    language: str = Field(max_length=32)


class CompletionAnswer(BaseModel):
    files: list[FileAnswer] = Field(min_length=1, max_length=10)


Answer = TypeVar("Answer", bound=BaseModel)


@dataclass
class LLMSettings:
    """Where the model is and how hard to try. ``models`` are drawn at random per completion."""

    base_url: str = PROVIDERS["openrouter"][0]
    api_key: str | None = None
    models: list[str] = field(default_factory=lambda: ["anthropic/claude-3.5-sonnet"])
    instruction_model: str | None = None  # defaults to the first of ``models``
    request_timeout: float = 120.0
    max_retries: int = 3
    max_tokens: int = 8000
    temperature: float = 0.8
    backoff: float = 1.0
    max_backoff: float = 60.0
    json_schema: bool = True  # response_format json_schema; off for servers that only know json_object
    # Images through the provider's /images/generations (None: drawn offline), checked by
    # ``vision_model`` (default the first of ``models``) through chat with an image part.
    image_model: str | None = None
    vision_model: str | None = None
    # Embeddings for the semantic duplicate filter (None: TF-IDF).
    embedding_model: str | None = None

    @property
    def retry(self) -> RetryPolicy:
        """``max_retries`` more tries after the first, backing off from ``backoff`` seconds."""
        return RetryPolicy(attempts=self.max_retries + 1, base_delay=self.backoff, max_delay=self.max_backoff)


class ChatError(GenerationError):
    """The endpoint kept failing or never gave a valid answer."""


# The most an LLM endpoint's reply may take, compressed and decoded (template.http_body): a
# chat answer is at most max_tokens, an image generation a few base64 images; an endpoint
# that answers more is broken or hostile, and is refused rather than read.
MAX_REPLY_BYTES = 32 * 1024 * 1024


class ChatClient:
    """A minimal OpenAI-compatible chat-completions client with validated JSON answers."""

    def __init__(self, settings: LLMSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._rng = random.Random()
        headers = {"Content-Type": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            timeout=settings.request_timeout,
            transport=capped(MAX_REPLY_BYTES, transport, name=settings.base_url),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ask(
        self, model: str, messages: list[dict[str, Any]], schema: type[Answer], budget: TaskBudget
    ) -> Answer:
        """``schema`` parsed from the model's answer; retries as the module docstring says."""
        s = self.settings
        messages = list(messages)
        problem = ""
        for attempt in range(s.max_retries + 1):
            budget.check()
            max_tokens = s.max_tokens
            left = budget.tokens_left()
            if left is not None:
                max_tokens = min(max_tokens, left)
            body = {
                "model": model,
                "messages": messages,
                "temperature": s.temperature,
                "max_tokens": max_tokens,
                "response_format": _response_format(schema) if s.json_schema else {"type": "json_object"},
            }
            timeout = max(0.001, min(s.request_timeout, budget.remaining()))
            delay: float | None = None
            response = await self._send("/chat/completions", body, timeout)
            if isinstance(response, tuple):
                problem, delay = response
            elif response.status_code == 200:
                try:
                    payload = response.json()
                    usage = payload.get("usage") or {}
                    budget.spend(int(usage.get("total_tokens") or 0))
                    content = payload["choices"][0]["message"]["content"] or ""
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    problem = f"the response is not a chat completion: {exc!r}"
                else:
                    try:
                        return schema.model_validate_json(_strip_fences(content))
                    except ValidationError as exc:
                        problem = f"the answer is not valid JSON of the requested shape: {_first_error(exc)}"
                        # Show the model its mistake; the next answer is usually right.
                        messages = [
                            *messages,
                            {"role": "assistant", "content": content[:4000]},
                            {
                                "role": "user",
                                "content": f"That was not valid: {problem}. Answer again with JSON only.",
                            },
                        ]
                        delay = 0.0
            else:
                raise ChatError(
                    f"{s.base_url} refused the request with HTTP {response.status_code}: {response.text[:300]} "
                    "(check the API key and the model name)"
                )
            if attempt == s.max_retries:
                break
            await self._wait_to_retry(attempt, delay, budget, f"{s.base_url} {model}", problem)
        raise ChatError(f"{model} at {s.base_url} failed {s.max_retries + 1} times; last problem: {problem}")

    async def post_json(
        self, path: str, body: dict[str, Any], budget: TaskBudget | None, what: str
    ) -> dict[str, Any]:
        """POST ``body`` to ``path`` (``/embeddings``, ``/images/generations``) and return the
        JSON answer, with ``ask``'s retries (timeouts, 408/409/425/429/5xx after the server's
        ``Retry-After``); a refusal (another 4xx) or an answer that is not a JSON object is a
        :class:`ChatError` at once."""
        s = self.settings
        problem = ""
        for attempt in range(s.max_retries + 1):
            if budget is not None:
                budget.check()
            timeout = (
                s.request_timeout
                if budget is None
                else max(0.001, min(s.request_timeout, budget.remaining()))
            )
            delay: float | None = None
            response = await self._send(path, body, timeout, what)
            if isinstance(response, tuple):
                problem, delay = response
            elif response.status_code == 200:
                try:
                    payload = response.json()
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    raise ChatError(f"{s.base_url}{path} answered {what} with something that is not JSON")
                if budget is not None:
                    budget.spend(int((payload.get("usage") or {}).get("total_tokens") or 0))
                return payload
            else:
                raise ChatError(
                    f"{s.base_url}{path} refused {what} with HTTP {response.status_code}: {response.text[:300]}"
                )
            if attempt == s.max_retries:
                break
            await self._wait_to_retry(attempt, delay, budget, f"{s.base_url}{path} ({what})", problem)
        raise ChatError(
            f"{s.base_url}{path} ({what}) failed {s.max_retries + 1} times; last problem: {problem}"
        )

    async def _send(
        self, path: str, body: dict[str, Any], timeout: float, what: str = ""
    ) -> httpx.Response | tuple[str, float | None]:
        """One POST of ``body`` to ``path``: the response when it is an answer (200) or a
        refusal (another 4xx); when another try may mend it, what went wrong and how long the
        server asks to wait (``Retry-After``, else None); a :class:`ChatError` when no try
        can (an answer over the size limit, a malformed URL)."""
        try:
            response = await self._client.post(path, json=body, timeout=timeout)
        except ResponseTooLarge as exc:
            raise ChatError(f"{what}: {exc}" if what else str(exc)) from exc
        except httpx.TimeoutException:
            return f"no answer within {timeout:.1f}s", None
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if not is_transient(exc):  # a malformed URL: no try mends it
                raise ChatError(f"{self.settings.base_url}: {problem}") from exc
            return problem, None
        if _transient(response.status_code):
            return f"HTTP {response.status_code}", retry_after(response.headers)
        return response

    async def _wait_to_retry(
        self, attempt: int, delay: float | None, budget: TaskBudget | None, label: str, problem: str
    ) -> None:
        """Sleep before try ``attempt + 2`` (``delay``: the server's ``Retry-After`` or 0 for at
        once, None for the policy's back-off), logging ``label`` and ``problem``;
        :class:`BudgetExceeded` when the wait would outlast ``budget``."""
        s = self.settings
        delay = s.retry.delay(attempt, self._rng, delay)
        if budget is not None and delay > budget.remaining():
            raise BudgetExceeded(
                f"waiting {delay:.1f}s to retry ({problem}) would exceed the task's time limit"
            )
        logger.warning("{}: {}; retry {}/{} in {:.1f}s", label, problem, attempt + 1, s.max_retries, delay)
        await asyncio.sleep(delay)


def _transient(status: int) -> bool:
    """:func:`commons.retry.is_transient`, and 409: OpenAI-compatible servers answer it for a
    lock that timed out, and their own SDKs try again."""
    return is_transient(status) or status == 409


def _response_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False},
    }


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def _strip_fences(content: str) -> str:
    # Some servers ignore response_format and wrap the JSON in a markdown fence.
    match = _FENCE.match(content)
    return match.group(1) if match else content


def new_task_prompt(examples: Sequence[str], themes: Sequence[str], clip: int | None = None) -> str:
    """What an instructor asks the model for: a task clearly different from ``examples`` (each
    cut to its first ``clip`` characters, when given), combining two ``themes``."""
    shown = "\n".join(f"- {e[:clip]}" for e in examples) or "(none yet)"
    return (
        f"Existing tasks (write something clearly different):\n{shown}\n\n"
        f"Write one new task that combines these themes: {themes[0]} and {themes[1]}."
    )


def _first_error(exc: ValidationError) -> str:
    return validation_messages(exc, where=lambda loc: dotted(loc) or "answer", limit=1)[0]


_INSTRUCT_SYSTEM = (
    "You write tasks for a code-generation benchmark judged by humans. Each task asks for one "
    "self-contained interactive web page (HTML, CSS and JavaScript, no external libraries or "
    "network access) whose result a person can check by looking at it and using it: name "
    "concrete counts, colours, layouts, motions and interactions. Answer with JSON: "
    '{"instruction": "..."}.'
)
_AUGMENT_SYSTEM = (
    "You rewrite a task instruction into degraded variants for building a ranking with a known "
    "answer. Variant 1 changes exactly one concrete, visible requirement of the original (a "
    "count, colour, shape, layout, motion or interaction) to something different; variant 2 "
    "keeps variant 1's change and changes one more; and so on, each variant deviating one step "
    "further from the original. Keep the wording and length close to the original so the "
    'variants read alike. Answer with JSON: {"variants": ["...", ...]}.'
)
_GENERATE_SYSTEM = (
    "You are an expert front-end developer. Write a complete, working answer to the instruction: "
    "an index.html that runs by itself in a browser (you may add .css and .js files it links to "
    "by relative path). No external libraries, fonts or network requests; no comments that "
    "restate the instruction. Answer with JSON: "
    '{"files": [{"filename": "index.html", "content": "...", "language": "html"}, ...]}.'
)


class LLMBackend:
    """The production backend; see the module docstring."""

    name = "llm"

    def __init__(self, settings: LLMSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.models:
            raise ValueError("the llm backend needs at least one model")
        self.settings = settings
        self.chat = ChatClient(settings, transport)

    async def aclose(self) -> None:
        await self.chat.aclose()

    async def instruct(self, rng: random.Random, examples: Sequence[str], budget: TaskBudget) -> Instruction:
        prompt = new_task_prompt(examples, rng.sample(TASK_SEEDS, 2))
        answer = await self.chat.ask(
            self.settings.instruction_model or self.settings.models[0],
            [{"role": "system", "content": _INSTRUCT_SYSTEM}, {"role": "user", "content": prompt}],
            InstructionAnswer,
            budget,
        )
        return Instruction(text=answer.instruction.strip())

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        prompt = f"Original instruction:\n{original.text}\n\nWrite exactly {levels} variants."
        answer = await self.chat.ask(
            self.settings.instruction_model or self.settings.models[0],
            [{"role": "system", "content": _AUGMENT_SYSTEM}, {"role": "user", "content": prompt}],
            VariantsAnswer,
            budget,
        )
        if len(answer.variants) != levels:
            raise GenerationError(f"asked for {levels} variants, the model wrote {len(answer.variants)}")
        return [
            Instruction(text=text.strip(), deviation=k) for k, text in enumerate(answer.variants, start=1)
        ]

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        model = rng.choice(self.settings.models)
        messages = [
            {"role": "system", "content": _GENERATE_SYSTEM},
            {"role": "user", "content": instruction.text},
        ]
        if feedback:
            messages.append(
                {"role": "user", "content": f"Your previous answer failed these checks; fix them: {feedback}"}
            )
        answer = await self.chat.ask(model, messages, CompletionAnswer, budget)
        files = [
            CodeFile(filename=f.filename, content=f.content, language=f.language.lower())
            for f in answer.files
        ]
        pages = [f for f in files if f.filename.lower().endswith((".html", ".htm"))]
        if not any(f.filename == "index.html" for f in files) and len(pages) == 1:
            # The renderer opens index.html; a lone page under another name is that page.
            files = [
                CodeFile(filename="index.html", content=f.content, language="html") if f is pages[0] else f
                for f in files
            ]
        return GeneratedCompletion(files=files, model=model)


def llm_settings(service: ServiceSettings) -> LLMSettings:
    """The llm backend's settings from the service's resolved ones (``--llm-provider``,
    ``--llm-base-url``, ``--llm-model``, the image, vision and embedding models, and the key:
    ``SYNTHETIC_LLM_API_KEY`` or the provider's own, such as ``OPENROUTER_API_KEY``)."""
    provider = service.llm_provider or "openrouter"
    if provider not in PROVIDERS:
        raise ValueError(
            f"unknown LLM provider {provider!r}; use one of {', '.join(PROVIDERS)} or give a base URL"
        )
    default_url, key_field = PROVIDERS[provider]
    key = service.llm_api_key or (getattr(service, key_field) if key_field else None)
    settings = LLMSettings(
        base_url=service.llm_base_url or default_url, api_key=key.get_secret_value() if key else None
    )
    if service.llm_models:
        settings.models = list(service.llm_models)
    settings.image_model = service.llm_image_model or None
    settings.vision_model = service.llm_vision_model or None
    settings.embedding_model = service.llm_embedding_model or None
    if key_field and key is None and not service.llm_base_url:
        variable = key_field.upper()
        raise ValueError(
            f"the {provider} provider needs an API key: set {variable} (--{key_field.replace('_', '-')}) "
            "or SYNTHETIC_LLM_API_KEY"
        )
    return settings


__all__ = [
    "ChatClient",
    "ChatError",
    "LLMBackend",
    "LLMSettings",
    "PROVIDERS",
    "TASK_SEEDS",
    "llm_settings",
    "new_task_prompt",
]
