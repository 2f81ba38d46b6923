"""Miner log-in, API and subscription keys, invite links, and the miner dashboard."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Path, Query, Request, Response

from commons.dojo_wire import (
    ChallengeOut,
    InviteOut,
    KeyCreatedOut,
    KeyDisabledOut,
    KeyListOut,
    KeyOut,
    MinerChallengeIn,
    MinerSessionIn,
    SessionOut,
    iso,
)
from commons.platform_contract import MINER_COOKIE
from dojo.platform.http.deps import (
    LOGIN_RATE_LIMIT,
    BearerCredentials,
    CurrentMiner,
    DatabaseDep,
    RegistryDep,
    RowId,
    SettingsDep,
    session_token,
    set_session_cookie,
)
from dojo.platform.schemas import (
    DashboardOut,
    InviteRevokedOut,
    TeamMessageIn,
    TeamMessageOut,
    TeamOut,
    wired,
)
from dojo.platform.services import auth, keys, team
from dojo.platform.services.dashboard import MAX_PAGE_SIZE, PAGE_SIZE, TaskFilter, miner_dashboard
from dojo.platform.storage.models import KEY_KIND_API, KEY_KIND_SUBSCRIPTION, ApiKey

router = APIRouter(prefix="/api/v1/miner", tags=["miner"])


@router.post("/challenge", response_model=ChallengeOut, dependencies=[LOGIN_RATE_LIMIT])
def miner_challenge(
    body: MinerChallengeIn,
    database: DatabaseDep,
    settings: SettingsDep,
) -> ChallengeOut:
    with database.session() as db:
        challenge = auth.miner_challenge(db, settings, body.hotkey)
    return wired(challenge, ChallengeOut)


@router.post(
    "/session",
    response_model=SessionOut,
    dependencies=[LOGIN_RATE_LIMIT],
    responses={
        401: {"description": "bad signature, unknown, used or expired nonce"},
        403: {"description": "hotkey not registered"},
    },
)
def miner_session(
    body: MinerSessionIn,
    response: Response,
    database: DatabaseDep,
    settings: SettingsDep,
    registry: RegistryDep,
) -> SessionOut:
    with database.session() as db:
        opened = auth.open_miner_session(db, settings, registry, body.hotkey, body.nonce, body.signature)
    set_session_cookie(response, settings, MINER_COOKIE, opened.token, settings.miner_session_ttl_seconds)
    return SessionOut(token=opened.token, expires_at=opened.expires_at)


@router.post("/logout", status_code=204)
def miner_logout(
    request: Request,
    response: Response,
    _miner: CurrentMiner,
    bearer: BearerCredentials,
    database: DatabaseDep,
) -> None:
    token = session_token(request, bearer, MINER_COOKIE)[0] or ""
    with database.session() as db:
        auth.end_miner_session(db, token)
    response.delete_cookie(MINER_COOKIE)


@router.get("/me")
def miner_me(miner: CurrentMiner) -> dict[str, str]:
    return {"hotkey": miner.hotkey}


@router.post("/invites", response_model=InviteOut, status_code=201)
def create_invite(
    miner: CurrentMiner,
    database: DatabaseDep,
    settings: SettingsDep,
) -> InviteOut:
    """A one-time invite link to the miner's team (no wallet needed to join)."""
    with database.session() as db:
        url = auth.create_invite(db, settings, miner.hotkey)
        _miner, expires_at = auth.look_at_invite(db, url.rsplit("/", 1)[1])
    return InviteOut(url=url, expires_at=expires_at)


@router.get("/dashboard", response_model=DashboardOut)
def dashboard(
    miner: CurrentMiner,
    database: DatabaseDep,
    limit: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="tasks per page"),
    cursor: str | None = Query(None, max_length=200, description="nextCursor of the page before"),
    status: Literal["open", "complete", "expired"] | None = Query(
        None, description="only tasks in this state"
    ),
    since: date | None = Query(None, description="only tasks created on this UTC day or later"),
    until: date | None = Query(None, description="only tasks created on this UTC day or earlier"),
) -> DashboardOut:
    """The miner's tasks, newest first, a page at a time, each with its answers and the
    flags workers raised on it; totals over all its tasks."""
    filters = TaskFilter(state=status, since=since, until=until)
    with database.read_session() as db:
        view = miner_dashboard(db, miner, limit=limit, cursor=cursor, filters=filters)
    return wired(view, DashboardOut)


@router.get("/team", response_model=TeamOut)
def team_members(miner: CurrentMiner, database: DatabaseDep) -> TeamOut:
    """The workers on the miner's team (and those who answered before they left), with
    their counts, times, agreement and scores; the invite links and their use."""
    with database.read_session() as db:
        view = team.team_view(db, miner)
    return wired(view, TeamOut)


@router.delete("/team/{worker_id}", status_code=204)
def remove_team_member(
    miner: CurrentMiner,
    database: DatabaseDep,
    worker_id: str = Path(min_length=1, max_length=64, description="the worker's pseudonym"),
) -> None:
    """Take a worker off the team: access ends at once, its holds are let go, its answers stay."""
    with database.session() as db:
        team.remove_worker(db, miner, worker_id)


@router.delete("/invites/{invite_id}", response_model=InviteRevokedOut)
def revoke_invite(miner: CurrentMiner, database: DatabaseDep, invite_id: RowId) -> InviteRevokedOut:
    """Take back an unused invite link; 409 once it was used."""
    with database.session() as db:
        invite = team.revoke_invite(db, miner, invite_id)
    return InviteRevokedOut(id=invite.id, revoked=True)


@router.put("/team-message", response_model=TeamMessageOut)
def team_message(body: TeamMessageIn, miner: CurrentMiner, database: DatabaseDep) -> TeamMessageOut:
    """What the miner tells its team (how and what it pays, where to ask), shown to its
    workers and on its invite links; blank clears it."""
    with database.session() as db:
        row = team.set_team_message(db, miner, body.message)
        return TeamMessageOut(message=row.team_message, updated_at=iso(row.team_message_at))


def _key_out(row: ApiKey, in_use: int | None = None) -> KeyOut:
    return KeyOut(
        id=row.id,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        disabled=row.disabled_at is not None,
        in_use=row.id == in_use,
    )


def _key_routes(path: str, kind: str) -> None:
    label = kind.replace("subscription", "subscription key").replace("api", "API key")

    @router.post(path, response_model=KeyCreatedOut, name=f"create {label}", status_code=201)
    def create(miner: CurrentMiner, database: DatabaseDep) -> KeyCreatedOut:
        with database.session() as db:
            row, key = keys.create_key(db, miner, kind)
        return KeyCreatedOut(id=row.id, key=key, prefix=row.prefix, created_at=row.created_at)

    @router.get(path, response_model=KeyListOut, name=f"list {label}s")
    def list_(miner: CurrentMiner, database: DatabaseDep) -> KeyListOut:
        with database.read_session() as db:
            rows = keys.list_keys(db, miner, kind)
            in_use = keys.key_in_use(rows)
            return KeyListOut(keys=[_key_out(row, in_use) for row in rows])

    @router.delete(path + "/{key_id}", response_model=KeyDisabledOut, name=f"disable {label}")
    def disable(miner: CurrentMiner, database: DatabaseDep, key_id: RowId) -> KeyDisabledOut:
        with database.session() as db:
            row = keys.disable_key(db, miner, kind, key_id)
        return KeyDisabledOut(id=row.id, disabled=True)


_key_routes("/api-keys", KEY_KIND_API)
_key_routes("/subscription-keys", KEY_KIND_SUBSCRIPTION)
