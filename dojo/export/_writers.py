"""Writing the exported rows as they stream: Parquet row groups, or JSON lines.

Each file is written under a temporary name beside its final one and renamed into place
only when complete (:meth:`Sink.commit`), so a failed or interrupted export never leaves a
file that looks whole.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("parquet", "jsonl")
_TEXTS = {"prompt", "chosen", "rejected"}  # long strings: no Parquet statistics


class Sink:
    """One exported file: rows in, written batch by batch; :meth:`commit` or :meth:`abort`.

    Writing a batch is two steps: :meth:`prepare` turns rows into what the file holds (Python
    work, under the GIL) and :meth:`emit` writes it (encoding, compression and I/O that
    release the GIL), so that :class:`BackgroundWriter` can emit one batch while the next is
    read and prepared.
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._partial = path.with_name(f".{path.name}.partial")

    def prepare(self, rows: Sequence[dict[str, Any]]) -> Any:
        raise NotImplementedError

    def emit(self, prepared: Any) -> None:
        raise NotImplementedError

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.emit(self.prepare(rows))
            self.rows += len(rows)

    def _close(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self._close()
        with open(self._partial, "rb") as f:  # on disk before it takes the final name
            os.fsync(f.fileno())
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        try:
            self._close()
        finally:
            self._partial.unlink(missing_ok=True)


class BackgroundWriter:
    """Emits prepared batches in one thread, at most one batch behind the caller.

    Memory holds at most two batches: the one being emitted and the one being prepared. An
    error in the thread is raised by the next :meth:`write` or by :meth:`finish`.
    """

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer")
        self._pending: Any = None

    def write(self, sink: Sink, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        prepared = sink.prepare(rows)
        self._wait()
        sink.rows += len(rows)
        self._pending = self._pool.submit(sink.emit, prepared)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def finish(self) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


class ParquetSink(Sink):
    """One row group per batch, zstd-compressed, with the file's fixed schema."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        from dojo.export._schema import with_features

        # The features ride in the file's metadata: datasets reads an image column as pictures.
        schema = with_features(schema)
        super().__init__(path, schema)
        # Dictionary encoding (the default) also stores each distinct string of a row group
        # once: a preference file's prompts and completions repeat across a task's pairs.
        # Statistics only for the small scalar columns: the writer keeps every row group's
        # until it closes, and min/max of long texts would make memory grow with the file.
        small = [f.name for f in schema if not pa.types.is_nested(f.type) and f.name not in _TEXTS]
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            self._partial, schema, compression="zstd", write_statistics=small
        )

    def prepare(self, rows: Sequence[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(list(rows), schema=self.schema)

    def emit(self, prepared: pa.Table) -> None:
        assert self._writer is not None
        self._writer.write_table(prepared)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):  # an image's file, as base64
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class JsonlSink(Sink):
    """One JSON object per line (ASCII, so UTF-8 too), timestamps as ISO 8601 UTC strings."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path, schema)
        self._file: Any = open(self._partial, "wb")  # noqa: SIM115 - closed by commit or abort
        # ASCII, non-ASCII characters as \u escapes: the same JSON, and CPython joins and writes
        # pure-ASCII strings many times faster than the strings ensure_ascii=False makes.
        self._encode = json.JSONEncoder(
            ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_default
        ).encode

        # A file without list columns (preferences) is written column by column: each of a
        # task's completions is in several pairs, and its text is encoded once a batch.
        self._flat = all(not pa.types.is_list(f.type) for f in schema)
        self._names = [f.name for f in schema]
        self._template = "{" + ",".join(json.dumps(n).replace("%", "%%") + ":%s" for n in self._names) + "}"

    def prepare(self, rows: Sequence[dict[str, Any]]) -> bytes:
        if self._flat:
            lines = self._flat_lines(rows)
        else:
            encode = self._encode
            lines = [encode(row) for row in rows]
        lines.append("")
        return "\n".join(lines).encode("ascii")

    def emit(self, prepared: bytes) -> None:
        self._file.write(prepared)

    def _flat_lines(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        encode = self._encode
        memo: dict[int, str] = {}  # id of a string -> its JSON; the rows keep every string alive
        template = self._template
        names = self._names
        lines = []
        for row in rows:
            values = []
            for name in names:
                v = row[name]
                if v.__class__ is str:
                    e = memo.get(id(v))
                    if e is None:
                        e = memo[id(v)] = encode(v)
                elif v.__class__ is float and math.isfinite(v):
                    e = repr(v)  # what json writes for a float
                else:
                    e = encode(v)
                values.append(e)
            lines.append(template % tuple(values))
        return lines

    def _close(self) -> None:
        if not self._file.closed:
            self._file.close()


def open_sink(fmt: str, path: Path, schema: pa.Schema) -> Sink:
    if fmt == "parquet":
        return ParquetSink(path, schema)
    if fmt == "jsonl":
        return JsonlSink(path, schema)
    raise ValueError(f"unknown format {fmt!r}; accepts {', '.join(FORMATS)}")
