"""Label Studio as a worker backend: ``--worker_platform label-studio``.

The miner runs a Label Studio server (community edition, ``label-studio`` in a virtual
environment of its own) and this backend drives it through the official SDK
(``label-studio-sdk``, :class:`label_studio_sdk.AsyncLabelStudio`):

- **Projects**: one per kind of content (code, text, dialogue), titled
  ``"<prefix> <kind> ranking · <hotkey>"``, created on first use with :data:`LABEL_CONFIG` (a
  ``List`` of the responses and a ``Ranker``), the guidelines as its instructions and the
  miner's number of answers per task as its overlap; found again by title after a restart.
- **Tasks**: imported with the validator's completion ids as the items' ids and the task's
  key (validator and request id, :class:`TaskKey`) in its data and metadata. Before each
  import the project is searched for that key, so a request is never imported twice, even
  by a miner killed between the import and its own write.
- **Answers**: the task's annotations in the order Label Studio stored them (by id), with
  the annotator's user id, ``was_cancelled`` (a skip) and ``lead_time``. Label Studio's
  community edition does not hold a task to distinct annotators or to its overlap, nor
  check that a ranking is whole: the miner's rules (:mod:`dojo.miner.answers`) do.
- **Polling**: the miner reads its open tasks every ``poll_interval`` seconds; with a webhook
  port, Label Studio's ``ANNOTATION_CREATED`` webhook (with the secret header; Label Studio
  signs nothing, tries once, waits 1 s) makes it read them at once. The webhook is only a hint.
- **Deadlines**: Label Studio has none, and would serve a task to its annotators long after
  the miner could deliver a ranking of it. Once a task's deadline has passed (by 30 s, for
  answers still being written), the miner reads it a last time, pinning its answers, and
  then :meth:`LabelStudioBackend.withdraw` deletes it, with its annotations: deleting is the
  community edition's one way to take a task out of both the label stream and the Data
  Manager. The miner notes it and never reads it again; the validator gets what was pinned.
  A deletion that fails (Label Studio down) is logged and tried again each poll.

Failures, as the validator and the operator see them: Label Studio down or slow → 503 and
a log line saying to start it; a token it refuses → 503 naming ``LABEL_STUDIO_API_KEY``; a
project whose labelling config was changed → 503 saying how to restore it; a project or
task deleted by hand before its deadline → that task's answers not yet read are lost (the
result holds those already pinned) and the log says so, and new tasks go to a new project.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import warnings
from collections.abc import Awaitable
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

import httpx
import pydantic
from loguru import logger

from commons.dojo_api import normalize_base_url
from commons.protocol import CodeContent, Content, DialogueContent, FeedbackRequest, TextContent
from dojo.miner.backends import _base
from template.http_body import ResponseTooLarge, capped

T = TypeVar("T")

# What the annotators see: the prompt, the responses as a list, and a ranker over them
# (the community edition's "LLM Ranker" tags). The names are what the answers are read by.
LABEL_CONFIG = """<View>
  <Style>.dojo-prompt { white-space: pre-wrap; }</Style>
  <Header value="Rank the responses: drag the best to the top"/>
  <View className="dojo-prompt"><Text name="prompt" value="$prompt"/></View>
  <List name="answers" value="$items" title="Responses"/>
  <Ranker name="rank" toName="answers"/>
