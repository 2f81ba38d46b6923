"""The queue's two hottest calls answered in plain ASGI: next task and submit, bearer-authenticated.

Every worker loops ``POST /api/v1/worker/tasks/next`` → ``POST …/tasks/{id}/result``, and
FastAPI's routing, dependency solving and request/response objects cost more CPU than the
queue's database work. :class:`QueueHotPath` sits in front of the FastAPI application,
inside :class:`SecurityMiddleware` (so body caps, security headers and the CSRF cookie
apply as everywhere), and answers those two calls itself only when the request is the
ordinary one: a ``Bearer`` session token of a live worker session and, for a submission, a
JSON body that :class:`SubmitResultIn` accepts. A body :func:`load_json` refuses (not
JSON, too deep, a non-finite number) is answered here with the 400 the routes would give.
Anything else — no or unknown credentials, a cookie session (which needs the CSRF check),
a body the model refuses — goes on to the FastAPI routes unchanged (the body already read
is handed on), so every error keeps its one wording; a bearer token found unknown or expired
is named in the scope (``deps.UNKNOWN_BEARER``), so that the routes answer 401 without
looking it up a second time. The routes remain the documented API (OpenAPI) and run the
same functions (``api.worker``).

Where the queue's transaction runs: on PostgreSQL, on the event loop, as one call of a
function in the database on a pool of async connections (:class:`~dojo.platform.services.pgqueue.PostgresQueue`:
one round trip a request, no thread). On SQLite, on the event loop itself, in the loop's group commit
(``Database.write_group``): a claim or a submission is some 0.1 ms of SQLite, writers take
turns anyway, and a thread would only add GIL hand-offs — the sqlite3 module lets go of
the GIL around every statement, and each time the database thread then waits for the busy
loop to let go of it again. When another writer holds the lock (a page route, the miner
API, another process), the work goes to the database thread, which waits its turn.

Where a request's time goes on PostgreSQL (``benchmarks/platform.py``, 200 workers, 2 cores
shared with the database server, the client and other work; CPU time per request, which
other load disturbs far less than throughput):

- CPU per request: the database backends 0.74 ms (``database_cpu_ms_per_request``: a claim
  0.86 ms, a submission 0.62 ms, measured one call at a time on one connection each), this
  server 0.43–0.6 ms, the benchmark's client 0.09 ms. A submission is two requests, so some
  2.6–2.9 ms of CPU: on 2 cores a ceiling of about 700–770 submissions/s, whatever the
  latency, which is what quiet runs reached (595–653/s). 1 000/s needs at most 2 ms.
- The database's share is mostly the claim's search (``dojo_next_task``): the soonest open
  tasks it walks include every task whose places are all held by other workers (67 of the
  83 rows one claim read with 200 workers), each counted from ``assignments``; the hold's
  ``INSERT … ON CONFLICT`` is the next largest part (revision 0009 now passes over most of
  those rows without counting: below). Lock waits are not the cause: sampling
  ``pg_stat_activity`` every 10 ms found the 16 connections idle 87 % of the time, waiting
  for the WAL (``LWLock:WALWrite``, ``IO:WALSync``) 10 %, for a row lock 1.3 %.
- Round trips: one a request, plus a session look-up per worker and process every 4–5 s
  (the session cache) and the recent lead times every 30 s: 1.01–1.07 a request. Waiting
  for a free connection is rare (``Connections.take`` under 1 % of the samples).
- This server's share (cProfile and py-spy of the server under load, callgrind of the
  application without uvicorn): the driver (psycopg: query conversion, cursor, result
  columns) is the largest part, then uvicorn's HTTP (parsing, the request's task, two
  writes per response: head, then body), then JSON and the answer's check; the security
  middleware, the session cache and the routing here are a few per cent each. FastAPI is
  not on this path.
- Wall time is not CPU time: on a loaded machine a write to a local socket wakes its reader
  (the database backend, or the client), which may take the core at once. In the server's
  profile 40 % of the samples sat in psycopg's ``send_query_prepared`` and 16 % in uvicorn's
  write of a response head, at some 3 ms a call under a load average of 10–14, while the
  whole process used 0.6 ms of CPU a request: the one event loop waits its turn for the
  CPU. A second server process keeps a loop running meanwhile, hence its gain.

Cut here: the queue's connections keep one cursor each (:class:`~dojo.platform.services.pgqueue.Connections`)
rather than making one per call, and no call asks the cursor for its result's description
(built afresh each time) before fetching. The driver's share of a call, measured alone: 145–166
→ 97–120 µs of CPU. The application's handling of a request (this front, the queue and the
driver, without uvicorn; 8 workers looping claim and submit, 1 600 requests, ``valgrind
--tool=callgrind``, old and new in the same run): 701 000–716 000 → 611 000 instructions a
request, 13 % fewer. End to end, within the benchmark's noise: old and new alternated at a
load average of 5 gave 618 and 621 submissions/s with one process (607 and 568 with two),
the server 0.41 ms of CPU a request both, the backends 0.63–0.76 ms.

Cut in revision 0009 (``tasks.full_until``): the claim whose hold takes a task's last place
marks the task until the first of its holds lapses, and the search passes over a marked task
before counting its holds; triggers clear the mark whenever a place comes free sooner (a
holder's answer takes the place its hold had, so it keeps the mark). Measured on this
machine under other work (load average 4–10), old and new alternated:

- The search, read with ``EXPLAIN (ANALYZE, BUFFERS)`` every 2 s during the HTTP benchmark
  (one server process, 200 workers): 0008 walked 42–63 tasks and counted the holds of each
  (175–326 buffers in the count's index scans alone, 186–334 in all). Fewer tasks are wholly
  held at any instant than the 67 above suggested: a benchmark worker submits as soon as it
  claims, so of the 100 soonest open tasks 8–36 were full by holds at a sample.
- 0009, the same way: the holds are counted for the 16 open tasks the search returns and no
  others (43–68 buffers in the count's scans, 52–77 in all), 7–37 marked tasks passed over
  a claim. A claim alone (200 workers each holding a task, answering in turn on one
  connection, one call at a time): 319–343 → 118–137 buffers, 0.71–0.73 → 0.49–0.51 ms of
  the backend's CPU; a submission unchanged (0.36–0.41 ms).
- End to end (``benchmarks/platform.py``, 200 workers, four pairs, 0008 then 0009 in each,
  load average 2–10): ``database_cpu_ms_per_request`` with one server process 0.78, 0.79,
  0.73, 0.68 (0008) → 0.67, 0.71, 0.82, 0.79 (0009), no gain beyond the noise; with two
  0.80, 0.77, 0.73, 0.77 → 0.66, 0.68, 0.69, 0.74, some 10 % less. Submissions/s with two
  processes 571, 676, 675, 674 → 807, 767, 724, 700. The server's CPU per request is
  unchanged (0.44–0.58 ms); no errors, no task over-filled. Still short of 1 000/s: the
  database's share, some 1.4–1.5 ms a submission, is most of the 2 ms a submission may cost.
- What did not pay: marking in the submission instead (it already writes the task row, so
  no write of the claim's own) gave 0.72 and 0.83 in the same run, as its count of the
  others' holds costs every submission; a table ``fillfactor`` of 80 (tried on an earlier
  form of the mark) gained nothing measurable. A third of the task rows' updates were HOT
  in a run (``num_results`` is in ``ix_tasks_open``'s predicate, so its updates never are;
  the mark's are when the page has room). The rest of the database's time is in the writes (a claim inserts a hold, a
  submission inserts a result and updates the task and the hold, each touching three or
  four indexes) and in each statement's own overhead.

Cut after 0009: fewer connections. The database's CPU for the same call grows with the
connections that run calls at once, on a machine whose two cores also run this server and
the client: ``database_cpu_ms_per_request`` 0.45–0.48 with 3–4 connections, 0.44–0.50 with
6, 0.48–0.54 with 8, 0.54–0.62 with 16, 0.63 with two processes of 16. What grows was not
isolated (a ``perf`` profile of the backends is flat: hash look-ups, heap and index visits,
executor set-up); more backends than cores likely means more of them switched out mid-call
and more claims meeting the same soonest tasks. Too few connections starve the event loop
instead (3–4: 814–869 submissions/s against 894–946 with 6–8). The default went from 16 to 8
for one process and 4 for each of several (six pairs of two processes in turns, 4 against 8:
919, 905, 890, 936, 929, 961 against 871, 819, 908, 872, 921, 921/s). Quiet machine, 30 s
runs taken in turns: one process 845 and 879/s (16) against 946, 894 (6) and 940, 901 (8);
two processes 941/s with p99 301 ms (16) against 819–1 036/s (8, twelve runs over the
afternoon, median 957) and 890–1 035/s (4, six runs, median 922), p99 189–230 ms but once
427. Not kept from the same session: a claim's spread of 8 tasks instead of 16 (two
processes: 973 and 1 001 against 978 and 1 019/s, and 3 errors), and one write of a
response's head and body together instead of two (uvicorn writes them apart; one process:
939, 910, 911 against 958, 876, 865/s: within the noise).

Where the remaining gap is (the benchmark's ``machine_busy_share`` and
``machine_cpu_ms_per_submission``: the whole machine's CPU in the measured window, the
kernel and the database server's own processes included): one process left the cores 16 %
idle (0.84 busy) at 1.82 ms of CPU a submission, 911/s; two kept them busy (0.99–0.996) at
2.11–2.42 ms a submission, 819–940/s in the same hour. One process is bound by the
hand-offs between its one event loop and the database, not by CPU; a second process fills
the idle time but spends some 0.3 ms more a submission (in that run the database 0.50 →
0.60 ms a request, the server 0.33 → 0.37), so on 2 cores 1 000/s needs either one process that keeps the cores
busy or two that cost what one does.

Tried after 0009 and not kept, measured with ``benchmarks/platform_queue_calls.py`` (the two
functions called as the platform calls them, one connection, one call at a time, 200 workers
holding, 4 000 calls; CPU of the backend; quiet machine, load average 1.0):

- Fewer index writes: ``(task_id, worker_id)``'s unique constraint carrying status and end
  (``INCLUDE``) in place of ``ix_assignments_task_worker_state``, so that a hold's insert or
  update writes three index entries instead of four. Three alternated pairs: a claim 0.48,
  0.36, 0.43 ms before against 0.37, 0.41, 0.41 after; a submission 0.40, 0.32, 0.36 against
  0.37, 0.42, 0.37. Over HTTP (two pairs, load 2–6) no gain either. An index entry is a
  small part of a call; the functions' own statements are the rest.
- Grouping calls: 8 submissions, then 8 claims, in one transaction each (``--batch 8``) cost
  the backend 0.27 and 0.28 ms a submission against 0.37 and 0.34 one at a time, and 0.40
  and 0.35 ms a claim against 0.45 and 0.42: some 20 % and 10 % less, before the fewer round
  trips the server would make; some 0.1 ms of the 2.2 ms of CPU a submission costs end to
  end. Not built: a group keeps its task rows locked until its commit, and a claim keeps the
  locks of the tasks it looked at and waits for locks in its second pass, so a group of
  submissions and a claim (or two groups of claims) can wait for each other; PostgreSQL
  breaks such a deadlock after ``deadlock_timeout`` (1 s), a spike the p99 target cannot take.
- The first walk testing only the tasks' own rows (places, deadline, mark), with the others'
  holds and the worker's own answer found under the lock in one scan of the task's
  assignments (a ``perf`` profile of a two-process run put the walk's cursor at some 30 % of
  the backends' CPU). Three alternated pairs: a claim 0.425, 0.41, 0.407 ms before against
  0.492, 0.477, 0.47 after: the walk then hands out tasks wholly held by holds the mark does
  not cover, and each one tried costs a row lock and a scan. Keeping the count of the
  others' holds in the walk and moving only the worker's own test under the lock: 0.41 and
  0.372 against 0.372 and 0.387, nothing.
- A spread of 4 instead of 16: a claim 0.385 and 0.375 ms against 0.315 and 0.343 (one
  connection, where no two claims meet); the spread of 8 is above.
- The server's young-generation garbage collection less often (``gc.set_threshold(20000, 20,
  20)`` after :func:`~template.heap.freeze_heap`): one process, three pairs of 20 s runs in
  turns, 1 011–1 024 against 1 031–1 039 submissions/s, the server 0.30–0.31 against
  0.29–0.30 ms of CPU a request: within the noise.

Cut in revision 0010: the claim's cost no longer grows with the worker's history. Its plan,
made once per connection, tested "not answered, skipped or held by this worker" as an
anti-join: every assignment the worker ever had, read on each claim (in the plan made after
``ANALYZE``), or, in a plan made while the tables were nearly empty, a read of the whole of
``assignments`` for each task walked. The test is now a sub-query per task walked (``OFFSET 0``
keeps PostgreSQL from making it a join), answered from the ``(task_id, worker_id)`` index, and
both functions plan with their indexes (``enable_seqscan = off``: every statement in them has
one). ``benchmarks/platform_queue_calls.py``'s loop, one connection, 200 workers, six windows
of 3 000 calls after ``ANALYZE`` and a ``VACUUM`` after the fourth: a claim 0.387, 0.450, 0.480,
0.507, 0.537, 0.593 ms of the backend's CPU before, 0.350–0.403 in every window after; in the
window before ``ANALYZE``, 3.2 ms before, 0.40 after (``OFFSET 0`` alone: 63 ms, hence the
setting). End to end, in turns: one process 962 → 1 074 submissions/s, two 1 013 → 1 083, the
database 0.48–0.50 → 0.39–0.43 ms of CPU a request, p99 200–203 → 178–182 ms.

SQLite, the same way (the application alone, 6 000 requests, three alternating pairs): 189–200
µs of CPU a request at commit 94b8c0b, 169–198 µs now; the full benchmark, alternated in one
run, gave the server 0.26–0.37 and 0.28–0.35 ms a request: no regression.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException

from dojo.platform.errors import PlatformError
from dojo.platform.http.deps import UNKNOWN_BEARER
from dojo.platform.schemas import SubmitResultIn
from dojo.platform.security import (
    ASGIApp,
    Disconnected,
    Receive,
    Scope,
    Send,
    is_json_content_type,
    load_json,
    read_body,
    replay,
)
from dojo.platform.services.pgqueue import PostgresQueue
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database
from dojo.platform.storage.groupcommit import WriteBusy, WriteGroup

NEXT_PATH = "/api/v1/worker/tasks/next"
_RESULT_PATH = re.compile(r"^/api/v1/worker/tasks/([^/]+)/result$")
_JSON = b"application/json"


def _json_body(payload: Any) -> bytes:
    # As starlette's JSONResponse renders it.
    return json.dumps(
        payload, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()


async def _respond(send: Send, status: int, payload: Any = None) -> None:
    if status == 204:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = _json_body(payload)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(eq=False)
class QueueHotPath:
    """Pure ASGI: next-task and submit for bearer sessions; everything else to ``app``.

    ``claim(db, settings, worker)`` and ``submit(db, settings, worker, task_id, data,
    lead_time=…, rationale=…)`` (``queue.next_task``, ``queue.submit_result``) run inside a write
    transaction on SQLite; on PostgreSQL ``postgres`` answers (and looks up sessions).
    """

    app: ASGIApp
    database: Database
    settings: PlatformSettings
    sessions: Any
    executor: Executor
    lookup_worker: Callable[[str], Any]
    claim: Callable[..., Any]
    submit: Callable[..., Any]
    render_task: Callable[[Any], dict[str, Any]]
    render_submitted: Callable[[Any], dict[str, Any]]
    postgres: PostgresQueue | None = None
    _group: WriteGroup | None = field(init=False)

    def __post_init__(self) -> None:
        self._group = self.database.write_group() if self.database.is_sqlite else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == NEXT_PATH:
            task_id = None
        else:
            match = _RESULT_PATH.match(path) if path.endswith("/result") else None
            if match is None:
                await self.app(scope, receive, send)
                return
            task_id = match.group(1)
        token = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and token is None:
                scheme, _, credentials = value.decode("latin-1").partition(" ")
                token = credentials if scheme.lower() == "bearer" and credentials else ""
            elif name == b"content-type" and not content_type:
                content_type = value
        try:
            worker = await self._worker(token) if token else None
        except PlatformError as exc:  # the database is unavailable
            await _respond(send, exc.status_code, {"detail": exc.detail})
            return
        if worker is None:  # no, unknown or expired bearer session, or a cookie session
            if token:
                scope[UNKNOWN_BEARER] = token  # the routes answer 401 without a second look-up
            await self.app(scope, receive, send)
            return
        if task_id is None:
            try:
                if self.postgres is not None:
                    view = await self.postgres.next_task(self.settings, worker)
                else:
                    view = await self._queue_work(self.claim, worker)
            except PlatformError as exc:
                await _respond(send, exc.status_code, {"detail": exc.detail})
                return
            if view is None:
                await _respond(send, 204)
            else:
                await _respond(send, 200, self.render_task(view))
            return

        try:
            body = await read_body(receive)
        except HTTPException as exc:  # the body cap of SecurityMiddleware
            await _respond(send, exc.status_code, {"detail": exc.detail})
            return
        except Disconnected:  # the client went away; nothing to answer
            return
        parsed = None
        if body and is_json_content_type(content_type):
            try:
                payload = load_json(body)
            except PlatformError as exc:
                await _respond(send, exc.status_code, {"detail": exc.detail})
                return
            try:
                # As FastAPI does: the model in Python mode.
                parsed = SubmitResultIn.model_validate(payload)
            except ValidationError:
                parsed = None
        if parsed is None:  # let FastAPI word the error
            await self.app(scope, replay(body, receive), send)
            return
        data = [item.model_dump() for item in parsed.result_data]
        try:
            if self.postgres is not None:
                done = await self.postgres.submit_result(
                    self.settings,
                    worker,
                    task_id,
                    data,
                    lead_time=parsed.lead_time,
                    rationale=parsed.rationale,
                )
            else:
                submit = partial(self.submit, lead_time=parsed.lead_time, rationale=parsed.rationale)
                done = await self._queue_work(submit, worker, task_id, data)
        except PlatformError as exc:
            await _respond(send, exc.status_code, {"detail": exc.detail})
            return
        await _respond(send, 200, self.render_submitted(done))

    async def _queue_work(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(db, settings, *args)`` in a write transaction: on SQLite the loop's group
        commit unless another writer holds the lock, else on the database threads (see the
        module docstring)."""
        if self._group is not None:
            try:
                return await self._group.run(lambda db: work(db, self.settings, *args))
            except WriteBusy:
                pass
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, self._in_transaction, work, *args
        )

    def _in_transaction(self, work: Callable[..., Any], *args: Any) -> Any:
        with self.database.raw_write() as db:
            return work(db, self.settings, *args)

    async def _worker(self, token: str) -> Any:
        cached = self.sessions.get(token)
        if cached is not None:
            return cached
        if self.postgres is not None:
            worker = await self.postgres.lookup_worker(token)
        elif self.database.is_sqlite:  # a read: under WAL it never waits for a writer
            worker = self.lookup_worker(token)
        else:
            worker = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.lookup_worker, token
            )
        self.sessions.put(token, worker)
        return worker
