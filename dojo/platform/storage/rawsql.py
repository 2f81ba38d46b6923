"""The queue's hot path talks to the database driver itself (see :class:`RawStatement`):
a statement, its parameters and its results converted as SQLAlchemy's types would, so that
rows written either way read alike.

Times are timezone-aware UTC in Python and naive UTC in the database, as
:class:`template.storage.UTCDateTime` keeps them: a time parameter is made naive UTC before
it is sent, a time read back is given its zone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

UTC = timezone.utc


def _naive_utc(value: datetime | None) -> datetime | None:
    """A time parameter as the database holds it (:class:`template.storage.UTCDateTime`)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return value.astimezone(UTC).replace(tzinfo=None)


def _sqlite_time(value: datetime | None) -> str | None:
    """A time as SQLAlchemy's SQLite ``DateTime`` stores it (the text is compared in SQL)."""
    naive = _naive_utc(value)
    return None if naive is None else naive.isoformat(" ", "microseconds")


def _sqlite_datetime(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _sqlite_json(value: Any) -> Any:
    return None if value is None else json.loads(value)


_TEXT_PARAM = re.compile(r"(?<![:\w]):(\w+)")


class RawStatement:
    """One SQL text run on the driver's own connection, bypassing SQLAlchemy's execution.

    Each ``execute`` through SQLAlchemy costs ~150 µs of Python (events, compiled cache,
    result metadata); the queue's hot path runs ~7 statements a request, so it talks to the
    DBAPI directly. ``times`` and ``json`` name the parameters stored as ``DateTime`` and
    ``JSON``; ``columns`` gives the type of each result column (``"datetime"``, ``"json"``
    or ``None`` for values the drivers return as they are), stored as SQLAlchemy stores
    them, so rows written either way read alike.
    """

    def __init__(
        self,
        sql: str,
        times: Sequence[str] = (),
        json_params: Sequence[str] = (),
        columns: Sequence[str | None] = (),
    ):
        self.sql = sql
        self.times = tuple(times)
        self.json_params = tuple(json_params)
        self.columns = tuple(columns)
        # sqlite3 takes ``:name`` as it is; psycopg wants ``%(name)s``.
        self.pyformat = _TEXT_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
        self._sqlite_out: list[tuple[int, Callable[[Any], Any]]] = [
            (i, _sqlite_datetime if kind == "datetime" else _sqlite_json)
            for i, kind in enumerate(self.columns)
            if kind in ("datetime", "json")
        ]
        self._pg_times = [i for i, kind in enumerate(self.columns) if kind == "datetime"]

    def pg_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` as psycopg is given them: times naive UTC, JSON as text."""
        if not (self.times or self.json_params):
            return params
        params = dict(params)
        for name in self.times:
            params[name] = _naive_utc(params[name])
        for name in self.json_params:
            params[name] = json.dumps(params[name])
        return params

    def pg_rows(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` as psycopg returned them, their times given their zone (UTC)."""
        if not rows or not self._pg_times:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for index in self._pg_times:
                values[index] = _aware(values[index])
            converted.append(tuple(values))
        return converted


class RawDb:
    """An open transaction on a pooled DBAPI connection: ``execute`` returns the rows."""

    __slots__ = ("cursor", "is_sqlite")

    def __init__(self, cursor: Any, is_sqlite: bool):
        self.cursor = cursor
        self.is_sqlite = is_sqlite

    def execute(self, statement: RawStatement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cursor = self.cursor
        if self.is_sqlite:
            if statement.times or statement.json_params:
                params = dict(params)
                for name in statement.times:
                    params[name] = _sqlite_time(params[name])
                for name in statement.json_params:
                    params[name] = json.dumps(params[name])
            cursor.execute(statement.sql, params)
            rows = cursor.fetchall() if cursor.description is not None else []
            if rows and statement._sqlite_out:
                out = statement._sqlite_out
                converted = []
                for row in rows:
                    values = list(row)
                    for index, convert in out:
                        values[index] = convert(values[index])
                    converted.append(tuple(values))
                return converted
            return rows
        # Server-side prepared statements: parsed and planned once per connection.
        cursor.execute(statement.pyformat, statement.pg_params(params), prepare=True)
        return statement.pg_rows(cursor.fetchall()) if cursor.description is not None else []
