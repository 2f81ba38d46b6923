"""Reading an HTTP body that a peer chose, without letting the peer choose how much memory it takes.

A reply of 1 MiB of gzip can inflate to 1 GiB, and a plain reply can simply be long. Every
HTTP client in the project reads through :class:`CappedBody`, which counts the bytes as they
arrive on the wire and again after decoding, decodes incrementally with a bounded output per
step (``zlib.decompressobj`` with ``max_length``), and raises :class:`BodyTooLarge` the moment
either count passes its cap. Nothing beyond the cap is ever held in memory.

Only ``gzip`` and ``deflate`` are decoded (``ACCEPT_ENCODING`` is what the clients advertise);
a body in any other coding (``br``, ``zstd``, …) is refused with :class:`BodyUndecodable`, as
the clients never asked for it.

Two adapters:

- :func:`read_capped`: an async iterator of wire chunks (aiohttp's ``response.content``, with
  the session's ``auto_decompress=False``) to the decoded body.
- :class:`CappedTransport`: an ``httpx`` transport that wraps another and hands httpx an
  already decoded, capped stream, so ``client.get(...)`` and ``response.json()`` keep working
  and a body over the cap raises :class:`ResponseTooLarge` (an ``httpx.DecodingError``).
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator

import httpx

KiB = 1024
MiB = 1024 * KiB

# What every client advertises: the codings CappedBody can decode with a bound.
ACCEPT_ENCODING = "gzip, deflate"
# Decompression step: zlib never produces more than this per call.
_STEP = 64 * KiB


class BodyRefused(Exception):
    """A body the reader would not take: over its cap, or in a coding it cannot decode."""


class BodyTooLarge(BodyRefused):
    """The body passed its cap, on the wire or once decoded."""


class BodyUndecodable(BodyRefused):
    """A content coding that was not asked for, or a corrupt compressed stream."""


class ResponseTooLarge(httpx.DecodingError):
    """:class:`BodyRefused`, as httpx clients see it (an ``httpx.DecodingError``)."""


def reservation(limit: int, content_encoding: str | None, content_length: str | None) -> int:
    """What a body may come to hold, from its headers: its declared length when it is not
    encoded, otherwise its cap (a compressed body's length says nothing of its decoded size)."""
    if not _codings_named(content_encoding) and content_length is not None and content_length.isdigit():
        return min(int(content_length), limit)
    return limit


class ByteBudget:
    """The bytes that bodies being read may hold together, across many concurrent reads.

    A cap per reply bounds one reply; with hundreds read at once, it is the sum that must stay
    small. A reader takes its :func:`reservation` before reading and gives it back once done
    with the body. A reader that does not fit waits; any waiter that fits is served when bytes
    come back (not first come first served: a small honest reply does not queue behind a
    large one). A reservation over the whole budget is cut to the budget.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, n: int) -> int:
        """Wait for ``n`` bytes (at most the budget); returns what was taken, for :meth:`give`."""
        n = min(n, self.total)
        if self.free >= n:
            self.free -= n
            return n
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(n)  # granted as it was cancelled: hand it on
            else:
                self._waiters.remove(entry)
            raise
        return n

    def give(self, n: int) -> None:
        self.free += n
        for entry in list(self._waiters):
            size, waiter = entry
            if waiter.done():
                self._waiters.remove(entry)
            elif size <= self.free:
                self._waiters.remove(entry)
                self.free -= size
                waiter.set_result(None)


def _codings_named(content_encoding: str | None) -> bool:
    return any(c.strip().lower() not in ("", "identity") for c in (content_encoding or "").split(","))


def _codings(content_encoding: str | None) -> list[str]:
    names = [c.strip().lower() for c in (content_encoding or "").split(",")]
    names = [c for c in names if c and c != "identity"]
    for name in names:
        if name not in ("gzip", "x-gzip", "deflate"):
            raise BodyUndecodable(f"content coding {name!r} was not asked for (accepted: {ACCEPT_ENCODING})")
    return names


class _Inflater:
    """One coding, undone a bounded step at a time."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        # deflate is a zlib stream by the RFC, raw deflate in practice; try zlib first.
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS if coding != "deflate" else zlib.MAX_WBITS)
        self._started = False
        self.produced = 0

    def _step(self, data: bytes) -> bytes:
        try:
            out = self._d.decompress(data, _STEP)
        except zlib.error as exc:
            if self.coding == "deflate" and not self._started:
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                self._started = True
                return self._step(data)
            raise BodyUndecodable(f"the {self.coding} stream is corrupt: {exc}") from None
        self._started = True
        return out

    def feed(self, data: bytes, cap: int, what: str) -> bytes:
        pieces: list[bytes] = []
        while data:
            piece = self._step(data)
            self.produced += len(piece)
            if self.produced > cap:
                raise BodyTooLarge(f"{what} inflates ({self.coding}) to more than {cap} bytes")
            pieces.append(piece)
            data = self._d.unconsumed_tail
            if self._d.eof:
                break  # trailing bytes after the stream's end are ignored
        return b"".join(pieces)

    def finish(self, cap: int, what: str) -> bytes:
        try:
            rest = self._d.flush(_STEP)
        except zlib.error as exc:
            raise BodyUndecodable(f"the {self.coding} stream is corrupt: {exc}") from None
        self.produced += len(rest)
        if self.produced > cap:
            raise BodyTooLarge(f"{what} inflates ({self.coding}) to more than {cap} bytes")
        return rest


