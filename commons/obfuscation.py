"""Obfuscation of code completions: the same behaviour, unrecognisable text.

A worker (or a miner's script) must not be able to look a completion up, or match it to
the instruction variant it answers, by its text. :func:`obfuscate_files` rewrites a
completion's files so that

- JavaScript identifiers the code declares get fresh random names, consistently across
  every script of the completion (files and inline ``<script>``);
- comments are gone, from JavaScript, CSS, HTML and Python alike;
- formatting is normalised: canonical spacing and indentation, blank lines removed;
- what order does not matter for is shuffled: top-level function declarations (hoisted),
  declarations in a CSS rule (when no two touch the same property), HTML attributes, and
  the files of the completion;
- files other than the entry ``index.html`` get new names, with every reference updated;

and what it renders is unchanged: line breaks in JavaScript are kept (automatic semicolon
insertion depends on them), and names are left alone wherever renaming could change
meaning — properties, object keys, names also spelled in strings or in HTML event
attributes, and well-known browser globals.

The JavaScript handling is a tokenizer plus a bracket-context pass, not a full parser. It
is conservative: when a name's role is unclear the name keeps its spelling. Callers that
can check the result (the synthetic pipeline does, with node) fall back to
``rename=False`` if the renamed code no longer parses.

Usage::

    files = obfuscate_files(files, random.Random(seed))
"""

from __future__ import annotations

import html
import io
import random
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import PurePosixPath

from commons.protocol import CodeFile

__all__ = [
    "JavaScriptSource",
    "ObfuscationError",
    "obfuscate_css",
    "obfuscate_files",
    "obfuscate_javascript",
    "obfuscate_python",
]

# --- JavaScript tokens ---------------------------------------------------------------------

