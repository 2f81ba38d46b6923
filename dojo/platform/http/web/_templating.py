"""The Jinja2 environment of the web UI, its filters, and the static files it serves.

Templates autoescape everything; the only markup marked safe is what Pygments emits (it
escapes the source itself). Static files are served by a plain route rather than a mount so
that the package is a self-contained ``APIRouter``; their URLs carry a content hash, so a
browser can cache them for a long time and still never runs a stale script.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from commons.dojo_wire import iso as wire_iso
from commons.dojo_wire import to_utc
from dojo.platform.http.web._render import highlight_css

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
GENERATED_STATIC = {"pygments.css": highlight_css}
CONTENT_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# What a static file may be called. Anything else (a NUL byte, a name too long for the file
# system, a separator) is no file of ours, answered 404 before the file system refuses it.
STATIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def static_body(name: str) -> bytes | None:
    """The bytes of static file ``name``, or None when there is no such file."""
    if name in GENERATED_STATIC:
        return GENERATED_STATIC[name]().encode()
    if not STATIC_NAME.fullmatch(name):
        return None
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR.resolve() or not path.is_file():
        return None
    return path.read_bytes()


@functools.cache
def _static_version(name: str) -> str:
    body = static_body(name) or b""
    return hashlib.sha256(body).hexdigest()[:10]


def static_url(name: str) -> str:
    return f"/static/{name}?v={_static_version(name)}"


def iso(value: datetime | None) -> str:
    """:func:`commons.dojo_wire.iso`, and an empty string for no time."""
    return wire_iso(value) or ""


def when(value: datetime | None) -> str:
    """A short absolute time in UTC, e.g. ``25 Nov 13:05 UTC``."""
    if value is None:
        return ""
    return to_utc(value).strftime("%d %b %H:%M UTC").lstrip("0")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return "under a minute"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes and hours < 10 else f"{hours} h"
    return f"{hours // 24} days"


def until(value: datetime | None, now: datetime | None = None) -> str:
    """A deadline relative to now: ``in 3 h 20 min`` or ``ended 5 min ago``."""
    if value is None:
        return ""
    now = now or datetime.now(timezone.utc)
    delta = (to_utc(value) - now).total_seconds()
    return f"in {_span(delta)}" if delta >= 0 else f"ended {_span(delta)} ago"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, as a person says it: ``just now``, ``5 min ago``, ``3 h ago``."""
    if value is None:
        return ""
    seconds = ((now or datetime.now(timezone.utc)) - to_utc(value)).total_seconds()
    return "just now" if seconds < 60 else f"{_span(seconds)} ago"


HEADLINE_CHARS = 90


def headline(prompt: str | None, fallback: str = "") -> str:
    """A task as a list names it: the first words of its prompt (cut at a word, about
    :data:`HEADLINE_CHARS` characters), else ``fallback`` (its title)."""
    text = " ".join((prompt or "").split())
    if not text:
        return fallback or "Untitled task"
    if len(text) <= HEADLINE_CHARS:
        return text
    cut = (
        text[: HEADLINE_CHARS + 1].rsplit(" ", 1)[0]
        if " " in text[:HEADLINE_CHARS]
        else text[:HEADLINE_CHARS]
    )
    return cut.rstrip(" ,.;:") + "…"


def short(value: str | None, head: int = 6, tail: int = 4) -> str:
    if not value:
        return ""
    return value if len(value) <= head + tail + 1 else f"{value[:head]}…{value[-tail:]}"


def num(value: Any) -> str:
    """A score as a person writes it: ``3`` rather than ``3.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def agreement(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.2f}"


def spent(seconds: float | None) -> str:
    """Time on a task as a person says it: ``42 s``, ``3 min 5 s``, ``1 h 2 min``; a dash
    where nothing was measured (results from before the page measured lead time)."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {whole} s" if whole else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        iso=iso,
        when=when,
        until=until,
        ago=ago,
        headline=headline,
        short=short,
        num=num,
        agreement=agreement,
        spent=spent,
    )
    env.globals.update(static=static_url)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
