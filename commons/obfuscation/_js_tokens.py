"""JavaScript tokens: the tokenizer, :class:`JavaScriptSource` (one script tokenised and
analysed) and :func:`rename_map`, the fresh names for what the scripts of a completion declare.

The JavaScript handling is a tokenizer plus a bracket-context pass, not a full parser. It
is conservative: when a name's role is unclear the name keeps its spelling. Callers that
can check the result (the synthetic pipeline does, with node) fall back to
``rename=False`` if the renamed code no longer parses.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar, overload

JS_KEYWORDS = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "import",
        "in",
        "instanceof",
        "new",
        "null",
        "return",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "let",
        "static",
        "enum",
        "await",
        "implements",
        "package",
        "protected",
        "interface",
        "private",
        "public",
        "async",
        "of",
        "get",
        "set",
        "arguments",
        "eval",
        "undefined",
        "NaN",
        "Infinity",
    ]
)
# Globals a script may use without declaring them; a local of the same name is left alone
# because renaming by name (we do not track scopes) would also rename the global.
JS_GLOBALS = frozenset(
    [
        "window",
        "document",
        "navigator",
        "console",
        "performance",
        "location",
        "history",
        "screen",
        "self",
        "top",
        "parent",
        "frames",
        "opener",
        "name",
        "status",
        "origin",
        "length",
        "event",
        "open",
        "close",
        "print",
        "alert",
        "confirm",
        "prompt",
        "scroll",
        "focus",
        "blur",
        "stop",
        "find",
        "external",
        "closed",
        "Math",
        "JSON",
        "Date",
        "Image",
        "Audio",
        "Option",
        "Array",
        "Object",
        "String",
        "Number",
        "Boolean",
        "Symbol",
        "Map",
        "Set",
        "WeakMap",
        "WeakSet",
        "Promise",
        "Proxy",
        "Reflect",
        "RegExp",
        "Error",
        "TypeError",
        "RangeError",
        "Intl",
        "BigInt",
        "globalThis",
        "requestAnimationFrame",
        "cancelAnimationFrame",
        "setTimeout",
        "clearTimeout",
        "setInterval",
        "clearInterval",
        "fetch",
        "localStorage",
        "sessionStorage",
        "devicePixelRatio",
        "innerWidth",
        "innerHeight",
        "addEventListener",
        "removeEventListener",
        "getComputedStyle",
        "matchMedia",
        "crypto",
        "URL",
        "Blob",
        "File",
        "Worker",
    ]
)
_REGEX_AFTER_KEYWORDS = frozenset(
    [
        "return",
        "typeof",
        "instanceof",
        "in",
        "of",
        "new",
        "delete",
        "void",
        "throw",
        "case",
        "do",
        "else",
        "yield",
        "await",
    ]
)
_PUNCTUATORS = sorted(
    [
        ">>>=",
        "...",
        "===",
        "!==",
        "**=",
        "<<=",
        ">>=",
        ">>>",
        "&&=",
        "||=",
        "??=",
        "=>",
        "==",
        "!=",
        "<=",
        ">=",
        "&&",
        "||",
        "??",
        "?.",
        "++",
        "--",
        "+=",
        "-=",
        "*=",
        "/=",
        "%=",
        "&=",
        "|=",
        "^=",
        "**",
        "<<",
        ">>",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ";",
        ",",
        "<",
        ">",
        "+",
        "-",
        "*",
        "/",
        "%",
        "&",
        "|",
        "^",
        "!",
        "~",
        "?",
        ":",
        "=",
        ".",
        "@",
        "#",
    ],
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


def _tokenize(
    source: str, newline: bool = False, regex_ok: bool = True, after_dot: bool = False
) -> list[Token]:
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
            raise ObfuscationError(f"cannot tokenise JavaScript at offset {pos}: {source[pos : pos + 20]!r}")
        kind = match.lastgroup
        assert kind is not None  # every alternative of _JS_TOKEN is a named group
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
        append(Token(kind, text, newline))
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


class _Unit:
    """What the per-script passes need of a line or a block of lines, worked out once: its
    tokens, identifiers, what may follow it, and its brackets (see :class:`_Line`)."""

    __slots__ = (
        "tokens",
        "idents",
        "regex_after",
        "dot_after",
        "pair_keys",
        "pair_values",
        "closers",
        "openers",
    )
    tokens: tuple[Token, ...]
    idents: frozenset[str]
    regex_after: bool
    dot_after: bool
    pair_keys: tuple[int, ...]
    pair_values: tuple[int, ...]
    closers: tuple[int, ...]
    openers: tuple[int, ...]


class _Line(_Unit):
    """The tokens of one source line that tokenises on its own (see :func:`_tokenize_lines`),
    with what the per-script passes need of it, worked out once."""

    __slots__ = ()

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


class _BracketPairs(Protocol):
    """The index of each bracket's partner, both ways: what :func:`_matching` returns, or
    a :class:`_LazyMatch`."""

    @overload
    def get(self, key: int, /) -> int | None: ...
    @overload
    def get(self, key: int, default: int, /) -> int: ...


class _LazyMatch:
    """:func:`_matching_lines` of the given blocks, computed on the first look-up."""

    __slots__ = ("_blocks", "_starts", "_pairs")

    def __init__(self, blocks: Sequence[_Block], starts: Sequence[int]) -> None:
        self._blocks, self._starts = blocks, starts
        self._pairs: dict[int, int] | None = None

    @overload
    def get(self, index: int, /) -> int | None: ...
    @overload
    def get(self, index: int, default: int, /) -> int: ...
    def get(self, index: int, default: int | None = None, /) -> int | None:
        if self._pairs is None:
            self._pairs = _matching_lines(self._blocks, self._starts)
        return self._pairs.get(index, default)


def _matching_lines(lines: Sequence[_Line | _Block], starts: Sequence[int]) -> dict[int, int]:
    """:func:`_matching` of the tokens of ``lines``, from each line's own pairs."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for line, start in zip(lines, starts, strict=True):
        if line.pair_keys:
            pairs.update(
                zip(map(start.__add__, line.pair_keys), map(start.__add__, line.pair_values), strict=True)
            )
        for offset in line.closers:
            if stack:
                i, j = start + offset, stack.pop()
                pairs[i], pairs[j] = j, i
        if line.openers:
            stack += map(start.__add__, line.openers)
    return pairs