JS_KEYWORDS = frozenset(
    ["break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else", "export", "extends", "false", "finally", "for", "function", "if", "import", "in", "instanceof", "new", "null", "return", "super", "switch", "this", "throw", "true", "try", "typeof", "var", "void", "while", "with", "yield", "let", "static", "enum", "await", "implements", "package", "protected", "interface", "private", "public", "async", "of", "get", "set", "arguments", "eval", "undefined", "NaN", "Infinity"]
)
# Globals a script may use without declaring them; a local of the same name is left alone
# because renaming by name (we do not track scopes) would also rename the global.
JS_GLOBALS = frozenset(
    ["window", "document", "navigator", "console", "performance", "location", "history", "screen", "self", "top", "parent", "frames", "opener", "name", "status", "origin", "length", "event", "open", "close", "print", "alert", "confirm", "prompt", "scroll", "focus", "blur", "stop", "find", "external", "closed", "Math", "JSON", "Date", "Image", "Audio", "Option", "Array", "Object", "String", "Number", "Boolean", "Symbol", "Map", "Set", "WeakMap", "WeakSet", "Promise", "Proxy", "Reflect", "RegExp", "Error", "TypeError", "RangeError", "Intl", "BigInt", "globalThis", "requestAnimationFrame", "cancelAnimationFrame", "setTimeout", "clearTimeout", "setInterval", "clearInterval", "fetch", "localStorage", "sessionStorage", "devicePixelRatio", "innerWidth", "innerHeight", "addEventListener", "removeEventListener", "getComputedStyle", "matchMedia", "crypto", "URL", "Blob", "File", "Worker"]
)
_REGEX_AFTER_KEYWORDS = frozenset(
    ["return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case", "do", "else", "yield", "await"]
)
_PUNCTUATORS = sorted(
    [">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=", "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "**", "<<", ">>", "{", "}", "(", ")", "[", "]", ";", ",", "<", ">", "+", "-", "*", "/", "%", "&", "|", "^", "!", "~", "?", ":", "=", ".", "@", "#"],
    key=len,
    reverse=True,
)
_PUNCT_PREFIXES = frozenset(p[:i] for p in _PUNCTUATORS for i in range(1, len(p) + 1))

# Alternatives in order of frequency; punctuators by first character (longest first within
# each), which the regex engine tries far faster than one flat alternation of literals.
_JS_TOKEN = re.compile(
    r"""
    [\s\ufeff]*
    (?:
    (?P<ident>\#?[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*)
  | (?P<punct>
      [{}()\[\];,~:@\#]
    | \.\.\.|\.(?!\d)
    | =>|={1,3}
    | !={0,2}
    | \*\*=?|\*=?
    | &&=?|&=?
    | \|\|=?|\|=?
    | \?\?=?|\?\.(?!\d)|\?
    | >>>=?|>>=?|>=?
    | <<=?|<=?
    | \+\+|\+=?
    | --|-=?
    | /(?![/*])=?|%=?|\^=?
    )
  | (?P<num>(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)n?)
  | (?P<str>'[^'\\\n\r]*(?:\\[\s\S][^'\\\n\r]*)*'|"[^"\\\n\r]*(?:\\[\s\S][^"\\\n\r]*)*")
  | (?P<comment>//[^\n\r\u2028\u2029]*|/\*[\s\S]*?\*/)
  | (?P<tick>`)
    )""",
    re.VERBOSE,
)
_JS_REGEX = re.compile(r"/(?:[^/\\\[\n\r]|\\.|\[(?:[^\]\\\n\r]|\\.)*\])+/[A-Za-z]*")
_LINE_BREAK = re.compile(r"[\n\r\u2028\u2029]")
_TEMPLATE_CHUNK = re.compile(r"(?:[^`\\$]|\\[\s\S]|\$(?!\{))*")


class ObfuscationError(ValueError):
    """The source could not be tokenised (an unterminated string or comment, say)."""


@dataclass(frozen=True, slots=True, eq=False)
class Token:
    """One significant token. Immutable and compared by identity: the line cache below
    hands the same token objects to every script that contains the same line."""

    kind: str  # ident, num, str, regex, punct, tmpl
    text: str
    nl_before: bool = False
    role: str = ""  # "keyword" for an ident used as a keyword (not after "." or "?.")
    bracket: int = 0  # +1 opens a bracket ({ ( [ or a template's ${), -1 closes one


def _tokenize(source: str, newline: bool = False, regex_ok: bool = True, after_dot: bool = False) -> list[Token]:
    """Significant tokens of ``source``; comments dropped, ``nl_before`` marks line breaks.

    ``newline``, ``regex_ok`` and ``after_dot`` describe what precedes ``source`` when it
    is one line of a larger script: a line break, a token after which ``/`` starts a regex
    literal, a ``.`` (after which a keyword's spelling is a property name).
    """
    tokens: list[Token] = []
    append = tokens.append
    match_token = _JS_TOKEN.match
    search_break = _LINE_BREAK.search
    keywords = JS_KEYWORDS
    pos = 0
    template_depths: list[int] = []  # brace depth at which each open ${ ... } resumes its template
    depth = 0
    end = len(source)

    def regex_allowed() -> bool:
        return _regex_allowed_after(tokens[-1]) if tokens else regex_ok

    def template_chunk(start: int, opener: str) -> int:
        chunk = _TEMPLATE_CHUNK.match(source, start)
        stop = chunk.end() if chunk else start
        if source.startswith("${", stop):
            template_depths.append(depth)
            append(Token("tmpl", opener + source[start:stop] + "${", newline, "", 1 - (opener == "}")))
            return stop + 2
        if stop < end and source[stop] == "`":
            append(Token("tmpl", opener + source[start:stop] + "`", newline, "", -(opener == "}")))
            return stop + 1
        raise ObfuscationError("unterminated template literal")

    while pos < end:
        match = match_token(source, pos)
        if match is None:
            if not source[pos:].strip():
                break  # trailing whitespace
            raise ObfuscationError(f"cannot tokenise JavaScript at offset {pos}: {source[pos:pos + 20]!r}")
        kind = match.lastgroup
        begin = match.start(kind)
        # Whitespace or a comment holding a line break is a line terminator (ASI).
        if begin != pos and not newline and search_break(source, pos, begin):
            newline = True
        if kind == "comment":
            if not newline and search_break(source, begin, match.end()):
                newline = True
            pos = match.end()
            continue
        text = match.group(kind)
        if kind == "punct":
            first = text[0]
            if first == "/" and regex_allowed():
                literal = _JS_REGEX.match(source, begin)
                if literal:
                    append(Token("regex", literal.group(), newline))
                    newline = False
                    pos = literal.end()
                    continue
            elif text in ("{", "(", "["):
                depth += 1
                append(Token(kind, text, newline, "", 1))
                newline = False
                pos = match.end()
                continue
            elif text in ("}", ")", "]"):
                if first == "}" and template_depths and template_depths[-1] == depth:
                    template_depths.pop()
                    pos = template_chunk(begin + 1, "}")
                    newline = False
                    continue
                depth -= 1
                append(Token(kind, text, newline, "", -1))
                newline = False
                pos = match.end()
                continue
        elif kind == "tick":
            pos = template_chunk(begin + 1, "`")
            newline = False
            continue
        elif kind == "ident" and text in keywords:
            dotted = tokens[-1].text in (".", "?.") if tokens else after_dot
            if not dotted:
                append(Token(kind, text, newline, "keyword"))
                newline = False
                pos = match.end()
                continue
        append(Token(kind, text, newline))  # type: ignore[arg-type]
        newline = False
        pos = match.end()
    if template_depths:
        raise ObfuscationError("unterminated template literal")
    return tokens


def _regex_allowed_after(last: Token) -> bool:
    if last.kind in ("num", "str", "regex"):
        return False
    if last.kind == "tmpl":
        return last.text.endswith("${")
    if last.kind == "ident":
        return last.text in _REGEX_AFTER_KEYWORDS
    return last.text not in (")", "]", "++", "--")


class _Line:
    """The tokens of one source line that tokenises on its own (see :func:`_tokenize_lines`),
    with what the per-script passes need of it, worked out once."""

    __slots__ = ("tokens", "idents", "regex_after", "dot_after", "pair_keys", "pair_values", "closers", "openers")

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self.tokens = tokens
        self.idents = frozenset(t.text for t in tokens if t.kind == "ident")
        last = tokens[-1] if tokens else None
        self.regex_after = last is not None and _regex_allowed_after(last)
        self.dot_after = last is not None and last.text in (".", "?.")
        # Brackets as :func:`_matching` pairs them: the pairs within the line (offsets,
        # both ways), then the closers that pair with earlier lines and the openers left
        # for later ones (every such closer comes before every such opener).
        keys: list[int] = []
        values: list[int] = []
        closers: list[int] = []
        stack: list[int] = []
        for i, tok in enumerate(tokens):
            closes = tok.bracket == -1 or (tok.kind == "tmpl" and tok.text.startswith("}"))
            opens = tok.bracket == 1 or (tok.kind == "tmpl" and tok.text.endswith("${"))
            if closes:
                if stack:
                    j = stack.pop()
                    keys += (i, j)
                    values += (j, i)
                else:
                    closers.append(i)
            if opens:
                stack.append(i)
        self.pair_keys, self.pair_values = tuple(keys), tuple(values)
        self.closers, self.openers = tuple(closers), tuple(stack)


class _LazyMatch:
    """:func:`_matching_lines` of the given blocks, computed on the first look-up."""

    __slots__ = ("_blocks", "_starts", "_pairs")

    def __init__(self, blocks: Sequence[_Block], starts: Sequence[int]) -> None:
        self._blocks, self._starts = blocks, starts
        self._pairs: dict[int, int] | None = None

    def get(self, index: int, default: int | None = None) -> int | None:
        if self._pairs is None:
            self._pairs = _matching_lines(self._blocks, self._starts)
        return self._pairs.get(index, default)


def _matching_lines(lines: Sequence[_Line | _Block], starts: Sequence[int]) -> dict[int, int]:
    """:func:`_matching` of the tokens of ``lines``, from each line's own pairs."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for line, start in zip(lines, starts, strict=True):
        if line.pair_keys:
            pairs.update(zip(map(start.__add__, line.pair_keys), map(start.__add__, line.pair_values), strict=True))
        for offset in line.closers:
            if stack:
                i, j = start + offset, stack.pop()
                pairs[i], pairs[j] = j, i
        if line.openers:
            stack += map(start.__add__, line.openers)
    return pairs


# Caches shared by every script obfuscated in this process, keyed by identical input
# only. The procedural backend's completions are one engine with different values, so
# nearly every line of every script has been seen before; tokenising, analysing and
# laying out a script then costs a dictionary look-up per line instead of Python work per
# token. Bounded: each is emptied when it grows past _CACHE_LIMIT entries (a few tens of
# megabytes at most); the lines and blocks worth keeping come back within a few tasks.
_CACHE_LIMIT = 20_000
_LINE_CACHE: dict[tuple[str, bool, bool, bool], _Line | None] = {}
_BLOCK_CACHE: dict[tuple[str, bool, bool, bool], object] = {}
_ANALYSIS_CACHE: dict[tuple, tuple] = {}
_LAYOUT_CACHE: dict[tuple[_Line, bool], tuple] = {}


def _remember(cache: dict, key: object, value: object, limit: int = _CACHE_LIMIT) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


class _Block:
    """Lines of a source between blank lines (a statement or a function, usually), as
    :class:`_Line` does for one line: the unit of the caches above lines."""

    __slots__ = ("lines", "offsets", "tokens", "idents", "regex_after", "dot_after", "pair_keys", "pair_values", "closers", "openers")

    def __init__(self, lines: Sequence[_Line], regex_after: bool, dot_after: bool) -> None:
        self.lines = tuple(lines)
        offsets: list[int] = []
        tokens: list[Token] = []
        for line in lines:
            offsets.append(len(tokens))
            tokens += line.tokens
        self.offsets = tuple(offsets)
        self.tokens = tuple(tokens)
        self.idents = frozenset().union(*(line.idents for line in lines))
        self.regex_after, self.dot_after = regex_after, dot_after
        whole = _Line(self.tokens)
        self.pair_keys, self.pair_values = whole.pair_keys, whole.pair_values
        self.closers, self.openers = whole.closers, whole.openers


def _tokenize_block(text: str, newline: bool, regex_ok: bool, after_dot: bool) -> _Block | None:
    """The lines of ``text`` (which follows what ``newline``, ``regex_ok`` and
    ``after_dot`` describe), each from the line cache; ``None`` if one does not stand alone."""
    cache = _LINE_CACHE
    lines: list[_Line] = []
    for text_line in text.split("\n"):
        key = (text_line, newline, regex_ok, after_dot)
        line = cache.get(key, _MISSING)
        if line is _MISSING:
            try:
                found = _tokenize(text_line, newline, regex_ok, after_dot)
            except ObfuscationError:
                line = None  # crosses into the next line, or is bad: the whole-source path decides
            else:
                line = None if any(t.nl_before for t in found[1:]) else _Line(tuple(found))
            _remember(cache, key, line)
        if line is None:
            return None
        newline = True
        if line.tokens:  # type: ignore[union-attr]
            lines.append(line)  # type: ignore[arg-type]
            regex_ok, after_dot = line.regex_after, line.dot_after  # type: ignore[union-attr]
    return _Block(lines, regex_ok, after_dot)


def _tokenize_lines(source: str) -> tuple[list[Token], list[_Line], list[int], list[_Block], list[int]] | None:
    """``(tokens, lines, starts, blocks, block_starts)``: the tokens of ``source``, the same
    tokens grouped by source line (lines without tokens left out; ``starts[k]`` is the
    index in ``tokens`` of line ``k``'s first token) and by block of lines between blank
    lines (blocks without tokens left out); ``None`` when some line does not stand alone.

    A line stands alone when no token crosses its end (a block comment, a template or a
    string continued on the next line) and no line break other than its own end starts a
    token in it. Each such line tokenises the same whatever surrounds it, given the line
    text and three facts about what precedes it (the key of the line cache), so the
    result equals :func:`_tokenize` of the whole source. Blocks are cached the same way.
    """
    tokens: list[Token] = []
    lines: list[_Line] = []
    starts: list[int] = []
    blocks: list[_Block] = []
    block_starts: list[int] = []
    cache = _BLOCK_CACHE
    regex_ok, after_dot = True, False  # about the last token so far
    # Splitting at "\n\n" keeps every line: the empty line between two blocks has no
    # tokens, and a line break precedes every block but the first either way.
    for n, text in enumerate(source.split("\n\n")):
        key = (text, n > 0, regex_ok, after_dot)
        block = cache.get(key, _MISSING)
        if block is _MISSING:
            block = _tokenize_block(*key)
            _remember(cache, key, block, _CACHE_LIMIT // 10)  # a block holds many lines
        if block is None:
            return None
        if block.tokens:  # type: ignore[union-attr]
            start = len(tokens)
            block_starts.append(start)
            blocks.append(block)  # type: ignore[arg-type]
            lines += block.lines  # type: ignore[union-attr]
            starts += map(start.__add__, block.offsets)  # type: ignore[union-attr]
            tokens += block.tokens  # type: ignore[union-attr]
            regex_ok, after_dot = block.regex_after, block.dot_after  # type: ignore[union-attr]
    return tokens, lines, starts, blocks, block_starts


_MISSING = object()


def tokenize_javascript(source: str) -> list[Token]:
    """Significant tokens of ``source``; comments dropped, ``nl_before`` marks line breaks."""
    by_line = _tokenize_lines(source)
    return by_line[0] if by_line is not None else _tokenize(source)


def _is_open(tok: Token) -> bool:
    return tok.bracket == 1 or (tok.kind == "tmpl" and tok.text.endswith("${"))


def _is_close(tok: Token) -> bool:
    return tok.bracket == -1 or (tok.kind == "tmpl" and tok.text.startswith("}"))


_OBJECT_AFTER_PUNCT = frozenset(
    ["(", "[", ",", "=", ":", "?", "||", "&&", "??", "!", "+", "-", "*", "/", "%", "<", ">", "<=", ">=", "==", "===", "!=", "!==", "+=", "-=", "*=", "/=", "%=", "||=", "&&=", "??=", "...", "&", "|", "^", "~", "**"]
)
_OBJECT_AFTER_KEYWORDS = frozenset(["return", "typeof", "void", "yield", "await", "in", "of", "new", "delete", "instanceof", "throw"])


@dataclass
class JavaScriptSource:
    """One script, tokenised and analysed: the names it declares and the names that must
    keep their spelling. ``lines``/``starts`` and ``blocks``/``block_starts`` group the
    tokens by source line and by block of lines when every line stands alone (see
    :func:`_tokenize_lines`), else they are empty."""

    tokens: list[Token]
    source: str = ""
    declared: set[str] = field(default_factory=set)
    pinned: set[str] = field(default_factory=set)
    match_close: dict[int, int] = field(default_factory=dict)
    lines: list[_Line] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    blocks: list[_Block] = field(default_factory=list)
    block_starts: list[int] = field(default_factory=list)
    idents: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, source: str) -> JavaScriptSource:
        by_line = _tokenize_lines(source)
        if by_line is None:
            script = cls(_tokenize(source), source)
            script.match_close = _matching(script.tokens)
            _analyse_span(script.tokens, script.match_close, 0, len(script.tokens), [["{block", 0]], None, None, script.declared, script.pinned)
            script.idents = {t.text for t in script.tokens if t.kind == "ident"}
        else:
            tokens, lines, starts, blocks, block_starts = by_line
            script = cls(tokens, source, lines=lines, starts=starts, blocks=blocks, block_starts=block_starts)
            # Most scripts never need the bracket pairs (the cached analyses and the
            # block-level function spans do without): worked out on first use.
            script.match_close = _LazyMatch(blocks, block_starts)  # type: ignore[assignment]
            script._analyse_by_block()
            script.idents = set().union(*(block.idents for block in blocks))
        script.pinned.update(n for n in script.declared if n in JS_KEYWORDS or n in JS_GLOBALS)
        return script

    def _analyse_by_block(self) -> None:
        """The analysis of :func:`_analyse_span`, a block of lines at a time (else a line at
        a time), each outcome cached under everything it depends on: the block's or line's
        tokens, the context it starts in, and the tokens around it it may look at (two
        before, one after). An outcome that looked further (a parameter list running
        onto later lines, say) is not cached."""
        toks = self.tokens
        n = len(toks)
        cache = _ANALYSIS_CACHE
        state: tuple = ((("{block", 0),), None, None)  # context stack, class_depth, decl_depth
        lines, starts = self.lines, self.starts
        first_line = 0
        for block, start in zip(self.blocks, self.block_starts, strict=True):
            end = start + len(block.tokens)
            count = len(block.lines)
            key = (
                block, state,
                toks[start - 2] if start >= 2 else None,
                toks[start - 1] if start >= 1 else None,
                toks[end] if end < n else None,
            )
            outcome = cache.get(key)
            if outcome is None:
                new_declared: set[str] = set()
                new_pinned: set[str] = set()
                exit_state, far = self._analyse_lines(
                    lines[first_line : first_line + count], starts[first_line : first_line + count], state, new_declared, new_pinned
                )
                outcome = (exit_state, frozenset(new_declared), frozenset(new_pinned))
                if not far:
                    _remember(cache, key, outcome)
            state, new_declared, new_pinned = outcome  # type: ignore[assignment]
            if new_declared:
                self.declared |= new_declared
            if new_pinned:
                self.pinned |= new_pinned
            first_line += count

    def _analyse_lines(
        self, lines: Sequence[_Line], starts: Sequence[int], state: tuple, declared: set[str], pinned: set[str]
    ) -> tuple[tuple, bool]:
        """:meth:`_analyse_by_block` for single lines; returns the state after them and
        whether any line looked outside its window."""
        toks = self.tokens
        n = len(toks)
        cache = _ANALYSIS_CACHE
        any_far = False
        for line, start in zip(lines, starts, strict=True):
            end = start + len(line.tokens)
            key = (
                line, state,
                toks[start - 2] if start >= 2 else None,
                toks[start - 1] if start >= 1 else None,
                toks[end] if end < n else None,
            )
            outcome = cache.get(key)
            if outcome is None:
                stack, class_depth, decl_depth = state
                working = [list(entry) for entry in stack]
                new_declared: set[str] = set()
                new_pinned: set[str] = set()
                class_depth, decl_depth, far = _analyse_span(
                    toks, self.match_close, start, end, working, class_depth, decl_depth, new_declared, new_pinned
                )
                outcome = ((tuple(map(tuple, working)), class_depth, decl_depth), frozenset(new_declared), frozenset(new_pinned))
                if far:
                    any_far = True
                else:
                    _remember(cache, key, outcome)
            state, new_declared, new_pinned = outcome  # type: ignore[assignment]
            if new_declared:
                declared |= new_declared
            if new_pinned:
                pinned |= new_pinned
        return state, any_far


def _analyse_span(
    toks: Sequence[Token],
    match_close: dict[int, int],
    start: int,
    end: int,
    stack: list[list],
    class_depth: int | None,
    decl_depth: int | None,
    declared: set[str],
    pinned: set[str],
) -> tuple[int | None, int | None, bool]:
    """Analyse ``toks[start:end]``: add the names they declare to ``declared`` and the
    names that must keep their spelling to ``pinned``.

    ``stack`` (updated in place) holds the bracket contexts: "(", "[", "${", "{obj",
    "{block", "{class", each with a count of open "?" (to tell a ternary's ":" from a
    label's or a case's). Returns the new ``class_depth`` and ``decl_depth`` and whether
    the analysis looked at a token outside ``toks[start - 2 : end + 1]``.
    """
    n = len(toks)
    lo, hi = start - 2, end  # the tokens a line's cached outcome may depend on
    far = False
    for i in range(start, end):
        tok = toks[i]
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < n else None
        ctx = stack[-1]
        if tok.kind == "tmpl":
            for literal in _template_text(tok.text):
                pinned.update(_words(literal))
            if tok.text.startswith("}") and len(stack) > 1:
                stack.pop()
            if tok.text.endswith("${"):
                stack.append(["${", 0])
            continue
        if tok.kind == "str":
            pinned.update(_words(tok.text[1:-1]))
            continue
        if tok.kind == "punct":
            text = tok.text
            if text == "?":
                ctx[1] += 1
            elif text == ":" and ctx[1] > 0:
                ctx[1] -= 1
            elif text == ";" and decl_depth == len(stack):
                decl_depth = None
            elif text == "(" or text == "[":
                stack.append([text, 0])
            elif text == "{":
                stack.append([_brace_kind(prev, ctx, class_depth, len(stack)), 0])
                if stack[-1][0] == "{class":
                    class_depth = None
            elif text in (")", "]", "}"):
                if len(stack) > 1:
                    stack.pop()
                if decl_depth is not None and decl_depth > len(stack):
                    decl_depth = None
            elif text == "," and decl_depth == len(stack) and nxt is not None and nxt.kind == "ident":
                declared.add(nxt.text)
            elif text == "=>" and prev is not None and prev.text == ")":
                opener = match_close.get(i - 1)
                if opener is None or opener < lo:
                    far = True
                if opener is not None:
                    # (a, b) => ...: the parenthesised parameters of an arrow function.
                    declared.update(_pattern_names(toks, opener, match_close))
            continue
        if tok.kind != "ident":
            continue
        name = tok.text
        if tok.role == "keyword":
            if name in ("var", "let", "const"):
                decl_depth = len(stack)
                if nxt is not None and nxt.kind == "ident":
                    declared.add(nxt.text)
                elif nxt is not None and nxt.text == "[":
                    far |= _beyond(match_close, i + 1, hi)
                    declared.update(_pattern_names(toks, i + 1, match_close))
            elif name == "class":
                class_depth = len(stack)
                if nxt is not None and nxt.kind == "ident" and nxt.text not in JS_KEYWORDS:
                    declared.add(nxt.text)
            elif name == "function":
                j = i + 1
                if j < n and toks[j].text == "*":
                    j += 1
                if j < n and toks[j].kind == "ident" and toks[j].text not in JS_KEYWORDS:
                    declared.add(toks[j].text)
                    j += 1
                if j > hi:
                    far = True
                if j < n and toks[j].text == "(":
                    far |= _beyond(match_close, j, hi)
                    declared.update(_pattern_names(toks, j, match_close))
            elif name == "catch" and nxt is not None and nxt.text == "(":
                far |= _beyond(match_close, i + 1, hi)
                declared.update(_pattern_names(toks, i + 1, match_close))
            continue
        role, looked = _ident_role(toks, i, prev, nxt, ctx, match_close)
        if looked is not None and looked > hi:
            far = True
        if role != "var":
            pinned.add(name)
        if name.startswith("#"):
            pinned.add(name)
        if nxt is not None:
            if nxt.text == "=>":
                declared.add(name)
            elif role == "key" and nxt.text == "(":
                # key(a, b) { ... }: a method definition's parameters.
                far |= _beyond(match_close, i + 1, hi)
                declared.update(_pattern_names(toks, i + 1, match_close))
    return class_depth, decl_depth, far


def _beyond(match_close: dict[int, int], opener: int, hi: int) -> bool:
    """Whether the bracket at ``opener`` closes after token ``hi`` (or not at all)."""
    close = match_close.get(opener)
    return close is None or close > hi


def _brace_kind(prev: Token | None, ctx: list, class_depth: int | None, depth: int) -> str:
    if class_depth is not None and class_depth == depth:
        return "{class"
    if prev is None:
        return "{block"
    if prev.kind == "tmpl":
        return "{obj" if prev.text.endswith("${") else "{block"
    if prev.kind == "ident":
        return "{obj" if prev.role == "keyword" and prev.text in _OBJECT_AFTER_KEYWORDS else "{block"
    if prev.kind != "punct":
        return "{block"
    if prev.text == ":":
        # An object's value or a ternary's branch, unless it is `case x: {` or a label.
        return "{obj" if ctx[0] != "{block" or ctx[1] > 0 else "{block"
    return "{obj" if prev.text in _OBJECT_AFTER_PUNCT else "{block"


def _ident_role(
    toks: Sequence[Token], i: int, prev: Token | None, nxt: Token | None, ctx: list, match_close: dict[int, int]
) -> tuple[str, int | None]:
    """The role of the name at ``i`` (var, key or prop), and the index of the furthest
    token looked at beyond ``i + 1`` (``None`` if none; ``len(toks)`` when a bracket's
    partner was looked for and not found)."""
    if prev is not None and prev.text in (".", "?."):
        return "prop", None
    kind = ctx[0]
    after = nxt.text if nxt is not None else ""
    before = prev.text if prev is not None else ""
    if kind == "{class":
        return "key", None
    if kind == "{obj":
        lead = before in ("{", ",")
        if not lead and before in ("get", "set", "async", "*", "static") and i >= 2:
            lead = toks[i - 2].text in ("{", ",")
        if lead and after in (":", "(", ",", "}", "="):
            return "key", None
        return "var", None
    if kind == "{block" and before in ("{", ",", ";", "}") and after == ":" and ctx[1] == 0:
        return "key", None  # a label, or an object literal taken for a block
    if after == "(" and before != "function":
        close = match_close.get(i + 1)
        if close is None:
            return "var", len(toks)
        if close + 1 < len(toks) and toks[close + 1].text == "{" and not toks[close + 1].nl_before:
            return "key", close + 1  # name(args) { ... }: a method definition in an object taken for a block
        return "var", close + 1
    return "var", None


def _matching(toks: Sequence[Token]) -> dict[int, int]:
    """Index of each bracket's partner, both ways."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, tok in enumerate(toks):
        if tok.kind == "tmpl":
            if tok.text.startswith("}") and stack:
                j = stack.pop()
                pairs[i], pairs[j] = j, i
            if tok.text.endswith("${"):
                stack.append(i)
        elif tok.bracket == 1:
            stack.append(i)
        elif tok.bracket == -1 and stack:
            j = stack.pop()
            pairs[i], pairs[j] = j, i
    return pairs


def _pattern_names(toks: Sequence[Token], opener: int, match_close: dict[int, int]) -> set[str]:
    """Plain names bound directly inside the brackets at ``opener``: ``(a, b = 1, ...c)``, ``[a, b]``."""
    close = match_close.get(opener)
    if close is None:
        return set()
    names: set[str] = set()
    depth = 0
    for j in range(opener + 1, close):
        tok = toks[j]
        if _is_open(tok):
            depth += 1
        elif _is_close(tok):
            depth -= 1
        elif depth == 0 and tok.kind == "ident" and tok.text not in JS_KEYWORDS:
            before = toks[j - 1].text
            if before in ("(", "[", ",", "..."):
                names.add(tok.text)
    return names


_WORD = re.compile(r"(?<![\w$])[A-Za-z_$][\w$]*")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


def _template_text(chunk: str) -> list[str]:
    body = chunk[1:]
    body = body[:-2] if body.endswith("${") else body[:-1]
    return [body]


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_ALPHANUMERIC = _LETTERS + "0123456789"


_PAIRS = tuple(a + b for b in _ALPHANUMERIC for a in _ALPHANUMERIC)  # _PAIRS[k]: k's two base-36 digits, low first


def _fresh_names(count: int, taken: set[str], rng: random.Random) -> list[str]:
    """``count`` new names of 3 to 5 characters, none in ``taken`` (which they join).

    A digit in every name keeps clear of keywords and of the browser's global names. One
    draw of random bits per name: drawing each character separately cost more than all
    the rest of the renaming. The name is those bits' digits: a length (3 to 5), a letter,
    then base-36 characters, low digits first (read two at a time from ``_PAIRS``).
    """
    names: list[str] = []
    while len(names) < count:
        bits = rng.getrandbits(48)
        length = 3 + bits % 3
        bits //= 3
        rest = bits // 26
        name = _LETTERS[bits % 26] + _PAIRS[rest % 1296]
        if length == 4:
            name += _ALPHANUMERIC[(rest // 1296) % 36]
        elif length == 5:
            name += _PAIRS[(rest // 1296) % 1296]
        if name not in taken and not name.isalpha():  # isalpha: no digit among [a-z0-9]
            taken.add(name)
            names.append(name)
    return names


def rename_map(scripts: Iterable[JavaScriptSource], rng: random.Random, pinned: Iterable[str] = ()) -> dict[str, str]:
    """Fresh names for every name the scripts declare and none of them pins."""
    scripts = list(scripts)
    declared: set[str] = set()
    keep: set[str] = set(pinned)
    every: set[str] = set()
    for script in scripts:
        declared |= script.declared
        keep |= script.pinned
        every |= script.idents
    names = sorted(declared - keep)
    return dict(zip(names, _fresh_names(len(names), every | keep, rng), strict=True))


# --- JavaScript emission -------------------------------------------------------------------

_WORDISH = re.compile(r"[\w$]")
_NO_SPACE_AFTER = frozenset({"(", "[", ".", "?.", "!", "~", "...", "#", "@"})
_NO_SPACE_BEFORE = frozenset({")", "]", ",", ";", ".", "?.", ":"})


def _is_unary(prev: Token | None) -> bool:
    if prev is None:
        return True
    if prev.kind in ("num", "str", "regex"):
        return False
    if prev.kind == "tmpl":
        return prev.text.endswith("${")
    if prev.kind == "ident":
        return prev.role == "keyword" and prev.text in _REGEX_AFTER_KEYWORDS
    return prev.text not in (")", "]", "}", "++", "--")


def _needs_space(prev: Token, tok: Token, prev_unary: bool) -> bool:
    a, b = prev.text, tok.text
    if _WORDISH.match(a[-1]) and _WORDISH.match(b[0]):
        return True
    if prev.kind == "num" and b.startswith("."):
        return True
    if prev.kind == "punct" and (tok.kind == "punct" or tok.kind == "regex") and (a + b[0]) in _PUNCT_PREFIXES:
        return True
    if a[-1] == "/" and b[0] in "/*":
        return True
    if a.endswith("<") and b.startswith("!"):
        return True
    if prev.kind == "tmpl" and a.endswith("${"):
        return False
    if tok.kind == "tmpl" and b.startswith("}"):
        return False
    if b in _NO_SPACE_BEFORE:
        return False
    if a in _NO_SPACE_AFTER or (prev_unary and a in ("+", "-", "++", "--")):
        return False
    if b in ("++", "--") and prev.kind in ("ident", "num") or (b in ("++", "--") and a in (")", "]")):
        return False
    if b in ("(", "["):
        if prev.kind == "ident":
            return prev.role == "keyword" and a not in ("super", "import", "this")
        return not (prev.kind in ("str", "tmpl", "regex") or a in (")", "]"))
    return True


_SPACE_CACHE: dict[tuple, bool] = {}


def _spacing_key(tok: Token) -> tuple[str, str, str]:
    # Spacing depends on a token's kind and edges, not on which name or string it is.
    if tok.kind == "ident" and tok.role != "keyword" or tok.kind == "str":
        return (tok.kind, "", tok.role)
    if tok.kind in ("num", "regex", "tmpl"):
        return (tok.kind, tok.text[0] + tok.text[-1], tok.role)
    return (tok.kind, tok.text, tok.role)


def emit_javascript(tokens: Sequence[Token], renames: dict[str, str], indent: str = "  ", base: str = "") -> str:
    """Canonical text for ``tokens``: renamed, one space where one is needed, indented by nesting.

    Every identifier is looked up in ``renames``: a name that appears anywhere as a
    keyword, property or key is pinned (see :class:`JavaScriptSource`), so the names in
    ``renames`` only ever appear as variables.
    """
    out: list[str] = []
    append = out.append
    content_indents: list[int] = []
    level = 0
    prev: Token | None = None
    prev_unary = False
    prev_key: tuple[str, str, str] = ("", "", "")
    cache = _SPACE_CACHE
    for tok in tokens:
        kind = tok.kind
        text = renames.get(tok.text, tok.text) if kind == "ident" else tok.text
        key = _spacing_key(tok)
        closes = tok.bracket == -1 or (kind == "tmpl" and text[0] == "}")
        if prev is None or tok.nl_before:
            if closes:
                level = (content_indents[-1] - 1) if content_indents else 0
            else:
                level = content_indents[-1] if content_indents else 0
            if prev is not None:
                append("\n")
            append(base + indent * max(level, 0))
        else:
            space = cache.get((prev_key, key, prev_unary))
            if space is None:
                space = _needs_space(prev, Token(kind, text, False, tok.role), prev_unary)
                if len(cache) > 100_000:
                    cache.clear()
                cache[(prev_key, key, prev_unary)] = space
            if space:
                append(" ")
        append(text)
        if closes and content_indents:
            content_indents.pop()
        if tok.bracket == 1 or (kind == "tmpl" and text[-1] == "{"):
            content_indents.append(level + 1)
        prev_unary = kind == "punct" and text in ("+", "-", "++", "--", "!", "~") and (
            _is_unary(prev) or (tok.nl_before and text in ("++", "--"))
        )
        prev = tok if text is tok.text else Token(kind, text, False, tok.role)
        prev_key = key
    return "".join(out) + "\n"


_UNARY_TEXTS = frozenset(("+", "-", "++", "--", "!", "~"))


def _layout_line(line: _Line, after_unary_context: bool) -> tuple[tuple[str, ...], bool, int, int]:
    """One line of :func:`emit_javascript`'s output, before renaming and indentation:
    ``(pieces, first token closes a bracket, brackets closed that the line did not open,
    brackets left open)``. ``after_unary_context`` is ``_is_unary`` of the token before
    the line, the only thing about what precedes a line its layout depends on."""
    pieces: list[str] = []
    append = pieces.append
    toks = line.tokens
    first = toks[0]
    append(first.text)
    closes_first = first.bracket == -1 or (first.kind == "tmpl" and first.text[0] == "}")
    cache = _SPACE_CACHE
    opened = 0  # brackets opened on this line and not yet closed
    outer = 0  # brackets closed on this line that earlier lines opened
    prev = first
    prev_key = _spacing_key(first)
    prev_unary = False
    for n, tok in enumerate(toks):
        kind, text = tok.kind, tok.text
        if n:
            key = _spacing_key(tok)
            space = cache.get((prev_key, key, prev_unary))
            if space is None:
                space = _needs_space(prev, tok, prev_unary)
                cache[(prev_key, key, prev_unary)] = space
            if kind == "ident":
                if space:
                    append(" ")
                append(text)
            else:
                # Only identifiers are renamed: the rest joins the text before it.
                last = pieces[-1]
                if last in line.idents:
                    append((" " if space else "") + text)
                else:
                    pieces[-1] = last + (" " if space else "") + text
            prev_key = key
        if tok.bracket == -1 or (kind == "tmpl" and text[0] == "}"):
            if opened:
                opened -= 1
            else:
                outer += 1
        if tok.bracket == 1 or (kind == "tmpl" and text[-1] == "{"):
            opened += 1
        prev_unary = kind == "punct" and text in _UNARY_TEXTS and (
            (after_unary_context if n == 0 else _is_unary(prev)) or (tok.nl_before and text in ("++", "--"))
        )
        prev = tok
    return tuple(pieces), closes_first, outer, opened


def _emit_lines(
    lines: Sequence[_Line], out: list[str], content_indents: list[int], before: Token | None, base: str, indent: str
) -> bool:
    """Append :func:`emit_javascript`'s output for ``lines`` to ``out`` (each line as "\\n",
    its indentation, then its pieces, not yet renamed), one cached line layout at a time;
    ``before`` is the token before them. False when the brackets close more than they
    open (only the token-by-token emission handles that the same way)."""
    cache = _LAYOUT_CACHE
    for line in lines:
        first = line.tokens[0]
        context = first.kind == "punct" and first.text in _UNARY_TEXTS and _is_unary(before)
        layout = cache.get((line, context))
        if layout is None:
            layout = _layout_line(line, context)
            _remember(cache, (line, context), layout)
        pieces, closes_first, outer, opened = layout
        if len(content_indents) < outer:
            return False
        level = content_indents[-1] - closes_first if content_indents else 0
        out.append("\n" + base + indent * max(level, 0))
        out += pieces
        if outer:
            del content_indents[-outer:]
        if opened:
            content_indents += [level + 1] * opened
        before = line.tokens[-1]
    return True


def _emit_units(units: Sequence[_Line | _Block], renames: dict[str, str], base: str = "", indent: str = "  ") -> str | None:
    """:func:`emit_javascript` of the tokens of ``units`` (lines, or blocks of lines whose
    layout is cached whole under the indentation they start at); ``None`` where
    :func:`_emit_lines` gives up."""
    out: list[str] = []
    content_indents: list[int] = []
    cache = _LAYOUT_CACHE
    before: Token | None = None
    for unit in units:
        if isinstance(unit, _Block):
            first = unit.tokens[0]
            context = first.kind == "punct" and first.text in _UNARY_TEXTS and _is_unary(before)
            key = (unit, tuple(content_indents), context, base, indent)
            layout = cache.get(key)
            if layout is None:
                pieces: list[str] = []
                if not _emit_lines(unit.lines, pieces, content_indents, before, base, indent):
                    return None
                layout = (tuple(pieces), tuple(content_indents))
                _remember(cache, key, layout)
            else:
                content_indents[:] = layout[1]
            out += layout[0]
        elif not _emit_lines((unit,), out, content_indents, before, base, indent):
            return None
        before = unit.tokens[-1]
    out.append("\n")
    text = "".join(map(renames.get, out, out)) if renames else "".join(out)
    return text[1:]  # the first line has no line break before it


def _function_spans(tokens: Sequence[Token], match_close: dict[int, int]) -> list[tuple[int, int]] | None:
    """The token spans of top-level ``function`` declarations, which are hoisted, so their
    order among themselves is free; ``None`` when fewer than two, or when a name repeats
    (the last declaration wins, so order matters)."""
    spans: list[tuple[int, int]] = []
    names: list[str] = []
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if tok.role == "keyword" and tok.text == "function" and (i == 0 or tok.nl_before or tokens[i - 1].text in (";", "}")):
            j = i + 1
            if j + 1 < n and tokens[j].kind == "ident" and tokens[j + 1].text == "(":
                close_paren = match_close.get(j + 1)
                if close_paren is not None and close_paren + 1 < n and tokens[close_paren + 1].text == "{":
                    end = match_close.get(close_paren + 1)
                    if end is not None:
                        names.append(tokens[j].text)
                        spans.append((i, end))
                        i = end + 1
                        continue
        if tok.bracket == 1 or (tok.kind == "tmpl" and tok.text.endswith("${")):
            # Skip the bracketed group: only top-level declarations move.
            i = match_close.get(i, n - 1) + 1
            continue
        i += 1
    if len(spans) < 2 or len(set(names)) != len(names):
        return None
    return spans


_NOT_LOCAL = object()
_SPANS_CACHE: dict[tuple[_Block, bool, bool], object] = {}


def _block_spans(block: _Block, first: bool, after_separator: bool) -> object:
    """:func:`_function_spans`' scan over one block that closes every bracket it opens,
    entered at the top level: ``(spans as offsets, names)``, or ``_NOT_LOCAL`` when the
    scan would look past the block (then only the whole-script scan will do)."""
    if block.closers or block.openers:
        return _NOT_LOCAL
    tokens = block.tokens
    pairs = dict(zip(block.pair_keys, block.pair_values, strict=True))
    spans: list[tuple[int, int]] = []
    names: list[str] = []
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if tok.role == "keyword" and tok.text == "function" and (
            (i == 0 and (first or after_separator)) or tok.nl_before or (i > 0 and tokens[i - 1].text in (";", "}"))
        ):
            j = i + 1
            if j + 1 >= n:
                return _NOT_LOCAL
            if tokens[j].kind == "ident" and tokens[j + 1].text == "(":
                close_paren = pairs[j + 1]
                if close_paren + 1 >= n:
                    return _NOT_LOCAL
                if tokens[close_paren + 1].text == "{":
                    end = pairs[close_paren + 1]
                    names.append(tokens[j].text)
                    spans.append((i, end))
                    i = end + 1
                    continue
        if tok.bracket == 1 or (tok.kind == "tmpl" and tok.text.endswith("${")):
            i = pairs[i] + 1
            continue
        i += 1
    return tuple(spans), tuple(names)


def _script_function_spans(script: JavaScriptSource) -> list[tuple[int, int]] | None:
    """:func:`_function_spans` of ``script``, from each block's cached scan when every
    block allows it."""
    spans: list[tuple[int, int]] = []
    names: list[str] = []
    before: Token | None = None
    cache = _SPANS_CACHE
    for block, start in zip(script.blocks, script.block_starts, strict=True):
        key = (block, start == 0, before is not None and before.text in (";", "}"))
        found = cache.get(key)
        if found is None:
            found = _block_spans(block, *key[1:])
            _remember(cache, key, found)
        if found is _NOT_LOCAL:
            return _function_spans(script.tokens, script.match_close)
        local_spans, local_names = found  # type: ignore[misc]
        spans += [(start + a, start + b) for a, b in local_spans]
        names += local_names
        before = block.tokens[-1]
    if len(spans) < 2 or len(set(names)) != len(names):
        return None
    return spans


def _shuffle_function_declarations(
    tokens: list[Token], rng: random.Random, match_close: dict[int, int] | None = None
) -> list[Token]:
    """``tokens`` with the top-level function declarations in a random order."""
    if match_close is None:
        match_close = _matching(tokens)
    spans = _function_spans(tokens, match_close)
    if spans is None:
        return tokens
    n = len(tokens)
    bodies = [tokens[a : b + 1] for a, b in spans]
    rng.shuffle(bodies)
    result: list[Token] = []
    cursor = 0
    for (a, b), body in zip(spans, bodies, strict=True):
        result += tokens[cursor:a]
        head = body[0]
        result.append(Token(head.kind, head.text, True, head.role, head.bracket))
        result += body[1:]
        cursor = b + 1
    if cursor < n:
        after = tokens[cursor]
        result.append(Token(after.kind, after.text, True, after.role, after.bracket))
        result += tokens[cursor + 1 :]
    return result


def _shuffle_units(
    units: Sequence[_Line | _Block], unit_starts: Sequence[int], spans: list[tuple[int, int]], n_tokens: int, rng: random.Random
) -> list[_Line | _Block] | None:
    """:func:`_shuffle_function_declarations` on whole lines or blocks: ``units``
    reordered, drawing the same random numbers; ``None`` (and no draw) when a declaration
    starts or ends within a unit."""
    unit_at = {start: k for k, start in enumerate(unit_starts)}
    ranges: list[tuple[int, int]] = []
    for a, b in spans:
        first = unit_at.get(a)
        after = unit_at.get(b + 1) if b + 1 < n_tokens else len(units)
        if first is None or after is None:
            return None
        ranges.append((first, after))
    order = list(range(len(ranges)))
    rng.shuffle(order)  # the same draws as shuffling the spans themselves
    result: list[_Line | _Block] = []
    cursor = 0
    for (first, after), k in zip(ranges, order, strict=True):
        result += units[cursor:first]
        result += units[ranges[k][0] : ranges[k][1]]
        cursor = after
    result += units[cursor:]
    return result


def _emit_script(script: JavaScriptSource, rng: random.Random, renames: dict[str, str], base: str = "") -> str:
    """``script`` with its top-level function declarations shuffled, renamed and laid out:
    from the caches, by blocks or lines, when its lines stand alone, else token by token."""
    if script.lines:
        state = rng.getstate()
        spans = _script_function_spans(script)
        units: list[_Line | _Block] | None
        if spans is None:
            units = list(script.blocks)
        else:
            n = len(script.tokens)
            units = _shuffle_units(script.blocks, script.block_starts, spans, n, rng)
            if units is None:
                units = _shuffle_units(script.lines, script.starts, spans, n, rng)
        if units is not None:
            text = _emit_units(units, renames, base)
            if text is not None:
                return text
        rng.setstate(state)  # the token-level path draws the same numbers again
    return emit_javascript(_shuffle_function_declarations(script.tokens, rng, script.match_close), renames, base=base)


def obfuscate_javascript(source: str, rng: random.Random, *, rename: bool = True) -> str:
    """One standalone script, obfuscated (see the module docstring)."""
    script = JavaScriptSource.parse(source)
    renames = rename_map([script], rng) if rename else {}
    return _emit_script(script, rng, renames)


# --- CSS -------------------------------------------------------------------------------------

_CSS_TOKEN = re.compile(
    r"""(?P<comment>/\*[\s\S]*?\*/)|(?P<str>"(?:[^"\\]|\\[\s\S])*"|'(?:[^'\\]|\\[\s\S])*')"""
    r"""|(?P<brace>[{};])|(?P<text>[^{};"'/]+|/)"""
)


def _css_items(tokens: list[tuple[str, str]], i: int) -> tuple[list, int]:
    items: list = []
    buf: list[str] = []
    while i < len(tokens):
        kind, text = tokens[i]
        i += 1
        if kind == "brace" and text == "{":
            children, i = _css_items(tokens, i)
            items.append(("rule", _collapse(buf), children))
            buf = []
        elif kind == "brace" and text == "}":
            break
        elif kind == "brace" and text == ";":
            if _collapse(buf):
                items.append(("decl", _collapse(buf)))
            buf = []
        else:
            buf.append(text if kind == "str" else re.sub(r"\s+", " ", text))
    if _collapse(buf):
        items.append(("decl", _collapse(buf)))
    return items, i


def _collapse(parts: list[str]) -> str:
    return "".join(parts).strip()


def _css_family(decl: str) -> str | None:
    if ":" not in decl:
        return None
    prop = decl.split(":", 1)[0].strip().lower()
    if prop.startswith("--"):
        return prop
    parts = [p for p in prop.split("-") if p]
    if prop.startswith("-") and len(parts) > 1:
        return parts[1]  # -webkit-transform belongs with transform
    return parts[0] if parts else None


def _emit_css(items: list, rng: random.Random, level: int, out: list[str]) -> None:
    pad = "  " * level
    if items and all(item[0] == "decl" for item in items):
        families = [_css_family(item[1]) for item in items]
        if None not in families and len(set(families)) == len(families):
            items = list(items)
            rng.shuffle(items)
    for item in items:
        if item[0] == "decl":
            text = item[1]
            if ":" in text and not text.startswith("@"):
                prop, value = text.split(":", 1)
                text = f"{prop.strip()}: {value.strip()}"
            out.append(f"{pad}{text};\n")
        else:
            out.append(f"{pad}{item[1]} {{\n")
            _emit_css(item[2], rng, level + 1, out)
            out.append(f"{pad}}}\n")


def obfuscate_css(source: str, rng: random.Random) -> str:
    """Comments dropped, canonical layout, declarations of a rule shuffled where that is safe."""
    out: list[str] = []
    _emit_css(_parse_css(source), rng, 0, out)
    return "".join(out)


@lru_cache(maxsize=256)
def _parse_css(source: str) -> list:
    # Cached by the exact text: a task's completions share their stylesheet. Safe to
    # share: _emit_css shuffles a copy and never changes the items.
    tokens = [(m.lastgroup or "", m.group()) for m in _CSS_TOKEN.finditer(source) if m.lastgroup != "comment"]
    return _css_items(tokens, 0)[0]


# --- Python ----------------------------------------------------------------------------------


def obfuscate_python(source: str) -> str:
    """Comments and blank lines dropped; the code itself is kept as written."""
    lines = source.splitlines(keepends=True)
    comments: dict[int, int] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.start[1]
    except (tokenize.TokenError, SyntaxError):
        return source
    out = []
    for number, line in enumerate(lines, start=1):
        if number in comments:
            line = line[: comments[number]].rstrip() + "\n"
        if line.strip():
            out.append(line.rstrip() + "\n")
    return "".join(out)


# --- HTML and whole completions --------------------------------------------------------------

_RAW_TEXT = frozenset({"script", "style"})
# HTML's own whitespace; U+00A0 (a non-breaking space) is content, not whitespace.
_HTML_SPACE = " \t\n\r\f"
_HTML_SPACE_RUN = re.compile(r"[ \t\n\r\f]+")
_KEEP_WHITESPACE = frozenset({"pre", "textarea", "listing", "plaintext"})
_VOID = frozenset(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"])
_JS_SCRIPT_TYPES = frozenset({"", "text/javascript", "application/javascript", "module"})


class _HTMLRecorder(HTMLParser):
    """Parses once and records the handler calls, for :func:`_html_events`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.events: list[tuple] = []

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
def _html_events(content: str) -> tuple[tuple, ...]:
    """The handler calls :class:`HTMLParser` (``convert_charrefs=False``) makes for
    ``content``, cached by the exact text: the scan and the rewrite of a page replay one
    parse, and pages repeat (a task's completions often share theirs)."""
    recorder = _HTMLRecorder()
    recorder.feed(content)
    recorder.close()
    return tuple(recorder.events)


def _replay(events: tuple[tuple, ...], parser: HTMLParser) -> None:
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
        if tag not in _VOID:
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
            self.out.append("\n" + "".join(base + line for line in css.splitlines(keepends=True)) + "  " * max(len(self.stack) - 1, 0))
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


def _file_renames(files: Sequence[CodeFile], references: list[str], entry: str, rng: random.Random) -> dict[str, str]:
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
    """A completion's files, obfuscated together (see the module docstring).

    ``rename=False`` keeps every identifier and file name and does the rest: the fallback
    for code whose renamed form no longer checks.
    """
    js_sources: list[JavaScriptSource] = []
    parsed: dict[int, JavaScriptSource | list[JavaScriptSource]] = {}
    handler_names: set[str] = set()
    references: list[str] = []
    for n, file in enumerate(files):
        kind = _kind(file)
        if kind == "html":
            scan = _HTMLScan()
            _replay(_html_events(file.content), scan)
            inline = [JavaScriptSource.parse(s) for s in scan.scripts if s.strip()]
            parsed[n] = inline
            js_sources += inline
            handler_names |= scan.handler_names
            references += scan.references
        elif kind == "js":
            parsed[n] = JavaScriptSource.parse(file.content)
            js_sources.append(parsed[n])  # type: ignore[arg-type]
    renames = rename_map(js_sources, rng, handler_names) if rename else {}
    file_names = _file_renames(files, references, entry, rng) if rename else {}
    result: list[CodeFile] = []
    for n, file in enumerate(files):
        kind = _kind(file)
        if kind == "html":
            writer = _HTMLRewrite(rng, renames, file_names, rename, parsed[n])  # type: ignore[arg-type]
            _replay(_html_events(file.content), writer)
            content = "".join(writer.out).strip() + "\n"
        elif kind == "js":
            script = parsed[n]
            assert isinstance(script, JavaScriptSource)
            content = _emit_script(script, rng, renames)
        elif kind == "css":
            content = obfuscate_css(file.content, rng)
        elif kind == "python":
            content = obfuscate_python(file.content)
        else:
            content = file.content
        result.append(
            CodeFile(filename=file_names.get(file.filename, file.filename), content=content, language=file.language)
        )
    head = [f for f in result if f.filename == entry]
    rest = [f for f in result if f.filename != entry]
    rng.shuffle(rest)
    return head + rest

