"""Python: comments and blank lines dropped, the code itself kept as written."""

from __future__ import annotations

import io
import tokenize


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
