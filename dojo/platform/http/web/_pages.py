"""The web UI's page routes: server-rendered HTML over the platform's service modules.

Pages only read; every change (log-in, keys, answers) goes through the JSON API from the
page's JavaScript with the CSRF header, so there is one code path for each write. The one
exception is the invite link: opening it only shows the invitation (a chat app's link
preview must not spend it), and its form, with the CSRF token, joins the team; a new
worker's recovery code then rides a short-lived HttpOnly cookie to ``/welcome``, which
shows it once and deletes the cookie. The routes are plain ``def`` functions: the
services use a blocking SQLAlchemy session, which FastAPI runs in its thread pool, never
on the event loop.

Content-Security-Policy: pages allow scripts from the platform only, and no page holds an
inline script or event handler. A completion's live preview, which runs the completion's
own inline scripts, is a document of its own (``/tasks/{id}/preview/{n}``) framed by the
task page: it is served under its own policy, which forbids every fetch and gives it an
opaque origin (``sandbox allow-scripts``, as the iframe's ``sandbox`` attribute does too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from commons.platform_contract import MINER_COOKIE, WORKER_COOKIE
from dojo.platform.errors import PlatformError
from dojo.platform.http.api.worker import set_worker_cookie
from dojo.platform.http.deps import LOGIN_RATE_LIMIT, OptionalWorker
from dojo.platform.http.web import _views as views
from dojo.platform.http.web._render import PREVIEW_HEADER_CSP
from dojo.platform.http.web._templating import CONTENT_TYPES, render, static_body
from dojo.platform.security import check_csrf
from dojo.platform.services import auth as auth_service

# A new invited worker's recovery code, from the invite's POST to the one page that shows
# it (Post/Redirect/Get: a reload does not re-send the spent invite). HttpOnly, short-lived,
# and deleted by that page, so the code is shown once.
RECOVERY_COOKIE = "dojo_recovery_once"
RECOVERY_COOKIE_SECONDS = 600
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Visitor:
    """Who is looking at a page: a worker, a miner (one browser can be both), or nobody."""

    worker: Any = None
    miner: Any = None


@contextmanager
def _read(request: Request) -> Iterator[Session]:
    with request.app.state.db.read_session() as db:
        yield db


def _visitor(request: Request, db: Session) -> Visitor:
    from dojo.platform.services import auth

    worker_token = request.cookies.get(WORKER_COOKIE)
    miner_token = request.cookies.get(MINER_COOKIE)
    return Visitor(
        worker=auth.worker_for_token(db, worker_token) if worker_token else None,
        miner=auth.miner_for_token(db, miner_token) if miner_token else None,
    )


def _page(
    request: Request,
    template: str,
    visitor: Visitor,
    status_code: int = 200,
    csp: str = PAGE_CSP,
    **context: Any,
) -> HTMLResponse:
    worker = visitor.worker
    miner = visitor.miner
    body = render(
        template,
        worker=views.worker_badge(worker) if worker is not None else None,
        miner=views.miner_badge(miner) if miner is not None else None,
        csrf_token=getattr(request.state, "csrf_token", ""),
        title=context.pop("title", "Dojo"),
        active=context.pop("active", ""),
        **context,
    )
    headers = {"Content-Security-Policy": csp, "Cache-Control": "no-store"}
    return HTMLResponse(body, status_code=status_code, headers=headers)


def _message(
    request: Request,
    visitor: Visitor,
    status_code: int,
    heading: str,
    message: str,
    link: tuple[str, str] | None = None,
    hint: str | None = None,
) -> HTMLResponse:
    return _page(
        request,
        "message.html",
        visitor,
        status_code=status_code,
        title=heading,
        heading=heading,
        message=message,
        link={"href": link[0], "text": link[1]} if link else None,
        hint=hint,
    )


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


# Where a visitor who is not logged in as the one a page is for goes instead.
LOGIN_PAGES = {"worker": "/login", "miner": "/miner/login"}
# What a page says when what it shows is refused (a PlatformError): a heading, and a link on.
PROBLEMS = {
    "answer.html": ("Answer not found", ("/history", "Your work")),
    "task.html": ("Task not available", ("/tasks", "Back to tasks")),
    "miner.html": ("Page not found", ("/miner", "Latest tasks")),  # a cursor the page did not give
}


def _own_page(
    request: Request, who: str, template: str, build: Callable[[Session, Any], dict[str, Any]]
) -> Response:
    """A page of the logged-in worker's or miner's (``who``) own, of what ``build(db,
    account)`` gives; a visitor who is not logged in as one is sent to log in. A
    :class:`PlatformError` from ``build`` is shown in a message (:data:`PROBLEMS`), on the
    pages that expect one."""
    with _read(request) as db:
        visitor = _visitor(request, db)
        account = getattr(visitor, who)
        if account is None:
            return RedirectResponse(LOGIN_PAGES[who], status_code=303)
        try:
            context = build(db, account)
        except PlatformError as exc:
            if template not in PROBLEMS:
                raise
            heading, link = PROBLEMS[template]
            return _message(request, visitor, exc.status_code, heading, exc.detail, link)
    return _page(request, template, visitor, **context)


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    body = static_body(name)
    if body is None:
        return Response("no such file", status_code=404, media_type="text/plain")
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return Response(
        body,
        media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
        # URLs carry the content's hash (static_url), so a cached copy is never stale.
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.get("/")
def home(request: Request) -> Response:
    with _read(request) as db:
        visitor = _visitor(request, db)
    if visitor.worker is not None:
        if request.cookies.get(RECOVERY_COOKIE):
            return RedirectResponse("/welcome", status_code=303)
        return RedirectResponse("/tasks", status_code=303)
    if visitor.miner is not None:
        return RedirectResponse("/miner", status_code=303)
    return _to_login(request)


@router.get("/login")
def login(request: Request) -> Response:
    with _read(request) as db:
        visitor = _visitor(request, db)
    return _page(request, "login.html", visitor, title="Log in", active="login")


@router.get("/miner/login")
def miner_login(request: Request) -> Response:
    with _read(request) as db:
        visitor = _visitor(request, db)
    return _page(request, "miner_login.html", visitor, title="Miner sign-in", active="login")


@router.get("/keys")
def subscription_keys(request: Request) -> Response:
    return _own_page(request, "worker", "keys.html", views.keys_page)


@router.get("/tasks")
def task_list(request: Request) -> Response:
    return _own_page(request, "worker", "tasks.html", views.task_list_page)


@router.get("/history")
def history(request: Request, page: int = 1) -> Response:
    """The worker's own submissions, its totals, and its recovery code (invited workers)."""
    number = max(1, min(page, 1_000_000))
    return _own_page(request, "worker", "history.html", partial(views.history_page, page=number))


