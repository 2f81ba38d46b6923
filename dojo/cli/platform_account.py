"""A miner's account on a worker platform, shared by the ``dojo`` shell and its subcommands.

It opens the wallet, logs in with the hotkey when no fresh session is cached, keeps the
session on disk (``~/.dojo/sessions/<platform>/<hotkey>.json``, mode 0600) and runs the
key and invite operations, logging in again once if the platform has forgotten a cached
session.

Its settings (:class:`AccountSettings`: ``DOJO_API_BASE_URL``, ``DOJO_SESSION_DIR``,
``DOJO_API_KEY``) are resolved by :mod:`template.config` as every other process's are: the
environment over ``.env`` over the defaults, the command's flags over both.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from commons.dojo_api import (
    DEFAULT_BASE_URL,
    AuthRejected,
    DojoAPI,
    Hotkey,
    KeyKind,
    normalize_base_url,
)
from commons.dojo_wire import InviteOut, KeyCreatedOut, KeyOut, SessionOut

DEFAULT_SESSION_DIR = "~/.dojo/sessions"
# A session this close to its expiry is treated as expired, so that no command starts
# with a token that dies halfway.
EXPIRY_MARGIN = timedelta(seconds=60)

_T = TypeVar("_T")


class AccountSettings(BaseModel):
    """What the account commands read besides their flags."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(
        DEFAULT_BASE_URL,
        description="the worker platform's URL",
        json_schema_extra={"env": "DOJO_API_BASE_URL"},
    )
    session_dir: str = Field(
        DEFAULT_SESSION_DIR,
        description="where miner sessions are kept",
        json_schema_extra={"env": "DOJO_SESSION_DIR"},
    )
    api_key: SecretStr | None = Field(
        None, description="the API key a miner started here uses", json_schema_extra={"env": "DOJO_API_KEY"}
    )


def account_settings(env_file: str | None = ".env", environ: dict[str, str] | None = None) -> AccountSettings:
    """The account settings from the environment and ``env_file`` (see :mod:`template.config`)."""
    from template.config import environment, resolve_values

    return resolve_values(AccountSettings, {}, environment(environ, env_file))


def default_platform_url() -> str:
    return account_settings().platform


def default_session_dir() -> Path:
    return Path(account_settings().session_dir).expanduser()


@dataclass(frozen=True)
class KeyKindInfo:
    kind: str  # the API path segment
    singular: str
    plural: str


KEY_KINDS: dict[str, KeyKindInfo] = {
    "api_key": KeyKindInfo(KeyKind.API, "API key", "API keys"),
    "subscription_key": KeyKindInfo(KeyKind.SUBSCRIPTION, "subscription key", "subscription keys"),
}


class KeyNotFound(LookupError):
    """No active key matches what the user typed."""