# The analysis state between lines (see _analyse_span): the bracket contexts, each as
# (kind, count of open "?"), then class_depth and decl_depth.
_State = tuple[tuple[tuple[str, int], ...], int | None, int | None]
# What the analysis of a line or block leads to: the state after it, the names it
# declares and the names it pins.
_Outcome = tuple[_State, frozenset[str], frozenset[str]]


class _Context:
    """One bracket context of :func:`_analyse_span`'s stack: its kind ("(", "[", "${",
    "{obj", "{block" or "{class") and the count of "?" open in it."""

    __slots__ = ("kind", "ternaries")

    def __init__(self, kind: str, ternaries: int = 0) -> None:
        self.kind, self.ternaries = kind, ternaries


# Caches shared by every script obfuscated in this process, keyed by identical input
# only. The procedural backend's completions are one engine with different values, so
# nearly every line of every script has been seen before; tokenising, analysing and
# laying out a script then costs a dictionary look-up per line instead of Python work per
# token. Bounded: each is emptied when it grows past _CACHE_LIMIT entries (a few tens of
# megabytes at most); the lines and blocks worth keeping come back within a few tasks.
_CACHE_LIMIT = 20_000
_LINE_CACHE: dict[tuple[str, bool, bool, bool], _Line | None] = {}
_BLOCK_CACHE: dict[tuple[str, bool, bool, bool], _Block | None] = {}
# What the analysis of a line or block depends on, and what it found: see
# JavaScriptSource._analyse_by_block.
_AnalysisKey = tuple["_Line | _Block", _State, Token | None, Token | None, Token | None]
_ANALYSIS_CACHE: dict[_AnalysisKey, _Outcome] = {}

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


