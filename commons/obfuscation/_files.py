"""HTML and whole completions: :func:`obfuscate_files` rewrites a completion's files
together, with one renaming across every script (files and inline ``<script>``), the
attributes of each HTML tag shuffled, HTML whitespace collapsed where it renders the same,
and the files other than the entry page renamed, every ``src``/``href`` updated."""

from __future__ import annotations

import html
import random
import re
from collections.abc import Sequence
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import PurePosixPath

from commons.obfuscation._css import obfuscate_css
from commons.obfuscation._js_emit import _emit_script
from commons.obfuscation._js_tokens import JavaScriptSource, _fresh_names, _words, rename_map
from commons.obfuscation._python import obfuscate_python
from commons.protocol import CodeFile

_RAW_TEXT = frozenset({"script", "style"})
# HTML's own whitespace; U+00A0 (a non-breaking space) is content, not whitespace.
_HTML_SPACE = " \t\n\r\f"
_HTML_SPACE_RUN = re.compile(r"[ \t\n\r\f]+")
_KEEP_WHITESPACE = frozenset({"pre", "textarea", "listing", "plaintext"})
VOID_ELEMENTS = frozenset(  # HTML elements that have no closing tag
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_JS_SCRIPT_TYPES = frozenset({"", "text/javascript", "application/javascript", "module"})


# One handler call of HTMLParser: the handler's name and its arguments (a tag's attributes
# as a tuple, so that the events of a page can be cached and shared).
_HTMLEvent = tuple[str, str] | tuple[str, str, tuple[tuple[str, str | None], ...]]


class _HTMLRecorder(HTMLParser):
    """Parses once and records the handler calls, for :func:`_html_events`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.events: list[_HTMLEvent] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("handle_starttag", tag, tuple(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("handle_startendtag", tag, tuple(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("handle_endtag", tag))

    def handle_data(self, data: str) -> None:
        self.events.append(("handle_data", data))

    def handle_entityref(self, name: str) -> None:
        self.events.append(("handle_entityref", name))

    def handle_charref(self, name: str) -> None:
        self.events.append(("handle_charref", name))

    def handle_comment(self, data: str) -> None:
        self.events.append(("handle_comment", data))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("handle_decl", decl))

    def handle_pi(self, data: str) -> None:
        self.events.append(("handle_pi", data))

    def unknown_decl(self, data: str) -> None:
        self.events.append(("unknown_decl", data))


@lru_cache(maxsize=512)
def _html_events(content: str) -> tuple[_HTMLEvent, ...]:
    """The handler calls :class:`HTMLParser` (``convert_charrefs=False``) makes for
    ``content``, cached by the exact text: the scan and the rewrite of a page replay one
    parse, and pages repeat (a task's completions often share theirs)."""
    recorder = _HTMLRecorder()
    recorder.feed(content)
    recorder.close()
    return tuple(recorder.events)


def _replay(events: tuple[_HTMLEvent, ...], parser: HTMLParser) -> None:
    for name, *args in events:
        if name in ("handle_starttag", "handle_startendtag"):
            getattr(parser, name)(args[0], list(args[1]))
        else:
            getattr(parser, name)(*args)


class _HTMLScan(HTMLParser):
    """First pass: inline scripts, names used by event attributes, and file references.

    Fed the events of a ``convert_charrefs=False`` parse (:func:`_replay`): it reads only
    tags, attributes (unescaped either way) and the text of scripts, which is raw text,
    never split or unescaped differently by that setting."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handler_names: set[str] = set()
        self.references: list[str] = []
        self._js = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on") and value:
                self.handler_names |= _words(value)
            if name in ("src", "href") and value:
                self.references.append(value)
        if tag == "script":
            values = {k: v or "" for k, v in attrs}
            self._js = "src" not in values and values.get("type", "").lower() in _JS_SCRIPT_TYPES

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._js = False

    def handle_data(self, data: str) -> None:
        if self._js:
            self.scripts.append(data)


class _HTMLRewrite(HTMLParser):
    def __init__(
        self,
        rng: random.Random,
        renames: dict[str, str],
        files: dict[str, str],
        rename: bool,
        scripts: list[JavaScriptSource],
    ) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts = {script.source: script for script in scripts}
        self.rng = rng
        self.renames = renames
        self.files = files
        self.rename = rename
        self.out: list[str] = []
        self.stack: list[str] = []
        self.raw: str | None = None  # "js", "css" or "text" inside script/style
        self.raw_buffer: list[str] = []
        self.pending_break = False

    def _break(self, closing: bool = False) -> None:
        if self.pending_break:
            self.out.append("\n" + "  " * max(len(self.stack) - closing, 0))
            self.pending_break = False

    def _attrs(self, attrs: list[tuple[str, str | None]]) -> str:
        attrs = list(attrs)
        self.rng.shuffle(attrs)
        parts = []
        for name, value in attrs:
            if value is None:
                parts.append(name)
                continue
            if name in ("src", "href"):
                value = self.files.get(value.removeprefix("./"), value)
            parts.append(f'{name}="{html.escape(value, quote=True)}"')
        return "".join(" " + p for p in parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break()
        self.out.append(f"<{tag}{self._attrs(attrs)}>")
        if tag in _RAW_TEXT:
            values = {k: v or "" for k, v in attrs}
            if tag == "style":
                self.raw = "css"
            elif "src" not in values and values.get("type", "").lower() in _JS_SCRIPT_TYPES:
                self.raw = "js"
            else:
                self.raw = "text"
            self.raw_buffer = []
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Kept self-closing: HTML ignores the slash (the element stays open), foreign
        # content (SVG, MathML) honours it; writing it as it was keeps both meanings.
        self._break()
        self.out.append(f"<{tag}{self._attrs(attrs)}/>")

    def handle_endtag(self, tag: str) -> None:
        if self.raw is not None and tag in _RAW_TEXT:
            self._flush_raw()
        self._break(closing=True)
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass
        self.out.append(f"</{tag}>")

    def _flush_raw(self) -> None:
        source = "".join(self.raw_buffer)
        base = "  " * len(self.stack)
        if self.raw == "js" and source.strip():
            script = self.scripts.pop(source, None) or JavaScriptSource.parse(source)
            body = _emit_script(script, self.rng, self.renames if self.rename else {}, base=base)
            self.out.append("\n" + body + "  " * max(len(self.stack) - 1, 0))
        elif self.raw == "css" and source.strip():
            css = obfuscate_css(source, self.rng)
            self.out.append(
                "\n"
                + "".join(base + line for line in css.splitlines(keepends=True))
                + "  " * max(len(self.stack) - 1, 0)
            )
        else:
            self.out.append(source)
        self.raw = None
        self.raw_buffer = []

    def handle_data(self, data: str) -> None:
        if self.raw is not None:
            self.raw_buffer.append(data)
            return
        if any(tag in _KEEP_WHITESPACE for tag in self.stack):
            self.out.append(data)
            return
        if not data.strip(_HTML_SPACE):
            # Any run of HTML whitespace renders like any other (one space, or nothing
            # between blocks), so a line break and indentation keep the rendering; the
            # indentation depends on what comes next, so it is written then.
            self.pending_break = True
            return
        self._break()
        self.out.append(_HTML_SPACE_RUN.sub(" ", data))

    def handle_entityref(self, name: str) -> None:
        if self.raw is None:
            self._break()
        (self.raw_buffer if self.raw is not None else self.out).append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if self.raw is None:
            self._break()
        (self.raw_buffer if self.raw is not None else self.out).append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        if self.raw is not None:
            self.raw_buffer.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self._break()
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


@lru_cache(maxsize=1024)
def _path_parts(filename: str) -> tuple[str, str]:
    """``(stem, suffix)`` of a file name, as pathlib has them (cached: pathlib is slow)."""
    path = PurePosixPath(filename)
    return path.stem, path.suffix


def _kind(file: CodeFile) -> str:
    language = file.language.lower()
    suffix = _path_parts(file.filename)[1].lower()
    for kind, languages, suffixes in (
        ("html", ("html", "htm"), (".html", ".htm")),
        ("js", ("javascript", "js"), (".js",)),
        ("css", ("css",), (".css",)),
        ("python", ("python", "py"), (".py",)),
    ):
        if language in languages or suffix in suffixes:
            return kind
    return "other"


def _file_renames(
    files: Sequence[CodeFile], references: list[str], entry: str, rng: random.Random
) -> dict[str, str]:
    """New names for the files other than ``entry``, when every mention of a name is a
    ``src``/``href`` attribute we rewrite."""
    referenced = [r.removeprefix("./") for r in references]
    taken = {f.filename for f in files}
    renames: dict[str, str] = {}
    for file in files:
        if file.filename == entry or "/" in file.filename:
            continue
        mentions = sum(f.content.count(file.filename) for f in files)
        if mentions != referenced.count(file.filename):
            continue  # named somewhere we would not rewrite (an import, a fetch)
        suffix = _path_parts(file.filename)[1]
        stem = _fresh_names(1, {_path_parts(t)[0] for t in taken}, rng)[0]
        renames[file.filename] = stem + suffix
        taken.add(stem + suffix)
    return renames


def obfuscate_files(
    files: Sequence[CodeFile], rng: random.Random, *, rename: bool = True, entry: str = "index.html"
) -> list[CodeFile]:
    """A completion's files, obfuscated together (see :mod:`commons.obfuscation`).

    ``rename=False`` keeps every identifier and file name and does the rest: the fallback
    for code whose renamed form no longer checks.
    """
    js_sources: list[JavaScriptSource] = []
    inline_scripts: dict[int, list[JavaScriptSource]] = {}  # by index of the HTML file
    scripts: dict[int, JavaScriptSource] = {}  # by index of the JavaScript file
    handler_names: set[str] = set()
    references: list[str] = []
    for n, file in enumerate(files):
        kind = _kind(file)
        if kind == "html":
            scan = _HTMLScan()
            _replay(_html_events(file.content), scan)
            inline = [JavaScriptSource.parse(s) for s in scan.scripts if s.strip()]
            inline_scripts[n] = inline
            js_sources += inline
            handler_names |= scan.handler_names
            references += scan.references
        elif kind == "js":
            scripts[n] = JavaScriptSource.parse(file.content)
            js_sources.append(scripts[n])
    renames = rename_map(js_sources, rng, handler_names) if rename else {}
    file_names = _file_renames(files, references, entry, rng) if rename else {}
    result: list[CodeFile] = []
    for n, file in enumerate(files):
        kind = _kind(file)
        if kind == "html":
            writer = _HTMLRewrite(rng, renames, file_names, rename, inline_scripts[n])
            _replay(_html_events(file.content), writer)
            content = "".join(writer.out).strip() + "\n"
        elif kind == "js":
            content = _emit_script(scripts[n], rng, renames)
        elif kind == "css":
            content = obfuscate_css(file.content, rng)
        elif kind == "python":
            content = obfuscate_python(file.content)
        else:
            content = file.content
        result.append(
            CodeFile(
                filename=file_names.get(file.filename, file.filename), content=content, language=file.language
            )
        )
    head = [f for f in result if f.filename == entry]
    rest = [f for f in result if f.filename != entry]
    rng.shuffle(rest)
    return head + rest
