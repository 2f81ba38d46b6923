"""Checks a completion must pass before it is used: it parses, and it is complete.

- HTML: parsed with :mod:`html.parser`; non-void elements must be closed in order, the
  document must have content, and every local file it references must be in the completion.
- JavaScript (files and inline ``<script>``): compiled, without running, by node — the
  same parse as ``node --check``, in one long-lived node process because starting node
  for every file would cost more than generating the task. Skipped where node is missing.
- Python: :func:`compile`. CSS: braces balance.

:class:`CompletionChecker` returns the problems found (empty when the completion is fine);
the pipeline regenerates a completion that has any.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Sequence
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import PurePosixPath

from loguru import logger

from commons.obfuscation import VOID_ELEMENTS
from commons.protocol import CodeFile

# Elements whose end tag HTML lets authors omit; the parser closes them implicitly.
OPTIONAL_END = frozenset(
    [
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "tfoot",
        "option",
        "optgroup",
        "colgroup",
        "caption",
        "rp",
        "rt",
    ]
)
ENTRY = "index.html"
JS_TYPES = frozenset({"", "text/javascript", "application/javascript", "module"})

# Reads one JSON request per line, answers one per line. vm.Script compiles without
# running, which is exactly what `node --check` does with a file.
_NODE_PROGRAM = r"""
const vm = require('vm');
const readline = require('readline');
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  const req = JSON.parse(line);
  let error = null;
  try {
    new vm.Script(req.source, { filename: req.filename });
  } catch (e) {
    error = String(e && e.message ? e.message : e);
  }
  process.stdout.write(JSON.stringify({ error: error }) + '\n');
});
"""


class NodeSyntaxChecker:
    """A node process that syntax-checks JavaScript sources; thread-safe, started lazily."""

    def __init__(self, node: str | None = None) -> None:
        self.node = node if node is not None else shutil.which("node")
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.node is not None

    def check(self, source: str, filename: str = "script.js") -> str | None:
        """The syntax error in ``source``, or ``None`` (also when node is not installed)."""
        if self.node is None:
            return None
        request = json.dumps({"source": source, "filename": filename}) + "\n"
        with self._lock:
            for attempt in range(2):
                process = self._ensure_started()
                try:
                    assert process.stdin is not None and process.stdout is not None
                    process.stdin.write(request)
                    process.stdin.flush()
                    line = process.stdout.readline()
                except (BrokenPipeError, OSError):
                    line = ""
                if line:
                    error: str | None = json.loads(line)["error"]
                    return error
                # The process died (killed, out of memory): start a fresh one once.
                logger.warning("node syntax checker exited; restarting (attempt {})", attempt + 1)
                self._stop()
            raise RuntimeError("node syntax checker keeps exiting; check that `node -e 1` works")

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            assert self.node is not None
            self._process = subprocess.Popen(
                [self.node, "-e", _NODE_PROGRAM],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
            )
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


class _HTMLStructure(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.stack: list[str] = []
        self.elements = 0
        self.scripts: list[str] = []  # inline JavaScript
        self.references: list[str] = []
        self._script_is_js = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements += 1
        values = {name: value or "" for name, value in attrs}
        for name in ("src", "href"):
            if name in values and not (tag == "a" and name == "href"):
                self.references.append(values[name])
        if tag == "script":
            self._in_script = True
            self._script_is_js = "src" not in values and values.get("type", "").lower() in JS_TYPES
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements += 1
        values = {name: value or "" for name, value in attrs}
        for name in ("src", "href"):
            if name in values:
                self.references.append(values[name])

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_ELEMENTS:
            return
        if tag == "script":
            self._in_script = False
        while self.stack and self.stack[-1] != tag and self.stack[-1] in OPTIONAL_END:
            self.stack.pop()
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> at line {self.getpos()[0]} closes no open <{tag}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self._in_script and self._script_is_js:
            self.scripts.append(data)


def _is_local(reference: str) -> bool:
    lowered = reference.strip().lower()
    return bool(lowered) and not lowered.startswith(
        ("http:", "https:", "//", "data:", "#", "mailto:", "javascript:", "blob:")
    )


class CompletionChecker:
    """Runs every check on a completion's files; see the module docstring."""

    def __init__(self, node: NodeSyntaxChecker | None = None) -> None:
        self.node = node if node is not None else NodeSyntaxChecker()
        if not self.node.available:
            logger.warning("node is not installed: JavaScript in completions is not syntax-checked")

    def close(self) -> None:
        self.node.close()

    def problems(self, files: Sequence[CodeFile]) -> list[str]:
        if not files:
            return ["the completion has no files"]
        names = {f.filename for f in files}
        if len(names) != len(files):
            return ["two files share a name"]
        found: list[str] = []
        if ENTRY not in names:
            found.append(f"there is no {ENTRY}: the worker's browser opens that file")
        for file in files:
            kind = _kind(file)
            if kind == "html":
                found += self._html(file, names)
            elif kind == "javascript":
                found += self._javascript(file.content, file.filename)
            elif kind == "python":
                found += _python(file)
            elif kind == "css":
                found += _css(file)
        return found

    def _html(self, file: CodeFile, names: set[str]) -> list[str]:
        parser = _HTMLStructure()
        try:
            parser.feed(file.content)
            parser.close()
        except Exception as exc:  # html.parser raises little, but whatever it raises is a failed parse
            return [f"{file.filename}: HTML does not parse: {exc}"]
        problems = [f"{file.filename}: {p}" for p in parser.problems]
        unclosed = [t for t in parser.stack if t not in OPTIONAL_END and t not in ("html", "body", "head")]
        if unclosed:
            problems.append(f"{file.filename}: unclosed <{'>, <'.join(unclosed)}>")
        if parser.elements == 0:
            problems.append(f"{file.filename}: no HTML elements")
        for reference in parser.references:
            target = reference.split("?")[0].split("#")[0]
            if _is_local(target) and _normalised(target) not in names:
                problems.append(f"{file.filename}: references {reference!r}, which is not in the completion")
        for n, script in enumerate(parser.scripts, start=1):
            problems += self._javascript(script, f"{file.filename} <script> #{n}")
        return problems

    def _javascript(self, source: str, filename: str) -> list[str]:
        error = self.node.check(source, filename)
        return [] if error is None else [f"{filename}: JavaScript syntax error: {error}"]