@router.get("/history/{task_id}")
def answer(request: Request, task_id: str) -> Response:
    """One of the worker's answers, read-only (from *Your work*)."""
    return _own_page(request, "worker", "answer.html", partial(views.answer_page, task_id=task_id))


@router.get("/welcome")
def welcome(request: Request) -> Response:
    """A new invited worker's recovery code, once: the page deletes the cookie it came in."""
    with _read(request) as db:
        visitor = _visitor(request, db)
    if visitor.worker is None:
        return _to_login(request)
    code = request.cookies.get(RECOVERY_COOKIE) or None
    response = _page(
        request,
        "welcome.html",
        visitor,
        title="Welcome",
        active="tasks",
        recovery_code=code,
        invited=visitor.worker.address is None,
    )
    response.delete_cookie(RECOVERY_COOKIE, path="/")
    return response


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: str) -> Response:
    return _own_page(request, "worker", "task.html", partial(views.task_detail_page, task_id=task_id))


@router.get("/tasks/{task_id}/preview/{label}")
def task_preview(request: Request, task_id: str, label: str) -> Response:
    """The live preview of one response of a task (the task page and a read-only answer
    frame it), for a worker who may see the task or answered it: the response's files as
    one document, under its own policy."""
    with _read(request) as db:
        visitor = _visitor(request, db)
        if visitor.worker is None:
            return Response("log in to see this preview", status_code=401, media_type="text/plain")
        try:
            document = views.task_preview_document(db, visitor.worker, task_id, label)
        except PlatformError as exc:
            return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
    if document is None:
        return Response(
            f"response {label} of this task has no live preview", status_code=404, media_type="text/plain"
        )
    headers = {
        "Content-Security-Policy": PREVIEW_HEADER_CSP,
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(document, headers=headers)


# An image completion is served with its own type only, never sniffed, never run.
IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=86400, immutable",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Content-Disposition": "inline",
}


