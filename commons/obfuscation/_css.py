"""CSS: comments dropped, a canonical layout, and the declarations of a rule shuffled
when no two of them touch the same property."""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Literal

_CSS_TOKEN = re.compile(
    r"""(?P<comment>/\*[\s\S]*?\*/)|(?P<str>"(?:[^"\\]|\\[\s\S])*"|'(?:[^'\\]|\\[\s\S])*')"""
    r"""|(?P<brace>[{};])|(?P<text>[^{};"'/]+|/)"""
)

# A declaration ("decl", text), or a rule ("rule", selector, its items).
_Item = tuple[Literal["decl"], str] | tuple[Literal["rule"], str, list["_Item"]]


def _css_items(tokens: list[tuple[str, str]], i: int) -> tuple[list[_Item], int]:
    items: list[_Item] = []
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


def _emit_css(items: list[_Item], rng: random.Random, level: int, out: list[str]) -> None:
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
def _parse_css(source: str) -> list[_Item]:
    # Cached by the exact text: a task's completions share their stylesheet. Safe to
    # share: _emit_css shuffles a copy and never changes the items.
    tokens = [(m.lastgroup or "", m.group()) for m in _CSS_TOKEN.finditer(source) if m.lastgroup != "comment"]
    return _css_items(tokens, 0)[0]
