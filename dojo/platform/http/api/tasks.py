"""The miner's task endpoints (header ``x-api-key``): create, status, results."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Header, Request
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from commons.dojo_wire import (
    CreateTasksIn,
    CreateTasksOut,
    ResultItem,
    TaskResultOut,
    TaskResultsBody,
    TaskResultsOut,
    TaskScoreIn,
    TaskScoreOut,
    TaskStatusOut,
)
from dojo.platform.errors import BadRequest, Invalid
from dojo.platform.http.deps import ApiKeyMiner, DatabaseDep
from dojo.platform.schemas import wired
from dojo.platform.security import load_json
from dojo.platform.services import tasks
from template.validation import validation_detail

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
FORM_FIELDS = ("title", "body", "expireAt", "taskData", "maxResults")
MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {name: {"type": "string"} for name in FORM_FIELDS},
    "required": ["title", "expireAt", "taskData"],
}


async def _create_tasks_body(request: Request) -> CreateTasksIn:
    """The body as JSON or as the original multipart form. Read here, not by FastAPI (and
    not by the front's JSON check, see ``app.py``), with the one JSON reader of the edge:
    a malformed, too deep or non-finite taskData is the same 400 in either form."""
    content_type = request.headers.get("content-type", "")
    data: Any
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        data = {name: form.get(name) for name in FORM_FIELDS if form.get(name) is not None}
        if any(not isinstance(v, str) for v in data.values()):
            raise BadRequest("form fields must be plain values, not files")
        if "taskData" in data:
            data["taskData"] = load_json(data["taskData"], what="the taskData field")
            if isinstance(data["taskData"], dict):
                data["taskData"] = [data["taskData"]]
    else:
        data = load_json(await request.body())
    try:
        return CreateTasksIn.model_validate(data)
    except ValidationError as exc:
        raise Invalid(validation_detail(exc, limit=None)) from None


@router.post(
    "/create-tasks",
    response_model=CreateTasksOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CreateTasksIn"}},
                "multipart/form-data": {"schema": MULTIPART_SCHEMA},
            },
        }
    },
)
async def create_tasks(
    request: Request,
    miner: ApiKeyMiner,
    database: DatabaseDep,
    idempotency_key: str | None = Header(
        None,
        description="any unique string up to 128 printable characters, the same on every retry "
        "of one request: a repeat returns the tasks the first one created",
    ),
) -> CreateTasksOut:
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise BadRequest("Idempotency-Key must be 1 to 128 printable ASCII characters")
    payload = await _create_tasks_body(request)

    def create() -> list[str]:
        try:
            with database.session() as db:
                return tasks.create_tasks(db, miner, payload, idempotency_key)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # The same key in a concurrent request that committed first: its tasks are the answer.
            with database.session() as db:
                return tasks.create_tasks(db, miner, payload, idempotency_key)

    return CreateTasksOut(body=await run_in_threadpool(create))


@router.get("/task-result/{task_id}", response_model=TaskResultsOut)
def task_results(task_id: str, miner: ApiKeyMiner, database: DatabaseDep) -> TaskResultsOut:
    with database.read_session() as db:
        results = tasks.get_task_results(db, miner, task_id)
    return TaskResultsOut(
        body=TaskResultsBody(
            task_results=[
                TaskResultOut(
                    id=r.id,
                    worker_id=r.worker_id,
                    result_data=[ResultItem.model_validate(item) for item in r.result_data],
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                    rationale=r.rationale,
                )
                for r in results
            ]
        )
    )


@router.put("/{task_id}/score", response_model=TaskScoreOut)
def report_score(
    task_id: str,
    body: TaskScoreIn,
    miner: ApiKeyMiner,
    database: DatabaseDep,
) -> TaskScoreOut:
    """The validator's score for the task (0..1), as the miner received it in a
    ``ScoringResult``; a repeat replaces it. The workers who answered the task see it."""
    with database.session() as db:
        task = tasks.record_score(db, miner, task_id, body.score)
        assert task.scored_at is not None  # record_score has just set it
        return TaskScoreOut(task_id=task.id, score=body.score, scored_at=task.scored_at)


@router.get("/{task_id}", response_model=TaskStatusOut)
def task_status(task_id: str, miner: ApiKeyMiner, database: DatabaseDep) -> TaskStatusOut:
    with database.read_session() as db:
        view = tasks.get_task_status(db, miner, task_id)
    return wired(view, TaskStatusOut)
