"""JavaScript emission: tokens back to text, renamed, in canonical spacing and indentation,
with the top-level function declarations (hoisted, so their order is free) shuffled.

Line breaks stay where the source had them: automatic semicolon insertion depends on them.
A script whose lines stand alone (see :func:`commons.obfuscation._js_tokens._tokenize_lines`)
is laid out from caches, by block of lines or by line, else token by token; both give the
same text from the same random draws.
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Sequence
from typing import Final

from commons.obfuscation._js_tokens import (
    _PUNCT_PREFIXES,
    _REGEX_AFTER_KEYWORDS,
    JavaScriptSource,
    Token,
    _Block,
    _BracketPairs,
    _Line,
    _matching,
    _remember,
    rename_map,
)

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
    if (
        prev.kind == "punct"
        and (tok.kind == "punct" or tok.kind == "regex")
        and (a + b[0]) in _PUNCT_PREFIXES
    ):
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


_SpacingKey = tuple[str, str, str]
_SPACE_CACHE: dict[tuple[_SpacingKey, _SpacingKey, bool], bool] = {}
# The layouts of lines and of blocks: caches of the kind the comment above _CACHE_LIMIT in
# _js_tokens explains, bounded the same way. A line's is what _layout_line returns; a
# block's, keyed also by the indentation it starts at and the indent strings, is its
# pieces and the indentation it leaves.
_LineLayout = tuple[tuple[str, ...], bool, int, int]
_LINE_LAYOUT_CACHE: dict[tuple[_Line, bool], _LineLayout] = {}
_BLOCK_LAYOUT_CACHE: dict[
    tuple[_Block, tuple[int, ...], bool, str, str], tuple[tuple[str, ...], tuple[int, ...]]
] = {}


def _spacing_key(tok: Token) -> _SpacingKey:
    # Spacing depends on a token's kind and edges, not on which name or string it is.
    if tok.kind == "ident" and tok.role != "keyword" or tok.kind == "str":
        return (tok.kind, "", tok.role)
    if tok.kind in ("num", "regex", "tmpl"):
        return (tok.kind, tok.text[0] + tok.text[-1], tok.role)
    return (tok.kind, tok.text, tok.role)


def emit_javascript(
    tokens: Sequence[Token], renames: dict[str, str], indent: str = "  ", base: str = ""
) -> str:
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
    prev_key: _SpacingKey = ("", "", "")
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
        prev_unary = (
            kind == "punct"
            and text in ("+", "-", "++", "--", "!", "~")
            and (_is_unary(prev) or (tok.nl_before and text in ("++", "--")))
        )
        prev = tok if text is tok.text else Token(kind, text, False, tok.role)
        prev_key = key
    return "".join(out) + "\n"


_UNARY_TEXTS = frozenset(("+", "-", "++", "--", "!", "~"))


def _layout_line(line: _Line, after_unary_context: bool) -> _LineLayout:
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
        prev_unary = (
            kind == "punct"
            and text in _UNARY_TEXTS
            and (
                (after_unary_context if n == 0 else _is_unary(prev))
                or (tok.nl_before and text in ("++", "--"))
            )
        )
        prev = tok
    return tuple(pieces), closes_first, outer, opened


def _emit_lines(
    lines: Sequence[_Line],
    out: list[str],
    content_indents: list[int],
    before: Token | None,
    base: str,
    indent: str,
) -> bool:
    """Append :func:`emit_javascript`'s output for ``lines`` to ``out`` (each line as "\\n",
    its indentation, then its pieces, not yet renamed), one cached line layout at a time;
    ``before`` is the token before them. False when the brackets close more than they
    open (only the token-by-token emission handles that the same way)."""
    cache = _LINE_LAYOUT_CACHE
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


def _emit_units(
    units: Sequence[_Line | _Block], renames: dict[str, str], base: str = "", indent: str = "  "
) -> str | None:
    """:func:`emit_javascript` of the tokens of ``units`` (lines, or blocks of lines whose
    layout is cached whole under the indentation they start at); ``None`` where
    :func:`_emit_lines` gives up."""
    out: list[str] = []
    content_indents: list[int] = []
    cache = _BLOCK_LAYOUT_CACHE
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


def _function_spans(tokens: Sequence[Token], match_close: _BracketPairs) -> list[tuple[int, int]] | None:
    """The token spans of top-level ``function`` declarations, which are hoisted, so their
    order among themselves is free; ``None`` when fewer than two, or when a name repeats
    (the last declaration wins, so order matters)."""
    found = _scan_declarations(tokens, match_close, starts_statement=True, local=False)
    assert not isinstance(found, _NotLocal)  # a whole script has nothing past it to look at
    return _movable(*found)


def _movable(spans: Sequence[tuple[int, int]], names: Sequence[str]) -> list[tuple[int, int]] | None:
    """``spans`` when their declarations may change places: two or more, no name twice."""
    if len(spans) < 2 or len(set(names)) != len(names):
        return None
    return list(spans)


class _NotLocal(enum.Enum):
    """:func:`_block_spans` of a block whose scan would look past it."""

    NOT_LOCAL = enum.auto()


_NOT_LOCAL: Final = _NotLocal.NOT_LOCAL
# A block's function declarations: their spans as offsets in the block, and their names.
_BlockSpans = tuple[tuple[tuple[int, int], ...], tuple[str, ...]]
_SPANS_CACHE: dict[tuple[_Block, bool, bool], _BlockSpans | _NotLocal] = {}


def _block_spans(block: _Block, first: bool, after_separator: bool) -> _BlockSpans | _NotLocal:
    """:func:`_function_spans`' scan over one block that closes every bracket it opens,
    entered at the top level: ``(spans as offsets, names)``, or ``_NOT_LOCAL`` when the
    scan would look past the block (then only the whole-script scan will do)."""
    if block.closers or block.openers:
        return _NOT_LOCAL
    pairs = dict(zip(block.pair_keys, block.pair_values, strict=True))
    found = _scan_declarations(block.tokens, pairs, starts_statement=first or after_separator, local=True)
    if found is _NOT_LOCAL:
        return found
    spans, names = found
    return tuple(spans), tuple(names)


def _scan_declarations(
    tokens: Sequence[Token], pairs: _BracketPairs, *, starts_statement: bool, local: bool
) -> tuple[list[tuple[int, int]], list[str]] | _NotLocal:
    """The spans and names of the top-level ``function`` declarations in ``tokens``, in
    order (``pairs``: the closing bracket of each opening one; ``starts_statement``: whether
    the first token may begin a statement). With ``local`` the tokens are one block of a
    script, and a scan that would look past it is ``_NOT_LOCAL``."""
    spans: list[tuple[int, int]] = []
    names: list[str] = []
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i]
        if (
            tok.role == "keyword"
            and tok.text == "function"
            and ((starts_statement if i == 0 else tokens[i - 1].text in (";", "}")) or tok.nl_before)
        ):
            j = i + 1
            if j + 1 >= n:
                if local:
                    return _NOT_LOCAL
            elif tokens[j].kind == "ident" and tokens[j + 1].text == "(":
                close_paren = pairs.get(j + 1)
                if close_paren is not None and close_paren + 1 >= n:
                    if local:
                        return _NOT_LOCAL
                elif close_paren is not None and tokens[close_paren + 1].text == "{":
                    end = pairs.get(close_paren + 1)
                    if end is not None:
                        names.append(tokens[j].text)
                        spans.append((i, end))
                        i = end + 1
                        continue
        if tok.bracket == 1 or (tok.kind == "tmpl" and tok.text.endswith("${")):
            # Skip the bracketed group: only top-level declarations move.
            i = pairs.get(i, n - 1) + 1
            continue
        i += 1
    return spans, names


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
        local_spans, local_names = found
        spans += [(start + a, start + b) for a, b in local_spans]
        names += local_names
        before = block.tokens[-1]
    return _movable(spans, names)


def _shuffle_function_declarations(
    tokens: list[Token], rng: random.Random, match_close: _BracketPairs | None = None
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
    units: Sequence[_Line | _Block],
    unit_starts: Sequence[int],
    spans: list[tuple[int, int]],
    n_tokens: int,
    rng: random.Random,
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


def _emit_script(
    script: JavaScriptSource, rng: random.Random, renames: dict[str, str], base: str = ""
) -> str:
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
    return emit_javascript(
        _shuffle_function_declarations(script.tokens, rng, script.match_close), renames, base=base
    )


def obfuscate_javascript(source: str, rng: random.Random, *, rename: bool = True) -> str:
    """One standalone script, obfuscated (see :mod:`commons.obfuscation`)."""
    script = JavaScriptSource.parse(source)
    renames = rename_map([script], rng) if rename else {}
    return _emit_script(script, rng, renames)
