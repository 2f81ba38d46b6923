"""A miner endpoint that attacks the validator calling it: gzip bombs, floods, trickles, invented workers.

:class:`HostileMiner` is a plain aiohttp server on loopback that checks every request's
btauth/1 signature as a miner does (``bt.http_auth.verify``: its own hotkey as receiver,
fresh nonce, replay store) and then answers each route the way its ``behaviour`` says:

- ``honest``: the replies a miner whose three workers ranked every task would send;
- ``bomb_results`` / ``bomb_heartbeat`` / ``bomb``: the reply to ``TaskResultRequest``,
  ``Heartbeat``, or both, is a small gzip body that inflates to ``bomb_bytes`` (1 GiB by
  default) of valid JSON: the reply's fields, then whitespace;
- ``flood_results`` / ``flood_heartbeat``: the same reply in plain JSON padded with
  ``flood_bytes`` (200 MiB) of whitespace;
- ``trickle``: the reply to ``TaskResultRequest`` one byte every half second;
- ``invented_workers``: 1 000 results from worker ids nobody was ever given.

The bomb is built without holding it: one 1 MiB block of whitespace is compressed once after a
full flush (so its compressed bytes do not depend on what came before) and sent over and over,
the gzip CRC computed as the blocks go. Used by ``tests/template/test_reply_caps.py``,
``tests/dojo/validator/test_hostile_miners.py`` and ``benchmarks/hostile_miners.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import zlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bittensor as bt
from aiohttp import web

from dojo.localnet.net import free_port

MiB = 1024 * 1024
BOMB_BYTES = 1024 * MiB
FLOOD_BYTES = 200 * MiB
_BLOCK = b" " * MiB
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _split(reply: dict[str, Any], pad_before: str) -> tuple[bytes, bytes]:
    """The reply's JSON cut just before the ``pad_before`` key's closing part, so padding goes inside it."""
    text = json.dumps(reply)
    cut = text.rindex(pad_before)
    return text[:cut].encode(), text[cut:].encode()


async def gzip_padded(head: bytes, tail: bytes, padding: int) -> AsyncIterator[bytes]:
    """A valid gzip stream of ``head + padding spaces + tail``, built block by block."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    yield _GZIP_HEADER + deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(_BLOCK) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    blocks, rest = divmod(padding, len(_BLOCK))
    # Sent 64 blocks (64 MiB inflated) to a write, so one read of the wire holds many of them:
    # a reader that inflates a whole read at once takes tens of MiB per read.
    while blocks:
        batch = min(blocks, 64)
        for _ in range(batch):
            crc = zlib.crc32(_BLOCK, crc)
        blocks -= batch
        yield block * batch
        await asyncio.sleep(0)
    last = b" " * rest + tail
    crc = zlib.crc32(last, crc)
    size = len(head) + padding + len(tail)
    yield deflate.compress(last) + deflate.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)