class MinerSessionFiles:
    """Miner sessions on disk, one file per platform and hotkey, readable by the owner only."""

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory).expanduser() if directory else default_session_dir()

    def path_for(self, platform: str, hotkey: str) -> Path:
        netloc = urlsplit(normalize_base_url(platform)).netloc.lower()
        safe_host = "".join(c if c.isalnum() or c in ".-" else "_" for c in netloc)
        return self.directory / safe_host / f"{hotkey}.json"

    def load(self, platform: str, hotkey: str, now: datetime | None = None) -> SessionOut | None:
        """The cached session if it is there, readable and not about to expire."""
        path = self.path_for(platform, hotkey)
        try:
            data = json.loads(path.read_text())
            session = SessionOut(token=data["token"], expires_at=data["expiresAt"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if data.get("platform") != normalize_base_url(platform) or data.get("hotkey") != hotkey:
            return None
        now = now or datetime.now(timezone.utc)
        if session.expires_at - EXPIRY_MARGIN <= now:
            return None
        return session

    def save(self, platform: str, hotkey: str, session: SessionOut) -> Path:
        """Write atomically with mode 0600 (directories 0700): the token is a credential."""
        path = self.path_for(platform, hotkey)
        # Directories made here are the owner's alone; an existing one (a --session-dir the
        # user chose) keeps its mode, the files in it are 0600 regardless.
        for directory in (self.directory, path.parent):
            if not directory.is_dir():
                directory.mkdir(mode=0o700, parents=True)
        payload = {
            "platform": normalize_base_url(platform),
            "hotkey": hotkey,
            "token": session.token,
            "expiresAt": session.expires_at.isoformat(),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(payload, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def clear(self, platform: str, hotkey: str) -> bool:
        path = self.path_for(platform, hotkey)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed


def wallet_names(wallet_path: Path | str) -> list[str]:
    """Wallets (coldkey directories) under a wallet path, for completion."""
    root = Path(wallet_path).expanduser()
    try:
        return sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and ((p / "coldkeypub.txt").exists() or (p / "hotkeys").is_dir())
        )
    except OSError:
        return []


def hotkey_names(wallet_path: Path | str, wallet_name: str) -> list[str]:
    """Hotkeys of one wallet, for completion; ``<name>pub.txt`` files are public halves, not hotkeys."""
    directory = Path(wallet_path).expanduser() / wallet_name / "hotkeys"
    try:
        files = {p.name for p in directory.iterdir() if p.is_file()}
    except OSError:
        return []
    return sorted(n for n in files if not (n.endswith("pub.txt") and n[: -len("pub.txt")] in files))


def find_key(keys: list[KeyOut], ref: str) -> KeyOut:
    """The active key whose id or prefix is ``ref``."""
    ref = ref.strip()
    active = [k for k in keys if not k.disabled]
    matches = [k for k in active if str(k.id) == ref] or [k for k in active if k.prefix == ref]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(f"{k.prefix} (id {k.id})" for k in active) or "none"
    if matches:
        raise KeyNotFound(f"{ref!r} matches {len(matches)} keys; give the id instead. Active keys: {shown}")
    raise KeyNotFound(f"no active key with id or prefix {ref!r}. Active keys: {shown}")


class MinerAccount:
    """One hotkey on one platform: a session when needed, and the key and invite operations."""

    def __init__(
        self,
        api: DojoAPI,
        hotkey: Hotkey,
        cache: MinerSessionFiles,
        on_event: Callable[[str], None] = lambda message: None,
    ):
        self.api = api
        self.hotkey = hotkey
        self.cache = cache
        self.session: SessionOut | None = None
        # Told when the account logs in on its own, so that the CLI can say why it is waiting.
        self.on_event = on_event

    @property
    def platform(self) -> str:
        return self.api.base_url

    @property
    def address(self) -> str:
        return self.hotkey.ss58_address

    async def authenticate(self) -> SessionOut:
        """Log in afresh and cache the session."""
        self.session = await self.api.login(self.hotkey)
        self.cache.save(self.platform, self.address, self.session)
        return self.session

    async def logout(self) -> bool:
        """End the session on the platform and forget it here; False if there was none."""
        session = self.session or self.cache.load(self.platform, self.address)
        self.session = None
        self.cache.clear(self.platform, self.address)
        if session is None:
            self.api.token = None
            return False
        self.api.token = session.token
        try:
            await self.api.logout()
        except AuthRejected:
            pass  # the platform had already ended it
        finally:
            self.api.token = None
        return True

    async def _ensure_session(self) -> bool:
        """Use the cached session or log in; True if the session came from the cache."""
        now = datetime.now(timezone.utc)
        if self.session is not None and self.session.expires_at - EXPIRY_MARGIN > now:
            self.api.token = self.session.token
            return True
        cached = self.cache.load(self.platform, self.address, now)
        if cached is not None:
            self.session = cached
            self.api.token = cached.token
            return True
        self.on_event("no valid session; logging in with the hotkey")
        await self.authenticate()
        return False

    async def _with_session(self, call: Callable[[], Awaitable[_T]]) -> _T:
        reused = await self._ensure_session()
        try:
            return await call()
        except AuthRejected as exc:
            # A cached session the platform no longer knows (restarted, revoked): log in
            # again once. A fresh session refused is a real refusal.
            if not reused or exc.status_code != 401:
                raise
        self.on_event("the platform refused the cached session; logging in again")
        self.cache.clear(self.platform, self.address)
        await self.authenticate()
        return await call()

    async def generate(self, kind: str) -> KeyCreatedOut:
        return await self._with_session(lambda: self.api.generate_key(kind))

    async def list_active(self, kind: str) -> list[KeyOut]:
        keys = await self._with_session(lambda: self.api.list_keys(kind))
        return [k for k in keys if not k.disabled]

    async def invite(self) -> InviteOut:
        """A one-time invite link to this miner's team."""
        return await self._with_session(self.api.create_invite)

    async def disable(self, kind: str, ref: str) -> KeyOut:
        """Disable the active key whose id or prefix is ``ref``."""
        key = find_key(await self.list_active(kind), ref)
        await self._with_session(lambda: self.api.disable_key(kind, key.id))
        return key


def key_labels(keys: list[KeyOut]) -> list[str]:
    """The keys' prefixes (the secret itself is never stored): what the pickers complete."""
    return [k.prefix for k in keys]


def configured_api_key(env_file: str | None = ".env") -> str | None:
    """The DOJO_API_KEY a miner started here would use: the environment's, else ``.env``'s,
    resolved as the miner resolves it."""
    key = account_settings(env_file).api_key
    return key.get_secret_value() if key else None


def key_in_use(keys: list[KeyOut], api_key: str | None) -> KeyOut | None:
    """The listed key that ``api_key`` (the miner's DOJO_API_KEY) is: the one whose prefix it
    starts with, the longest if several do."""
    matching = [k for k in keys if api_key and api_key.startswith(k.prefix)]
    return max(matching, key=lambda k: len(k.prefix)) if matching else None


MINERS_KEY = "the miner's DOJO_API_KEY"


def key_state(key: KeyOut, in_use: KeyOut | None = None) -> str:
    state = "disabled" if key.disabled else "active"
    return f"{state}, {MINERS_KEY}" if in_use is not None and key.id == in_use.id else state


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if moment else "never"


def key_summary(key: KeyOut, in_use: KeyOut | None = None) -> str:
    """One key for a person: prefix, id, state and dates."""
    return (
        f"{key.prefix}  id {key.id}  {key_state(key, in_use)}  created {_when(key.created_at)}"
        f"  last used {_when(key.last_used_at)}"
    )


def session_summary(account: MinerAccount) -> dict[str, Any]:
    assert account.session is not None
    return {
        "platform": account.platform,
        "hotkey": account.address,
        "expiresAt": account.session.expires_at.isoformat(),
    }


@contextmanager
def cli_logging() -> Iterator[None]:
    """While a CLI command runs, show only warnings (retries) on stderr, without log decoration.

    loguru's stock handler (id 0) prints every debug line of the client; the CLI's own
    messages are its output.
    """
    with suppress(ValueError):
        logger.remove(0)
    handler = logger.add(sys.stderr, level="WARNING", format="<yellow>{message}</yellow>")
    try:
        yield
    finally:
        logger.remove(handler)