class CappedBody:
    """Counts and decodes one body as its wire chunks arrive; both sizes capped at ``limit`` bytes.

    ``feed`` returns the decoded bytes of a chunk (or raises), ``finish`` the rest at the end.
    ``what`` names the body in the error (``"the reply to Heartbeat"``).
    """

    def __init__(self, limit: int, content_encoding: str | None = None, *, what: str = "the body") -> None:
        self.limit = limit
        self.what = what
        self.wire = 0
        self.size = 0
        # Codings are listed in the order applied; undo them in reverse.
        self._stages = [_Inflater(c) for c in reversed(_codings(content_encoding))]

    def check_length(self, content_length: str | int | None) -> None:
        """Refuse before reading when the declared length already passes the cap."""
        if content_length is None:
            return
        try:
            declared = int(content_length)
        except ValueError:
            return  # the HTTP library refuses a malformed length itself
        if declared > self.limit:
            raise BodyTooLarge(f"{self.what} declares {declared} bytes; at most {self.limit}")

    def feed(self, chunk: bytes) -> bytes:
        self.wire += len(chunk)
        if self.wire > self.limit:
            raise BodyTooLarge(f"{self.what} is more than {self.limit} bytes on the wire")
        data = chunk
        for stage in self._stages:
            data = stage.feed(data, self.limit, self.what)
        return self._count(data)

    def finish(self) -> bytes:
        data = b""
        for stage in self._stages:
            if data:
                data = stage.feed(data, self.limit, self.what)
            data += stage.finish(self.limit, self.what)
        return self._count(data)

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self.limit:
            raise BodyTooLarge(f"{self.what} is more than {self.limit} bytes")
        return data


async def read_capped(
    chunks: AsyncIterable[bytes],
    limit: int,
    *,
    content_encoding: str | None = None,
    content_length: str | int | None = None,
    what: str = "the body",
    truncate: bool = False,
) -> bytes:
    """The decoded body from its wire chunks, at most ``limit`` bytes both ways.

    Raises :class:`BodyTooLarge` past the cap, or with ``truncate`` returns what was read up to
    it (for an error reply, of which only the start is shown).
    """
    body = CappedBody(limit, content_encoding, what=what)
    pieces: list[bytes] = []
    try:
        if not truncate:
            body.check_length(content_length)
        async for chunk in chunks:
            pieces.append(body.feed(chunk))
        pieces.append(body.finish())
    except BodyRefused:
        if not truncate:
            raise
    return b"".join(pieces)


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, raw: httpx.AsyncByteStream, body: CappedBody, request: httpx.Request) -> None:
        self._raw = raw
        self._body = body
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._raw:
                data = self._body.feed(chunk)
                if data:
                    yield data
            rest = self._body.finish()
        except BodyRefused as exc:
            raise ResponseTooLarge(str(exc), request=self._request) from exc
        if rest:
            yield rest

    async def aclose(self) -> None:
        await self._raw.aclose()


class CappedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose every response body is capped at ``limit`` bytes, compressed and decoded.

    It wraps ``inner`` (a new ``httpx.AsyncHTTPTransport`` by default; a test's
    ``MockTransport`` or ``ASGITransport`` as well), asks for ``ACCEPT_ENCODING`` only, and
    decodes the body itself, so httpx sees it already decoded (no ``Content-Encoding``).
    ``name`` names the peer in the error (``"the worker platform"``).
    """

    def __init__(
        self, limit: int, inner: httpx.AsyncBaseTransport | None = None, *, name: str = "the server"
    ) -> None:
        self.limit = limit
        self.name = name
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING
        response = await self._inner.handle_async_request(request)
        what = f"{self.name}'s reply to {request.method} {request.url.path}"
        try:
            body = CappedBody(self.limit, response.headers.get("content-encoding"), what=what)
            body.check_length(response.headers.get("content-length"))
        except BodyRefused as exc:
            await response.aclose()
            raise ResponseTooLarge(str(exc), request=request) from exc
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length")
        ]
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_CappedStream(response.stream, body, request),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def capped(
    limit: int, inner: httpx.AsyncBaseTransport | None = None, *, name: str = "the server"
) -> CappedTransport:
    """``inner`` (or the default transport) with every response body capped at ``limit`` bytes."""
    return CappedTransport(limit, inner, name=name)
