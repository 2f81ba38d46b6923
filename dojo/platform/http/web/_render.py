"""Turn a task's completions into what the task page shows.

A completion arrives as the miner sent it (``docs/platform-api.md``): plain text, a
dialogue (a list of turns), code (a dict with ``files``, each a filename, content and
language), or an image (a dict with ``kind: "image"``). This module decides how each is
shown: text and each turn of a dialogue as safe Markdown (:func:`markdown_html`: no raw
HTML, links inert), code highlighted on the server with Pygments (no JavaScript
highlighter), one tab per file, and a live preview for HTML/JavaScript: a document of its
own (``GET /tasks/{id}/preview/{n}``) in a sandboxed iframe, so that the task page itself
runs no inline script (its policy has no ``'unsafe-inline'``; an ``srcdoc`` frame would
inherit the page's policy); an image by a URL of the platform's own that serves its checked
bytes (``GET /tasks/{id}/images/{cid}``: the page never embeds a completion's file).

The preview document is served with its own policy (:data:`PREVIEW_CSP` with the
``sandbox allow-scripts`` directive, so it has an opaque origin even when opened on its own)
and also begins with that policy in a ``<meta>``: a completion can run its own scripts and
styles but cannot load or send anything; the iframe's ``sandbox="allow-scripts"`` (without
``allow-same-origin``) gives it an opaque origin too, so it cannot read the platform's
cookies or its parent's DOM.

A click into a preview gives it the keyboard, and the task page's shortcuts would stop
working there without a word. So the preview document also starts with a small script
(:data:`KEY_RELAY`) that hands the shortcut keys up to the page with ``postMessage``,
unless the preview used the key itself or one of its own fields has the focus. The page
accepts such messages only from its own preview frames, and only those keys.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound

PREVIEW_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
# The header the preview document is served with: its policy, an opaque origin wherever it
# is opened, no form that goes anywhere, and framed only by the platform's own pages.
PREVIEW_HEADER_CSP = (
    f"{PREVIEW_CSP}; form-action 'none'; base-uri 'none'; sandbox allow-scripts; frame-ancestors 'self'"
)
HIGHLIGHT_CLASS = "hl"
PYGMENTS_STYLE = "default"
_HTML_LANGUAGES = {"html", "htm", "xhtml"}
_JS_LANGUAGES = {"javascript", "js"}
_CSS_LANGUAGES = {"css"}
# The task page's shortcut keys (see task.js), handed up from a preview to the page.
RELAYED_KEYS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "Backspace", "Escape", "s", "S", "?")
KEY_RELAY = (
    "<script>(function () {"
    f" var keys = {json.dumps(list(RELAYED_KEYS))};"
    ' addEventListener("keydown", function (e) {'
    "  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || keys.indexOf(e.key) < 0) return;"
    "  var t = e.target;"
    '  if (t && t.closest && t.closest("input, textarea, select, [contenteditable]")) return;'
    '  parent.postMessage({ dojoKey: e.key }, "*");'
    " });"
    "})();</script>"
)


@dataclass(frozen=True)
class HighlightedFile:
    """One file of a code completion, highlighted for display."""

    filename: str
    language: str
    content: str
    highlighted: Markup


@dataclass(frozen=True)
class Turn:
    role: str
    text: str

    @property
    def html(self) -> Markup:
        return markdown_html(self.text)


@dataclass(frozen=True)
class ImageView:
    """An image completion: where the page loads it from, its size and its alternative text."""

    src: str
    width: int
    height: int
    alt: str
    media_type: str


SUMMARY_CHARS = 48


def _clip(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` on one line, cut at a word near ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if " " in cut[limit // 2 :]:  # a word break in the second half: cut there
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


_HEADING = re.compile(r"<(title|h[1-3])\b[^>]*>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _summary_text(view: CompletionView) -> str:
    return _clip(view.text) or "(empty)"


def _summary_dialogue(view: CompletionView) -> str:
    said = next((t.text for t in view.turns if t.role.lower() in ("assistant", "ai", "bot")), "")
    return _clip(said or (view.turns[0].text if view.turns else "")) or "(empty)"


def _summary_code(view: CompletionView) -> str:
    # What a preview shows first (its title or first heading), else which files it is.
    for f in view.files:
        if f.language in _HTML_LANGUAGES:
            for _tag, inner in _HEADING.findall(f.content):
                heading = html.unescape(_TAG.sub("", inner)).strip()
                if heading:
                    return _clip(heading)
    if len(view.files) == 1:
        only = view.files[0]
        lines = only.content.count("\n") + (not only.content.endswith("\n") and bool(only.content))
        return _clip(f"{only.filename} · {lines} line{'s' if lines != 1 else ''}")
    names = ", ".join(f.filename for f in view.files[:3])
    return _clip(names + (f" +{len(view.files) - 3}" if len(view.files) > 3 else ""))


# How each kind of content is named in a few words on the ranking list: what the worker saw
# first in it. A new kind of content adds its own.
def _summary_image(view: CompletionView) -> str:
    image = view.image
    return f"image, {image.width}×{image.height}" if image else "image"


SUMMARIES = {
    "text": _summary_text,
    "dialogue": _summary_dialogue,
    "code": _summary_code,
    "image": _summary_image,
}


@dataclass(frozen=True)
class CompletionView:
    """A completion as the task page shows it; ``kind`` is ``text``, ``dialogue``, ``code`` or
    ``image`` (the page includes ``_completion_<kind>.html`` for its body)."""

    cid: str
    label: str
    kind: str
    text: str = ""
    turns: tuple[Turn, ...] = ()
    files: tuple[HighlightedFile, ...] = ()
    notes: str = ""
    preview_document: str | None = None  # served at /tasks/{id}/preview/{label}
    image: ImageView | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def html(self) -> Markup:
        """A text completion as safe Markdown."""
        return markdown_html(self.text)

    @property
    def summary(self) -> str:
        """A few words naming this response on the ranking list (see :data:`SUMMARIES`)."""
        return SUMMARIES.get(self.kind, _summary_text)(self)


def _inert_link_open(self: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]) -> str:
    env.setdefault("hrefs", []).append(tokens[idx].attrGet("href") or "")
    return '<span class="md-link">'


def _inert_link_close(self: Any, tokens: Any, idx: int, options: Any, env: dict[str, Any]) -> str:
    href = env["hrefs"].pop() if env.get("hrefs") else ""
    shown = f' <span class="md-url">({escapeHtml(href)})</span>' if href else ""
    return f"</span>{shown}"


@functools.cache
def _markdown() -> MarkdownIt:
    # CommonMark with tables and strikethrough; raw HTML is text (html=False); images are
    # not a rule (``![a](u)`` reads as ! and an inert link), so nothing is ever fetched.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True})
    md.enable(["table", "strikethrough"]).disable("image")
    md.add_render_rule("link_open", _inert_link_open)
    md.add_render_rule("link_close", _inert_link_close)
    return md


def markdown_html(text: str) -> Markup:
    """``text`` as Markdown in HTML the page can show as it is: every tag the text holds is
    escaped, a link shows its address and goes nowhere, no image loads."""
    # markdown-it escapes all text and attribute values; only its own tags are emitted.
    return Markup(_markdown().render(text, {}))  # noqa: S704


@functools.cache
def highlight_css() -> str:
    """The stylesheet for the highlighted code (Pygments' classes under ``.hl``)."""
    # types-Pygments leaves get_style_defs unannotated; it returns the stylesheet's text.
    css: str = HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(f".{HIGHLIGHT_CLASS}")  # type: ignore[no-untyped-call]
    return css


def highlight_code(content: str, filename: str = "", language: str = "") -> Markup:
    """Highlight ``content`` as HTML; an unknown language falls back to escaped plain text."""
    lexer = None
    if language:
        try:
            lexer = get_lexer_by_name(language.lower(), stripnl=False)
        except ClassNotFound:
            lexer = None
    if lexer is None and filename:
        try:
            lexer = get_lexer_for_filename(filename, content, stripnl=False)
        except ClassNotFound:
            lexer = None
    if lexer is None:
        lexer = TextLexer(stripnl=False)
    formatter = HtmlFormatter(cssclass=HIGHLIGHT_CLASS, wrapcode=True)
    # Pygments escapes the source it emits, so its output is safe to mark as HTML.
    return Markup(highlight(content, lexer, formatter))  # noqa: S704


def _language_of(filename: str, language: str) -> str:
    if language:
        return language.lower()
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"htm": "html", "js": "javascript", "mjs": "javascript", "py": "python"}.get(suffix, suffix)


