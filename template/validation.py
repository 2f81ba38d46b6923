"""How a pydantic validation error is said to a person: one formatter for every process
(the settings of each process, the neurons' endpoints, the platform's API, the synthetic
API and its LLM answers), so that a refusal reads the same wherever it comes from.

Each error becomes ``<where>: <what>``: ``where`` is the field's dotted path (a caller
may name it otherwise, e.g. the command-line flag that sets it), ``what`` is pydantic's
message without its ``Value error,`` preamble (the text of a validator's ``ValueError``
is already a sentence).

>>> from pydantic import BaseModel, ValidationError
>>> class Point(BaseModel):
...     x: int
>>> try:
...     Point(x="a")
... except ValidationError as exc:
...     print(validation_detail(exc))
x: Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["HasErrors", "dotted", "request_field", "validation_detail", "validation_messages"]

# Locations that only say where in the request the model was (FastAPI's "body", "query").
REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


class HasErrors(Protocol):
    """pydantic's ``ValidationError`` and FastAPI's ``RequestValidationError`` alike."""

    def errors(self) -> Sequence[Any]: ...


def dotted(loc: Iterable[Any]) -> str:
    """``("taskData", 0, "title")`` as ``taskData.0.title``."""
    return ".".join(str(p) for p in loc)


def request_field(loc: Iterable[Any]) -> str:
    """A FastAPI location (``("body", "taskData", 0)``, ``("query", "limit")``) without the
    part of the request it names: ``taskData.0``, ``limit``."""
    parts = list(loc)
    return dotted(parts[1:] if parts and parts[0] in REQUEST_PARTS else parts)


def _message(error: Mapping[str, Any]) -> str:
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def validation_messages(
    exc: HasErrors,
    *,
    where: Callable[[tuple[Any, ...]], str] = dotted,
    with_input: bool = False,
    limit: int | None = None,
) -> list[str]:
    """One line per error (the first ``limit``): ``<where>: <what>``, or ``<what>`` where
    the error concerns the whole input; ``with_input`` adds what was given (``; got 'x'``)
    unless it was an object."""
    lines = []
    for error in list(exc.errors())[:limit]:
        place = where(tuple(error.get("loc", ())))
        line = f"{place}: {_message(error)}" if place else _message(error)
        given = error.get("input")
        if with_input and "input" in error and not isinstance(given, dict):
            line += f"; got {given!r}"
        lines.append(line)
    return lines


def validation_detail(
    exc: HasErrors,
    *,
    where: Callable[[tuple[Any, ...]], str] = dotted,
    limit: int | None = 10,
    default: str = "invalid request",
) -> str:
    """The errors on one line, ``; ``-separated (at most ``limit``): an API's ``detail``."""
    return "; ".join(validation_messages(exc, where=where, limit=limit)) or default