@lru_cache(maxsize=1024)
def _normalised(reference: str) -> str:
    # Cached: pathlib costs more than the rest of the HTML check, and names repeat.
    return str(PurePosixPath(reference.removeprefix("./")))


def _kind(file: CodeFile) -> str:
    return _kind_of(file.language, file.filename)


@lru_cache(maxsize=1024)
def _kind_of(language: str, filename: str) -> str:
    language = language.lower()
    suffix = PurePosixPath(filename).suffix.lower()
    if language in ("html", "htm") or suffix in (".html", ".htm"):
        return "html"
    if language in ("javascript", "js") or suffix in (".js", ".mjs", ".cjs"):
        return "javascript"
    if language in ("python", "py") or suffix == ".py":
        return "python"
    if language == "css" or suffix == ".css":
        return "css"
    return "other"


def _python(file: CodeFile) -> list[str]:
    try:
        compile(file.content, file.filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return [f"{file.filename}: Python does not compile: {exc}"]
    return []


def _css(file: CodeFile) -> list[str]:
    depth = 0
    in_string: str | None = None
    text = file.content
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == in_string:
                in_string = None
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                return [f"{file.filename}: unterminated comment"]
            i = end + 1
        elif ch in "'\"":
            in_string = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return [f"{file.filename}: unbalanced '}}'"]
        i += 1
    return [] if depth == 0 else [f"{file.filename}: {depth} unclosed '{{'"]