def _script_safe(text: str) -> str:
    # Inlined into <script>/<style>: a literal closing tag would end the element early.
    return re.sub(r"</(script|style)", r"<\\/\1", text, flags=re.IGNORECASE)


def preview_document(files: list[tuple[str, str, str]]) -> str | None:
    """A document that runs a completion's HTML/JS/CSS files, or None if it has none.

    ``files`` are ``(filename, language, content)``. The first HTML file is the page; the
    scripts and stylesheets it references by a file's name are inlined in its place (they
    could not be fetched: the policy forbids the network), and JavaScript or CSS files it
    does not reference are appended. With no HTML file, JavaScript runs in an empty page.
    """
    html = [(n, c) for n, lang, c in files if lang in _HTML_LANGUAGES]
    scripts = [(n, c) for n, lang, c in files if lang in _JS_LANGUAGES]
    styles = [(n, c) for n, lang, c in files if lang in _CSS_LANGUAGES]
    if not html and not scripts:
        return None
    body = html[0][1] if html else ""
    used: set[str] = set()

    def inline_script(match: re.Match[str]) -> str:
        src = match.group(2).split("/")[-1]
        for name, content in scripts:
            if name.split("/")[-1] == src:
                used.add(name)
                return f"<script>{_script_safe(content)}</script>"
        return ""  # a script from elsewhere could not load anyway

    def inline_style(match: re.Match[str]) -> str:
        href = match.group(2).split("/")[-1]
        for name, content in styles:
            if name.split("/")[-1] == href:
                used.add(name)
                return f"<style>{_script_safe(content)}</style>"
        return ""

    body = re.sub(
        r"<script\b[^>]*\bsrc\s*=\s*(['\"])([^'\"]+)\1[^>]*>\s*</script\s*>", inline_script, body, flags=re.I
    )
    body = re.sub(r"<link\b[^>]*\bhref\s*=\s*(['\"])([^'\"]+\.css)\1[^>]*>", inline_style, body, flags=re.I)
    body = re.sub(r"^\s*<!doctype[^>]*>", "", body, flags=re.I)
    extra_styles = "".join(f"<style>{_script_safe(c)}</style>" for n, c in styles if n not in used)
    extra_scripts = "".join(f"<script>{_script_safe(c)}</script>" for n, c in scripts if n not in used)
    # The policy comes first so that it governs everything the completion contains; the
    # parser folds the completion's own <html>/<head> tags into these. The key relay comes
    # before the completion's scripts, so that a key the completion handles on its own
    # elements (and prevents) is not handed up.
    return (
        "<!DOCTYPE html><html><head>"
        f'<meta http-equiv="Content-Security-Policy" content="{PREVIEW_CSP}">'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{KEY_RELAY}{extra_styles}</head>{body}{extra_scripts}</html>"
    )


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _turns(value: list[Any]) -> tuple[Turn, ...] | None:
    turns = []
    for item in value:
        if not isinstance(item, dict):
            return None
        role = item.get("role") or item.get("speaker") or ""
        text = item.get("message", item.get("content", item.get("text")))
        if text is None:
            return None
        turns.append(Turn(role=str(role), text=_as_text(text)))
    return tuple(turns)