def _image(read: Any, request: Request, task_id: str, cid: str, who: str) -> Response:
    with _read(request) as db:
        visitor = _visitor(request, db)
        account = getattr(visitor, who)
        if account is None:
            return Response("log in to see this image", status_code=401, media_type="text/plain")
        try:
            data, media_type = read(db, account, task_id, cid)
        except PlatformError as exc:
            return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
    return Response(data, media_type=media_type, headers=IMAGE_HEADERS)


@router.get("/tasks/{task_id}/images/{cid}")
def task_image(request: Request, task_id: str, cid: str) -> Response:
    """An image completion of a task the logged-in worker may see."""
    return _image(views.task_image_bytes, request, task_id, cid, "worker")


@router.get("/miner/tasks/{task_id}/images/{cid}")
def miner_task_image(request: Request, task_id: str, cid: str) -> Response:
    """An image completion of one of the logged-in miner's tasks (the dashboard's thumbnails)."""
    return _image(views.miner_task_image_bytes, request, task_id, cid, "miner")


@router.get("/miner")
def miner_home(
    request: Request,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
) -> Response:
    dashboard = partial(views.miner_dashboard_page, status=status, since=since, until=until, cursor=cursor)
    return _own_page(request, "miner", "miner.html", dashboard)


@router.get("/miner/team")
def miner_team(request: Request) -> Response:
    return _own_page(request, "miner", "team.html", views.team_page)


# A used invite link is what someone who joined with it, then logged out, opens again.
INVITE_RECOVERY_HINT = (
    "Joined with this link before? Log in with the recovery code you were given when you joined:"
    " it brings back the same account, with your work so far."
)


def _invite_problem(request: Request, visitor: Visitor, exc: PlatformError) -> HTMLResponse:
    return _message(
        request,
        visitor,
        exc.status_code,
        "Invite link not valid",
        exc.detail,
        ("/login#recover", "Log in"),
        hint=None if visitor.worker is not None else INVITE_RECOVERY_HINT,
    )


@router.get("/invite/{token}")
def invite(request: Request, token: str) -> Response:
    """The invitation: who invites, and a form to join. Reading it spends nothing."""
    with _read(request) as db:
        visitor = _visitor(request, db)
        try:
            miner, expires_at = auth_service.look_at_invite(db, token)
        except PlatformError as exc:
            return _invite_problem(request, visitor, exc)
    return _page(
        request,
        "invite.html",
        visitor,
        title="Join a team",
        token=token,
        miner_hotkey=miner.hotkey,
        team_message=miner.team_message,
        expires=expires_at.strftime("%Y-%m-%d %H:%M"),
    )


@router.post("/invite/{token}", dependencies=[LOGIN_RATE_LIMIT])
async def join_by_invite(request: Request, token: str, worker: OptionalWorker) -> Response:
    """Spend the invite: the visitor's worker account (or a new one) joins the miner's team."""
    if worker is None:  # a new visitor's form: the CSRF cookie and field must agree all the same
        await check_csrf(request)
    database = request.app.state.db
    settings = request.app.state.settings

    def join() -> Response:
        try:
            with database.session() as db:
                current = db.merge(worker, load=True) if worker is not None else None
                _worker, opened, recovery_code = auth_service.accept_invite(db, settings, token, current)
        except PlatformError as exc:
            with _read(request) as db:
                return _invite_problem(request, _visitor(request, db), exc)
        response = RedirectResponse("/", status_code=303)
        if opened is not None:
            set_worker_cookie(response, settings, opened.token)
        if recovery_code is not None:  # a new worker: "/" shows it its code first (/welcome)
            response.set_cookie(
                RECOVERY_COOKIE,
                recovery_code,
                max_age=RECOVERY_COOKIE_SECONDS,
                httponly=True,
                samesite="strict",
                secure=settings.secure_cookies,
            )
        return response

    return await run_in_threadpool(join)


__all__ = ["PAGE_CSP", "router"]