class _Missing(enum.Enum):
    """What a cache look-up returns for a key it does not hold (``None`` is a value the
    caches hold)."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING


def _remember(cache: dict[_Key, _Value], key: _Key, value: _Value, limit: int = _CACHE_LIMIT) -> None:
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value


class _Block(_Unit):
    """Lines of a source between blank lines (a statement or a function, usually), as
    :class:`_Line` does for one line: the unit of the caches above lines."""

    __slots__ = ("lines", "offsets")

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
        if line.tokens:
            lines.append(line)
            regex_ok, after_dot = line.regex_after, line.dot_after
    return _Block(lines, regex_ok, after_dot)


def _tokenize_lines(
    source: str,
) -> tuple[list[Token], list[_Line], list[int], list[_Block], list[int]] | None:
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
        if block.tokens:
            start = len(tokens)
            block_starts.append(start)
            blocks.append(block)
            lines += block.lines
            starts += map(start.__add__, block.offsets)
            tokens += block.tokens
            regex_ok, after_dot = block.regex_after, block.dot_after
    return tokens, lines, starts, blocks, block_starts


def tokenize_javascript(source: str) -> list[Token]:
    """Significant tokens of ``source``; comments dropped, ``nl_before`` marks line breaks."""
    by_line = _tokenize_lines(source)
    return by_line[0] if by_line is not None else _tokenize(source)


def _is_open(tok: Token) -> bool:
    return tok.bracket == 1 or (tok.kind == "tmpl" and tok.text.endswith("${"))


def _is_close(tok: Token) -> bool:
    return tok.bracket == -1 or (tok.kind == "tmpl" and tok.text.startswith("}"))


_OBJECT_AFTER_PUNCT = frozenset(
    [
        "(",
        "[",
        ",",
        "=",
        ":",
        "?",
        "||",
        "&&",
        "??",
        "!",
        "+",
        "-",
        "*",
        "/",
        "%",
        "<",
        ">",
        "<=",
        ">=",
        "==",
        "===",
        "!=",
        "!==",
        "+=",
        "-=",
        "*=",
        "/=",
        "%=",
        "||=",
        "&&=",
        "??=",
        "...",
        "&",
        "|",
        "^",
        "~",
        "**",
    ]
)
_OBJECT_AFTER_KEYWORDS = frozenset(
    ["return", "typeof", "void", "yield", "await", "in", "of", "new", "delete", "instanceof", "throw"]
)


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
    match_close: _BracketPairs = field(default_factory=dict[int, int])
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
            _analyse_span(
                script.tokens,
                script.match_close,
                0,
                len(script.tokens),
                [_Context("{block")],
                None,
                None,
                script.declared,
                script.pinned,
            )
            script.idents = {t.text for t in script.tokens if t.kind == "ident"}
        else:
            tokens, lines, starts, blocks, block_starts = by_line
            script = cls(tokens, source, lines=lines, starts=starts, blocks=blocks, block_starts=block_starts)
            # Most scripts never need the bracket pairs (the cached analyses and the
            # block-level function spans do without): worked out on first use.
            script.match_close = _LazyMatch(blocks, block_starts)
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
        cache = _ANALYSIS_CACHE
        state: _State = ((("{block", 0),), None, None)
        lines, starts = self.lines, self.starts
        first_line = 0
        for block, start in zip(self.blocks, self.block_starts, strict=True):
            end = start + len(block.tokens)
            count = len(block.lines)
            key = _analysis_key(block, state, toks, start, end)
            outcome = cache.get(key)
            if outcome is None:
                found_declared: set[str] = set()
                found_pinned: set[str] = set()
                exit_state, far = self._analyse_lines(
                    lines[first_line : first_line + count],
                    starts[first_line : first_line + count],
                    state,
                    found_declared,
                    found_pinned,
                )
                outcome = (exit_state, frozenset(found_declared), frozenset(found_pinned))
                if not far:
                    _remember(cache, key, outcome)
            state, new_declared, new_pinned = outcome
            if new_declared:
                self.declared |= new_declared
            if new_pinned:
                self.pinned |= new_pinned
            first_line += count

    def _analyse_lines(
        self,
        lines: Sequence[_Line],
        starts: Sequence[int],
        state: _State,
        declared: set[str],
        pinned: set[str],
    ) -> tuple[_State, bool]:
        """:meth:`_analyse_by_block` for single lines; returns the state after them and
        whether any line looked outside its window."""
        toks = self.tokens
        cache = _ANALYSIS_CACHE
        any_far = False
        for line, start in zip(lines, starts, strict=True):
            end = start + len(line.tokens)
            key = _analysis_key(line, state, toks, start, end)
            outcome = cache.get(key)
            if outcome is None:
                stack, class_depth, decl_depth = state
                working = [_Context(kind, ternaries) for kind, ternaries in stack]
                found_declared: set[str] = set()
                found_pinned: set[str] = set()
                class_depth, decl_depth, far = _analyse_span(
                    toks,
                    self.match_close,
                    start,
                    end,
                    working,
                    class_depth,
                    decl_depth,
                    found_declared,
                    found_pinned,
                )
                outcome = (
                    (tuple((ctx.kind, ctx.ternaries) for ctx in working), class_depth, decl_depth),
                    frozenset(found_declared),
                    frozenset(found_pinned),
                )
                if far:
                    any_far = True
                else:
                    _remember(cache, key, outcome)
            state, new_declared, new_pinned = outcome
            if new_declared:
                declared |= new_declared
            if new_pinned:
                pinned |= new_pinned
        return state, any_far


def _analysis_key(
    unit: _Block | _Line, state: _State, toks: Sequence[Token], start: int, end: int
) -> _AnalysisKey:
    """What a block's or line's analysis depends on: its tokens (``toks[start:end]``), the
    context it starts in, and the tokens around it it may look at (two before, one after)."""
    return (
        unit,
        state,
        toks[start - 2] if start >= 2 else None,
        toks[start - 1] if start >= 1 else None,
        toks[end] if end < len(toks) else None,
    )


def _analyse_span(
    toks: Sequence[Token],
    match_close: _BracketPairs,
    start: int,
    end: int,
    stack: list[_Context],
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
                stack.append(_Context("${"))
            continue
        if tok.kind == "str":
            pinned.update(_words(tok.text[1:-1]))
            continue
        if tok.kind == "punct":
            text = tok.text
            if text == "?":
                ctx.ternaries += 1
            elif text == ":" and ctx.ternaries > 0:
                ctx.ternaries -= 1
            elif text == ";" and decl_depth == len(stack):
                decl_depth = None
            elif text == "(" or text == "[":
                stack.append(_Context(text))
            elif text == "{":
                stack.append(_Context(_brace_kind(prev, ctx, class_depth, len(stack))))
                if stack[-1].kind == "{class":
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


def _beyond(match_close: _BracketPairs, opener: int, hi: int) -> bool:
    """Whether the bracket at ``opener`` closes after token ``hi`` (or not at all)."""
    close = match_close.get(opener)
    return close is None or close > hi


def _brace_kind(prev: Token | None, ctx: _Context, class_depth: int | None, depth: int) -> str:
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
        return "{obj" if ctx.kind != "{block" or ctx.ternaries > 0 else "{block"
    return "{obj" if prev.text in _OBJECT_AFTER_PUNCT else "{block"


def _ident_role(
    toks: Sequence[Token],
    i: int,
    prev: Token | None,
    nxt: Token | None,
    ctx: _Context,
    match_close: _BracketPairs,
) -> tuple[str, int | None]:
    """The role of the name at ``i`` (var, key or prop), and the index of the furthest
    token looked at beyond ``i + 1`` (``None`` if none; ``len(toks)`` when a bracket's
    partner was looked for and not found)."""
    if prev is not None and prev.text in (".", "?."):
        return "prop", None
    kind = ctx.kind
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
    if kind == "{block" and before in ("{", ",", ";", "}") and after == ":" and ctx.ternaries == 0:
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


def _pattern_names(toks: Sequence[Token], opener: int, match_close: _BracketPairs) -> set[str]:
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


_PAIRS = tuple(
    a + b for b in _ALPHANUMERIC for a in _ALPHANUMERIC
)  # _PAIRS[k]: k's two base-36 digits, low first


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


def rename_map(
    scripts: Iterable[JavaScriptSource], rng: random.Random, pinned: Iterable[str] = ()
) -> dict[str, str]:
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