</View>"""
RANKER = "rank"

GUIDELINES = """<h3>How to rank</h3>
<p>Read the prompt, then every response in full. Drag the responses into order: the one that
does best what the prompt asks on top, the worst at the bottom. Every response must be placed;
a ranking that leaves one out is not counted.</p>
<p>Judge what the response does, not how long it is or where it was shown. Code is shown as
its files; judge whether it would do what the prompt asks.</p>
<p>Each task needs the rankings of several different people: answer a task once. Skip a task
you cannot judge; a skip is never counted against you.</p>"""

WEBHOOK_HEADER = "X-Dojo-Webhook-Secret"
WEBHOOK_PATH = "/label-studio/webhook"
CALL_TIMEOUT = 10.0
# The most a Label Studio reply may take, compressed and decoded (template.http_body). The SDK
# reads every body whole; it is given an httpx client whose transport caps them. A task's
# annotations or a project's listing are far under it.
MAX_REPLY_BYTES = 16 * 1024 * 1024
KINDS = ("code", "text", "dialogue")


def item_body(content: Content) -> str:
    """A completion as the annotators read it in the list: code as its files, a text, turns."""
    if isinstance(content, CodeContent):
        return "\n\n".join(f"── {f.filename} ──\n{f.content}" for f in content.files)
    if isinstance(content, TextContent):
        return content.text
    if isinstance(content, DialogueContent):
        return "\n\n".join(f"{turn.role}: {turn.message}" for turn in content.turns)
    raise TypeError(f"unknown content {type(content).__name__}")


def task_data(request: FeedbackRequest, key: _base.TaskKey) -> dict[str, Any]:
    """The Label Studio task of a request; the validator's completion ids are the items' ids."""
    letters = "ABCDEFGHIJ"
    return {
        "prompt": request.prompt,
        "items": [
            {"id": c.completion_id, "title": f"Response {letters[i]}", "body": item_body(c.content)}
            for i, c in enumerate(request.completions)
        ],
        "dojo_key": key.idempotency_key,
    }


def read_ranking(result: Any, completion_ids: tuple[str, ...]) -> tuple[dict[str, float], str | None]:
    """The ranking in an annotation's ``result`` as ``{completion id: rank}``, and what is wrong
    with it (None when it is one whole order of the task's completions)."""
    if not isinstance(result, list):
        return {}, "its result is not a list of regions"
    rankers = [
        r
        for r in result
        if isinstance(r, dict) and r.get("type") == "ranker" and r.get("from_name") == RANKER
    ]
    if not rankers:
        return {}, "it holds no ranking"
    if len(rankers) > 1:
        return {}, "it holds more than one ranking"
    buckets = (rankers[0].get("value") or {}).get("ranker")
    if not isinstance(buckets, dict) or not isinstance(buckets.get(RANKER), list):
        return {}, "its ranking cannot be read"
    order = [str(x) for x in buckets[RANKER]]
    left = sorted(
        str(x) for name, items in buckets.items() if name != RANKER and isinstance(items, list) for x in items
    )
    if left:
        return {}, f"a partial ranking: {left} left unranked"
    if len(set(order)) != len(order):
        return {}, "its ranking names a response twice"
    if sorted(order) != sorted(completion_ids):
        return {}, f"a partial ranking: it orders {sorted(order)}, the task has {sorted(completion_ids)}"
    return {cid: float(rank) for rank, cid in enumerate(order, start=1)}, None


def _fields(annotation: Any) -> dict[str, Any]:
    """An annotation as a dict, whether the SDK gave a model or the raw JSON."""
    if isinstance(annotation, dict):
        return annotation
    if isinstance(annotation, pydantic.BaseModel):
        return annotation.model_dump()
    return dict(vars(annotation))


def _when(value: Any) -> datetime:
    """An annotation's time, aware (Label Studio writes UTC)."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if not isinstance(when, datetime):
        return datetime.now(timezone.utc)
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class LabelStudioBackend(_base.WorkerBackend):
    """The Label Studio server at ``url`` under the API token ``api_key``."""

    name: ClassVar[str] = "label-studio"
    capabilities: ClassVar[_base.Capabilities] = _base.Capabilities(
        content_kinds=frozenset(KINDS), criteria=frozenset({"ranking"})
    )

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        miner_hotkey: str,
        project_prefix: str = "Dojo",
        poll_interval: float = 15.0,
        webhook_host: str = "127.0.0.1",
        webhook_port: int | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        timeout: float = CALL_TIMEOUT,
    ):
        super().__init__()
        try:
            self.url = normalize_base_url(url)
        except ValueError as exc:
            raise ValueError(f"--label_studio.url (env LABEL_STUDIO_URL): {exc}") from exc
        self.api_key = api_key or None
        self.miner_hotkey = miner_hotkey
        self.project_prefix = project_prefix
        self.poll_interval = poll_interval
        self.webhook_host = webhook_host
        self.webhook_port = webhook_port
        self.webhook_url = webhook_url or (
            f"http://{webhook_host}:{webhook_port}{WEBHOOK_PATH}" if webhook_port is not None else None
        )
        self.webhook_secret = webhook_secret
        self.client: Any = None
        if self.api_key is not None:
            with warnings.catch_warnings():  # the SDK's pydantic v1-style validators
                warnings.simplefilter("ignore", DeprecationWarning)
                from label_studio_sdk import AsyncLabelStudio

            # label_studio_sdk's AsyncLabelStudio.__init__ takes (*args, **kwargs) unannotated.
            self.client = AsyncLabelStudio(  # type: ignore[no-untyped-call]
                base_url=self.url,
                api_key=self.api_key,
                timeout=timeout,
                httpx_client=httpx.AsyncClient(
                    timeout=timeout,
                    follow_redirects=True,
                    transport=capped(MAX_REPLY_BYTES, name="Label Studio"),
                ),
            )
        self._projects: dict[str, int] = {}
        self._project_lock = asyncio.Lock()
        self._webhook_server: Any = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._hooked: set[int] = set()
        self._gone: set[str] = set()

    @property
    def where(self) -> str:
        return f"Label Studio at {self.url}"

    def problem(self) -> str | None:
        if self.api_key is None:
            return (
                "this miner has no LABEL_STUDIO_API_KEY, so it cannot reach its Label Studio team. Copy the "
                f"token from {self.url}/user/account (Account & Settings), set LABEL_STUDIO_API_KEY to it "
                "and restart the miner"
            )
        return None

    def project_title(self, kind: str) -> str:
        return f"{self.project_prefix} {kind} ranking · {self.miner_hotkey[:8]}"

    def refusal(self, request: FeedbackRequest) -> str | None:
        reason = super().refusal(request)
        if reason is None and _base.content_kind(request) is None:
            reason = f"this miner's worker backend ({self.name}) cannot show one task with several kinds of content"
        return reason

    # --- calls ------------------------------------------------------------------------------

    async def _call(self, call: Awaitable[T], what: str) -> T:
        """One SDK call as a :class:`BackendError` when it fails; ``ApiError`` 404 passes through."""
        from label_studio_sdk.core.api_error import ApiError

        late = (
            f"Label Studio at {self.url} did not finish {what} within {_base.CALL_DEADLINE:g} s; "
            "check that it runs and is not overloaded"
        )
        try:
            return await _base.within_deadline(call, late)
        except ResponseTooLarge as exc:
            raise _base.BackendBroken(f"Label Studio at {self.url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise _base.BackendUnavailable(
                f"Label Studio at {self.url} did not answer {what} ({type(exc).__name__}: {exc}); "
                "start it (README: Mining with Label Studio) or fix --label_studio.url (env LABEL_STUDIO_URL)"
            ) from exc
        except ApiError as exc:
            status = exc.status_code or 0
            detail = str(exc.body)[:300]
            if status in (401, 403):
                raise _base.BackendMisconfigured(
                    f"Label Studio at {self.url} refused this miner's LABEL_STUDIO_API_KEY ({status} {detail}). "
                    f"Copy the token from {self.url}/user/account and restart the miner with it; a server "
                    "1.17 or later needs --enable-legacy-api-token for a legacy token"
                ) from exc
            if status == 404:
                raise
            if status == 429 or status >= 500:
                raise _base.BackendUnavailable(
                    f"Label Studio at {self.url} failed {what}: {status} {detail}"
                ) from exc
            if what == "import":
                raise _base.TaskRefused(f"Label Studio refused the task: {status} {detail}") from exc
            raise _base.BackendBroken(f"Label Studio answered {what} with {status} {detail}") from exc
        except pydantic.ValidationError as exc:
            raise _base.BackendBroken(
                f"Label Studio's answer to {what} does not match the SDK's models: {exc}"
            ) from exc

    # --- projects ---------------------------------------------------------------------------

    async def project(self, kind: str, max_results: int) -> int:
        """The id of the miner's project for ``kind``: cached, found by title, or created."""
        from label_studio_sdk.core.api_error import ApiError

        async with self._project_lock:
            title = self.project_title(kind)
            cached = self._projects.get(kind)
            if cached is not None:
                try:
                    project = await self._call(self.client.projects.get(id=cached), "reading a project")
                except ApiError:
                    logger.error(
                        "Label Studio project {!r} ({}) was deleted: the tasks in it are lost and their "
                        "validators get no answers for them; new tasks go to a new project",
                        title,
                        cached,
                    )
                    del self._projects[kind]
                else:
                    self._check_config(project.label_config, title, cached)
                    return cached
            pager = await self._call(
                self.client.projects.list(title=title, page_size=100), "listing projects"
            )
            found = sorted((p for p in pager.items or [] if p.title == title), key=lambda p: p.id)
            if found:
                self._check_config(found[0].label_config, title, found[0].id)
                self._projects[kind] = found[0].id
                return int(found[0].id)
            created = await self._call(
                self.client.projects.create(
                    title=title,
                    description=f"Dojo ranking tasks ({kind}) for miner {self.miner_hotkey}",
                    label_config=LABEL_CONFIG,
                    expert_instruction=GUIDELINES,
                    show_instruction=True,
                    show_skip_button=True,
                    maximum_annotations=max_results,
                ),
                "creating a project",
            )
            # The SDK's create has ignored maximum_annotations (SDK issue 339): set it again.
            await self._call(
                self.client.projects.update(id=created.id, maximum_annotations=max_results),
                "updating a project",
            )
            logger.info("created Label Studio project {!r} ({}) for {} tasks", title, created.id, kind)
            self._projects[kind] = int(created.id)
            return int(created.id)

    def _check_config(self, config: str | None, title: str, project_id: int) -> None:
        if (config or "").strip() != LABEL_CONFIG.strip():
            raise _base.BackendMisconfigured(
                f"the labelling config of Label Studio project {title!r} ({project_id}) was changed, and the "
                "miner reads rankings only from its own; restore it (docs/miner-backends.md gives it) or "
                "rename the project so that the miner makes a new one"
            )

    # --- tasks ------------------------------------------------------------------------------

    async def find_task(self, project: int, key: _base.TaskKey) -> int | None:
        """The id of the project's task for ``key``, if it was imported before."""
        query = {
            "filters": {
                "conjunction": "and",
                "items": [
                    {
                        "filter": "filter:tasks:data.dojo_key",
                        "operator": "equal",
                        "type": "String",
                        "value": key.idempotency_key,
                    }
                ],
            }
        }
        pager = await self._call(
            self.client.tasks.list(project=project, query=json.dumps(query), page_size=10), "searching tasks"
        )
        ids = sorted(
            int(t.id) for t in pager.items or [] if (t.data or {}).get("dojo_key") == key.idempotency_key
        )
        return ids[0] if ids else None

    async def create_task(self, key: _base.TaskKey, request: FeedbackRequest, max_results: int) -> str:
        kind = _base.content_kind(request)
        if kind is None:
            raise _base.TaskRefused(self.refusal(request) or "mixed content")
        project = await self.project(kind, max_results)
        await self._ensure_webhook(project)
        existing = await self.find_task(project, key)
        if existing is not None:
            logger.info("request {}: already in Label Studio as task {}", key.request_id, existing)
            return str(existing)
        task = await self._call(
            self.client.tasks.create(
                project=project,
                data=task_data(request, key),
                meta={
                    "validator": key.validator_hotkey,
                    "request_id": key.request_id,
                    "dojo_key": key.idempotency_key,
                },
                overlap=max_results,
            ),
            "import",
        )
        return str(task.id)

    async def answers(self, task: _base.BackendTask) -> list[_base.Answer]:
        from label_studio_sdk.core.api_error import ApiError

        try:
            # The task with all its annotations: the annotations listing leaves out cancelled ones.
            found = await self._call(self.client.tasks.get(id=task.task_id), "reading a task")
        except ApiError:
            if task.task_id not in self._gone:  # said once, not at every poll
                self._gone.add(task.task_id)
                logger.error(
                    "Label Studio task {} (request {}) is gone: it or its project was deleted; its answers "
                    "not read before are lost",
                    task.task_id,
                    task.key.request_id,
                )
            return []
        annotations = [_fields(a) for a in (getattr(found, "annotations", None) or [])]
        out: list[_base.Answer] = []
        for a in sorted(annotations, key=lambda a: int(a.get("id") or 0)):
            cancelled = bool(a.get("was_cancelled"))
            values, problem = read_ranking(a.get("result"), task.completion_ids)
            out.append(
                _base.Answer(
                    answer_id=str(a.get("id")),
                    worker_id=f"ls-user-{a.get('completed_by')}",
                    submitted_at=_when(a.get("created_at")),
                    values={"ranking": values} if values else {},
                    skipped=cancelled,
                    problem=None if cancelled else problem,
                    lead_time=_number(a.get("lead_time")),
                )
            )
        return out

    async def withdraw(self, task: _base.BackendTask) -> None:
        """Delete the task (and the annotations in it, which the miner has pinned): Label Studio
        knows no deadline, and deleting is the community edition's one way to stop its label
        stream and its Data Manager from serving a task. A task already gone is withdrawn."""
        from label_studio_sdk.core.api_error import ApiError

        with contextlib.suppress(ApiError):  # 404: deleted before (by hand, or before a crash)
            await self._call(self.client.tasks.delete(id=task.task_id), "deleting a task")
        self._gone.discard(task.task_id)

    # --- the webhook ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for Label Studio's webhook, when a webhook port is set; each project gets the
        webhook registered as the miner first uses it (Label Studio's webhooks are per project)."""
        if self.webhook_port is None or self.client is None:
            return
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        secret = (self.webhook_secret or "").encode()

        async def hook(request: Request) -> JSONResponse:
            given = request.headers.get(WEBHOOK_HEADER, "").encode()
            if not secret or not hmac.compare_digest(given, secret):
                logger.warning("Label Studio webhook from {} refused: wrong secret header", request.client)
                return JSONResponse({"detail": "wrong secret"}, status_code=401)
            self.hint.set()
            return JSONResponse({"ok": True})

        app = Starlette(routes=[Route(WEBHOOK_PATH, hook, methods=["POST"])])
        config = uvicorn.Config(
            app, host=self.webhook_host, port=self.webhook_port, log_level="warning", lifespan="off"
        )
        self._webhook_server = uvicorn.Server(config)
        self._webhook_task = asyncio.create_task(self._webhook_server.serve())
        logger.info("listening for Label Studio's webhook on {}", self.webhook_url)

    async def _ensure_webhook(self, project: int) -> None:
        """Have Label Studio call the listener on each new annotation in ``project`` (a hint:
        answers are polled all the same, so a failure here is only logged)."""
        from label_studio_sdk.core.api_error import ApiError

        if self.webhook_url is None or project in self._hooked:
            return
        headers = {WEBHOOK_HEADER: self.webhook_secret}
        settings = {
            "url": self.webhook_url,
            "headers": headers,
            "actions": ["ANNOTATION_CREATED"],
            "is_active": True,
            "send_payload": False,
            "send_for_all_actions": False,
        }
        try:
            hooks = await self._call(self.client.webhooks.list(project=str(project)), "listing webhooks")
            mine = [h for h in hooks if h.url == self.webhook_url and h.project == project]
            if mine:
                await self._call(
                    self.client.webhooks.update(id=mine[0].id, **settings), "updating the webhook"
                )
            else:
                await self._call(
                    self.client.webhooks.create(project=project, **settings), "creating the webhook"
                )
        except (_base.BackendError, ApiError) as exc:
            logger.warning(
                "no Label Studio webhook for project {} ({}); its answers are read every {:g} s",
                project,
                exc,
                self.poll_interval,
            )
            return
        self._hooked.add(project)
        logger.info("Label Studio calls {} on each new annotation in project {}", self.webhook_url, project)

    async def aclose(self) -> None:
        if self._webhook_server is not None and self._webhook_task is not None:
            self._webhook_server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client._client_wrapper.httpx_client.httpx_client.aclose()


__all__ = [
    "GUIDELINES",
    "LABEL_CONFIG",
    "WEBHOOK_HEADER",
    "WEBHOOK_PATH",
    "LabelStudioBackend",
    "item_body",
    "read_ranking",
    "task_data",
]