async def plain_padded(head: bytes, tail: bytes, padding: int) -> AsyncIterator[bytes]:
    yield head
    for _ in range(padding // len(_BLOCK)):
        yield _BLOCK
    yield b" " * (padding % len(_BLOCK)) + tail


class HostileMiner:
    """One miner endpoint (``wallet``'s hotkey) with a ``behaviour``; see the module docstring."""

    def __init__(
        self,
        wallet: Any,
        behaviour: str,
        *,
        bomb_bytes: int = BOMB_BYTES,
        flood_bytes: int = FLOOD_BYTES,
        workers: int = 3,
        seed: int = 0,
    ) -> None:
        self.hotkey: str = wallet.hotkey.ss58_address
        self.behaviour = behaviour
        self.bomb_bytes = bomb_bytes
        self.flood_bytes = flood_bytes
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sent: dict[str, list[str]] = {}  # request id -> the completion ids it was sent
        self.calls: dict[str, int] = {}  # route -> signed calls taken
        self.refused_signatures = 0
        self.bytes_sent = 0
        self._nonces = bt.http_auth.InMemoryNonceStore(retention=120.0)
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=2 * MiB)
        for route in ("Heartbeat", "FeedbackRequest", "TaskResultRequest", "ScoringResult"):
            app.router.add_post(f"/{route}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            bt.http_auth.verify(
                dict(request.headers),
                body,
                method="POST",
                path=request.path_qs,
                self_hotkey_ss58=self.hotkey,
                nonce_store=self._nonces,
            )
        except bt.http_auth.AuthError as exc:
            self.refused_signatures += 1
            return web.json_response({"detail": str(exc)}, status=401)
        route = request.path.lstrip("/")
        self.calls[route] = self.calls.get(route, 0) + 1
        message = json.loads(body)
        reply = self._reply(route, message)
        b = self.behaviour
        if route == "Heartbeat" and b in ("bomb_heartbeat", "bomb"):
            return await self._stream(request, reply, "hotkey", gzip=True, padding=self.bomb_bytes)
        if route == "Heartbeat" and b == "flood_heartbeat":
            return await self._stream(request, reply, "hotkey", gzip=False, padding=self.flood_bytes)
        if route == "TaskResultRequest" and b in ("bomb_results", "bomb"):
            return await self._stream(request, reply, "results", gzip=True, padding=self.bomb_bytes)
        if route == "TaskResultRequest" and b == "flood_results":
            return await self._stream(request, reply, "results", gzip=False, padding=self.flood_bytes)
        if route == "TaskResultRequest" and b == "trickle":
            return await self._trickle(request, json.dumps(reply).encode())
        return web.json_response(reply)

    def _reply(self, route: str, message: dict[str, Any]) -> dict[str, Any]:
        if route == "Heartbeat":
            return {"protocol_version": 1, "software_version": "1.0.0", "hotkey": self.hotkey}
        if route == "FeedbackRequest":
            self.sent[message["request_id"]] = [c["completion_id"] for c in message["completions"]]
            return {"request_id": message["request_id"], "dojo_task_id": f"dojo-{message['request_id']}"}
        if route == "TaskResultRequest":
            ids = self.sent.get(message["request_id"], [])
            now = datetime.now(timezone.utc).isoformat()
            count = 1000 if self.behaviour == "invented_workers" else self.workers
            results = []
            for i in range(count if ids else 0):
                order = ids[:]
                self._rng.shuffle(order)
                # Honest workers in the form miners name them (dojo.miner.answers.worker_pseudonym_for_validators).
                worker = f"invented-{i}" if self.behaviour == "invented_workers" else f"w{i:024x}"
                results.append(
                    {
                        "worker_id": worker,
                        "criteria_type": "ranking",
                        "values": {cid: float(r + 1) for r, cid in enumerate(order)},
                        "submitted_at": now,
                    }
                )
            return {"request_id": message["request_id"], "results": results}
        return {"ok": True}

    async def _stream(
        self, request: web.Request, reply: dict[str, Any], key: str, *, gzip: bool, padding: int
    ) -> web.StreamResponse:
        head, tail = _split(reply, f'"{key}"')
        # The padding goes between two fields: the JSON stays valid however long it is.
        head += b"  "
        tail = b" " + tail
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if gzip:
            response.headers["Content-Encoding"] = "gzip"
        await response.prepare(request)
        chunks = gzip_padded(head, tail, padding) if gzip else plain_padded(head, tail, padding)
        try:
            async for chunk in chunks:
                await response.write(chunk)
                self.bytes_sent += len(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the validator hung up: what it was meant to do
        return response

    async def _trickle(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            for i in range(len(body)):
                await response.write(body[i : i + 1])
                self.bytes_sent += 1
                await asyncio.sleep(0.5)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response


class BombServer:
    """Any method, any path: a 200 JSON reply of ``padding`` bytes of whitespace, gzip (a bomb) or plain.

    The server every other HTTP client of the project is tested against: a platform, a
    synthetic API, an LLM endpoint, Label Studio or a validator's organic API gone hostile.
    """

    def __init__(self, padding: int = BOMB_BYTES, *, gzip: bool = True) -> None:
        self.padding = padding
        self.gzip = gzip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        self.bytes_sent = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> BombServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.gzip:
            response.headers["Content-Encoding"] = "gzip"
        await response.prepare(request)
        chunks = (gzip_padded if self.gzip else plain_padded)(b'{"a": 1,', b'"b": 2}', self.padding)
        try:
            async for chunk in chunks:
                await response.write(chunk)
                self.bytes_sent += len(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response


class PeakRss:
    """The growth of this process's peak resident size over a ``with`` block (Linux ``/proc``).

    The peak is reset on entry (``/proc/self/clear_refs``), so ``grew`` is the block's own
    peak above the resident size it started from. ``available`` is False where it cannot be.
    """

    def __init__(self) -> None:
        self.grew = 0
        self.available = True
        self._before = 0

    @staticmethod
    def _read(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise OSError(f"no {field} in /proc/self/status")

    def __enter__(self) -> PeakRss:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._before = self._read("VmRSS")
        except OSError:
            self.available = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self.available:
            self.grew = self._read("VmHWM") - self._before