def _file_entries(value: dict[str, Any]) -> list[tuple[str, str, str]] | None:
    files = value.get("files")
    if isinstance(files, dict):  # {"index.html": "..."}
        files = [{"filename": k, "content": v} for k, v in files.items()]
    if not isinstance(files, list) or not files:
        return None
    entries = []
    for i, item in enumerate(files):
        if not isinstance(item, dict):
            return None
        name = str(item.get("filename") or item.get("name") or f"file{i + 1}")
        content = _as_text(item.get("content", ""))
        entries.append((name, _language_of(name, str(item.get("language") or "")), content))
    return entries


def image_src(task_id: str, cid: str) -> str:
    from urllib.parse import quote

    return f"/tasks/{quote(task_id, safe='')}/images/{quote(cid, safe='')}"


def completion_view(
    index: int, cid: str, completion: Any, highlight: bool = True, task_id: str = ""
) -> CompletionView:
    """The view of the ``index``-th completion (0-based) as the page lays them out
    (``highlight=False``: the code is not highlighted, for a caller that wants the rest;
    ``task_id``: where an image is loaded from)."""

    def highlighted(content: str, filename: str = "", language: str = "") -> Markup:
        return highlight_code(content, filename, language) if highlight else Markup()

    # Numbered, as the number keys rank them; the page never shows the (obfuscated) model id.
    label = str(index + 1)
    if isinstance(completion, dict) and completion.get("kind") == "image":
        image = ImageView(
            src=image_src(task_id, cid),
            width=int(completion.get("width") or 0),
            height=int(completion.get("height") or 0),
            # An image without words of its own is named by its place on the page.
            alt=str(completion.get("alt") or f"Image of response {label}"),
            media_type=str(completion.get("mediaType") or ""),
        )
        return CompletionView(cid=cid, label=label, kind="image", image=image)
    if isinstance(completion, list):
        turns = _turns(completion)
        if turns is not None:
            return CompletionView(cid=cid, label=label, kind="dialogue", turns=turns)
        return CompletionView(cid=cid, label=label, kind="text", text=_as_text(completion))
    if isinstance(completion, dict):
        entries = _file_entries(completion)
        if entries is not None:
            files = tuple(
                HighlightedFile(name, lang, content, highlighted(content, name, lang))
                for name, lang, content in entries
            )
            notes = completion.get("additional_notes") or completion.get("notes") or ""
            return CompletionView(
                cid=cid,
                label=label,
                kind="code",
                files=files,
                notes=_as_text(notes),
                preview_document=preview_document(entries),
            )
        for key in ("messages", "dialogue", "conversation"):
            if isinstance(completion.get(key), list) and (turns := _turns(completion[key])) is not None:
                return CompletionView(cid=cid, label=label, kind="dialogue", turns=turns)
        for key in ("text", "content", "completion", "response"):
            if isinstance(completion.get(key), str):
                return CompletionView(cid=cid, label=label, kind="text", text=completion[key])
        if isinstance(completion.get("code"), str):
            lang = _language_of("", str(completion.get("language") or ""))
            entries = [("code", lang, completion["code"])]
            code = HighlightedFile(
                "code", lang, completion["code"], highlighted(completion["code"], language=lang)
            )
            return CompletionView(
                cid=cid, label=label, kind="code", files=(code,), preview_document=preview_document(entries)
            )
    return CompletionView(cid=cid, label=label, kind="text", text=_as_text(completion))


def shared_turns(views: list[CompletionView]) -> int:
    """How many leading turns every dialogue completion of a task has in common (0 unless every
    completion is a dialogue and each has a turn of its own after them): shown once, as the
    conversation so far, with each completion's own turns under it."""
    if len(views) < 2 or any(v.kind != "dialogue" or not v.turns for v in views):
        return 0
    shortest = min(len(v.turns) for v in views)
    n = 0
    while n < shortest - 1 and all(v.turns[n] == views[0].turns[n] for v in views):
        n += 1
    return n


__all__ = [
    "KEY_RELAY",
    "PREVIEW_CSP",
    "PREVIEW_HEADER_CSP",
    "RELAYED_KEYS",
    "HighlightedFile",
    "CompletionView",
    "ImageView",
    "Turn",
    "completion_view",
    "markdown_html",
    "shared_turns",
    "highlight_code",
    "highlight_css",
    "preview_document",
]
