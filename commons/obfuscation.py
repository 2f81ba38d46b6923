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
    """The tokens of one source line that tokenises on its own (see :func:`_tokenize_lines`)."""

    __slots__ = ("tokens", "idents")

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self.tokens = tokens
        self.idents = frozenset(t.text for t in tokens if t.kind == "ident")


# Caches shared by every script obfuscated in this process, keyed by identical input
# only. The procedural backend's completions are one engine with different values, so
# nearly every line of every script has been seen before; tokenising, analysing and
# laying out a script then costs a dictionary look-up per line instead of Python work per
# token. Bounded: each is emptied when it grows past _CACHE_LIMIT entries.
_CACHE_LIMIT = 50_000
_LINE_CACHE: dict[tuple[str, bool, bool, bool], _Line | None] = {}
_ANALYSIS_CACHE: dict[tuple, tuple] = {}
_LAYOUT_CACHE: dict[tuple[_Line, bool], tuple] = {}


def _remember(cache: dict, key: object, value: object) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _tokenize_lines(source: str) -> tuple[list[Token], list[_Line], list[int]] | None:
    """``(tokens, lines, starts)``: the tokens of ``source`` and the same tokens grouped by
    source line (lines without tokens left out; ``starts[k]`` is the index in ``tokens``
    of line ``k``'s first token); ``None`` when some line does not stand alone.

    A line stands alone when no token crosses its end (a block comment, a template or a
    string continued on the next line) and no line break other than its own end starts a
    token in it. Each such line tokenises the same whatever surrounds it, given the line
    text and three facts about what precedes it (the key of the line cache), so the
    result equals :func:`_tokenize` of the whole source.
    """
    tokens: list[Token] = []
    lines: list[_Line] = []
    starts: list[int] = []
    cache = _LINE_CACHE
    last: Token | None = None
    newline = False
    for text in source.split("\n"):
        if last is None:
            key = (text, newline, True, False)
        else:
            key = (text, newline, _regex_allowed_after(last), last.text in (".", "?."))
        line = cache.get(key, _MISSING)
        if line is _MISSING:
            try:
                found = _tokenize(text, *key[1:])
            except ObfuscationError:
                line = None  # crosses into the next line, or is bad: the whole-source path decides
            else:
                line = None if any(t.nl_before for t in found[1:]) else _Line(tuple(found))
            _remember(cache, key, line)
        if line is None:
            return None
        newline = True
        if line.tokens:  # type: ignore[union-attr]
            starts.append(len(tokens))
            lines.append(line)  # type: ignore[arg-type]
            tokens += line.tokens  # type: ignore[union-attr]
            last = tokens[-1]
    return tokens, lines, starts


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
    keep their spelling."""

    tokens: list[Token]
    source: str = ""
    declared: set[str] = field(default_factory=set)
    pinned: set[str] = field(default_factory=set)
    match_close: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, source: str) -> JavaScriptSource:
        script = cls(tokenize_javascript(source), source)
        script._analyse()
        return script

    def _analyse(self) -> None:
        toks = self.tokens
        n = len(toks)
        # Context stack entries: "(", "[", "${", "{obj", "{block", "{class"; plus a count of
        # open "?" per entry, to tell a ternary's ":" from a label's or a case's.
        stack: list[list] = [["{block", 0]]
        class_depth: int | None = None
        decl_depth: int | None = None
        match_close = self.match_close = _matching(toks)
        for i, tok in enumerate(toks):
            prev = toks[i - 1] if i else None
            nxt = toks[i + 1] if i + 1 < n else None
            ctx = stack[-1]
            if tok.kind == "tmpl":
                for literal in _template_text(tok.text):
                    self.pinned.update(_words(literal))
                if tok.text.startswith("}") and len(stack) > 1:
                    stack.pop()
                if tok.text.endswith("${"):
                    stack.append(["${", 0])
                continue
            if tok.kind == "str":
                self.pinned.update(_words(tok.text[1:-1]))
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
                    stack.append([self._brace_kind(prev, ctx, class_depth, len(stack)), 0])
                    if stack[-1][0] == "{class":
                        class_depth = None
                elif text in (")", "]", "}"):
                    if len(stack) > 1:
                        stack.pop()
                    if decl_depth is not None and decl_depth > len(stack):
                        decl_depth = None
                elif text == "," and decl_depth == len(stack) and nxt is not None and nxt.kind == "ident":
                    self.declared.add(nxt.text)
                elif text == "=>" and prev is not None and prev.text == ")" and (i - 1) in match_close:
                    # (a, b) => ...: the parenthesised parameters of an arrow function.
                    self.declared.update(_pattern_names(toks, match_close[i - 1], match_close))
                continue
            if tok.kind != "ident":
                continue
            name = tok.text
            if name in JS_KEYWORDS and not (prev is not None and prev.text in (".", "?.")):
                tok.role = "keyword"
                if name in ("var", "let", "const"):
                    decl_depth = len(stack)
                    if nxt is not None and nxt.kind == "ident":
                        self.declared.add(nxt.text)
                    elif nxt is not None and nxt.text == "[":
                        self.declared.update(_pattern_names(toks, i + 1, match_close))
                elif name == "class":
                    class_depth = len(stack)
                    if nxt is not None and nxt.kind == "ident" and nxt.text not in JS_KEYWORDS:
                        self.declared.add(nxt.text)
                elif name == "function":
                    j = i + 1
                    if j < n and toks[j].text == "*":
                        j += 1
                    if j < n and toks[j].kind == "ident" and toks[j].text not in JS_KEYWORDS:
                        self.declared.add(toks[j].text)
                        j += 1
                    if j < n and toks[j].text == "(":
                        self.declared.update(_pattern_names(toks, j, match_close))
                elif name == "catch" and nxt is not None and nxt.text == "(":
                    self.declared.update(_pattern_names(toks, i + 1, match_close))
                continue
            role = self._ident_role(i, prev, nxt, ctx, match_close)
            tok.role = role
            if role != "var":
                self.pinned.add(name)
            if name.startswith("#"):
                self.pinned.add(name)
            if nxt is not None:
                if nxt.text == "=>":
                    self.declared.add(name)
                elif role == "key" and nxt.text == "(":
                    # key(a, b) { ... }: a method definition's parameters.
                    self.declared.update(_pattern_names(toks, i + 1, match_close))
        self.pinned.update(n for n in self.declared if n in JS_KEYWORDS or n in JS_GLOBALS)

    @staticmethod
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

    def _ident_role(self, i: int, prev: Token | None, nxt: Token | None, ctx: list, match_close: dict[int, int]) -> str:
        toks = self.tokens
        if prev is not None and prev.text in (".", "?."):
            return "prop"
        kind = ctx[0]
        after = nxt.text if nxt is not None else ""
        before = prev.text if prev is not None else ""
        if kind == "{class":
            return "key"
        if kind == "{obj":
            lead = before in ("{", ",")
            if not lead and before in ("get", "set", "async", "*", "static") and i >= 2:
                lead = toks[i - 2].text in ("{", ",")
            if lead and after in (":", "(", ",", "}", "="):
                return "key"
            return "var"
        if kind == "{block" and before in ("{", ",", ";", "}") and after == ":" and ctx[1] == 0:
            return "key"  # a label, or an object literal taken for a block
        if after == "(" and before != "function":
            close = match_close.get(i + 1)
            if close is not None and close + 1 < len(toks) and toks[close + 1].text == "{" and not toks[close + 1].nl_before:
                return "key"  # name(args) { ... }: a method definition in an object taken for a block
        return "var"


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


def _fresh_names(count: int, taken: set[str], rng: random.Random) -> list[str]:
    """``count`` new names of 3 to 5 characters, none in ``taken`` (which they join).

    A digit in every name keeps clear of keywords and of the browser's global names. One
    draw of random bits per name: drawing each character separately cost more than all
    the rest of the renaming.
    """
    names: list[str] = []
    while len(names) < count:
        bits = rng.getrandbits(48)
        length = 3 + bits % 3
        bits //= 3
        chars = [_LETTERS[bits % 26]]
        bits //= 26
        for _ in range(length - 1):
            chars.append(_ALPHANUMERIC[bits % 36])
            bits //= 36
        name = "".join(chars)
        if name not in taken and any(c.isdigit() for c in name):
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
        every.update(t.text for t in script.tokens if t.kind == "ident")
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
    """Canonical text for ``tokens``: renamed, one space where one is needed, indented by nesting."""
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
        text = renames.get(tok.text, tok.text) if kind == "ident" and tok.role == "var" else tok.text
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


def _shuffle_function_declarations(
    tokens: list[Token], rng: random.Random, match_close: dict[int, int] | None = None
) -> list[Token]:
    """Top-level ``function`` declarations are hoisted: their order among themselves is free."""
    if match_close is None:
        match_close = _matching(tokens)
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
        return tokens  # a repeated name: the last declaration wins, so order matters
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


def obfuscate_javascript(source: str, rng: random.Random, *, rename: bool = True) -> str:
    """One standalone script, obfuscated (see the module docstring)."""
    script = JavaScriptSource.parse(source)
    renames = rename_map([script], rng) if rename else {}
    return emit_javascript(_shuffle_function_declarations(script.tokens, rng, script.match_close), renames)


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
    tokens = [(m.lastgroup or "", m.group()) for m in _CSS_TOKEN.finditer(source) if m.lastgroup != "comment"]
    items, _ = _css_items(tokens, 0)
    out: list[str] = []
    _emit_css(items, rng, 0, out)
    return "".join(out)


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


class _HTMLScan(HTMLParser):
    """First pass: inline scripts, names used by event attributes, and file references."""

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
            body = emit_javascript(
                _shuffle_function_declarations(script.tokens, self.rng, script.match_close), self.renames if self.rename else {}, base=base
            )
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


def _kind(file: CodeFile) -> str:
    language = file.language.lower()
    suffix = PurePosixPath(file.filename).suffix.lower()
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
        suffix = PurePosixPath(file.filename).suffix
        stem = _fresh_names(1, {PurePosixPath(t).stem for t in taken}, rng)[0]
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
            scan.feed(file.content)
            scan.close()
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
            writer.feed(file.content)
            writer.close()
            content = "".join(writer.out).strip() + "\n"
        elif kind == "js":
            script = parsed[n]
            assert isinstance(script, JavaScriptSource)
            content = emit_javascript(_shuffle_function_declarations(script.tokens, rng, script.match_close), renames)
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

