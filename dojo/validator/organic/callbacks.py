"""Callback URLs the validator will call, and the ones it will not (SSRF).

A callback URL must be ``http`` or ``https`` with a host name, no user or password, and every
address its host resolves to must be public: loopback, private (RFC 1918, unique local),
link-local (cloud metadata at 169.254.169.254 among them), multicast, reserved and
unspecified addresses are refused, as is any port of the validator's own services on an
address of this machine. ``--organic.allow_private_callbacks`` (a local network) lets the
private ranges through, never the validator's own services.

The check runs when a task is accepted (a 422 with the reason) and again before every
delivery, which then connects to an address it has just checked (a name that resolves
elsewhere the second time is not followed there).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_PASSED = 4096  # literal-address URLs remembered as passed


class CallbackRefused(ValueError):
    """A callback URL the validator will not call; the message says why."""


@dataclass(frozen=True)
class CallbackTarget:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # every address the host resolved to, all checked


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _local_addresses() -> set[str]:
    names = {"localhost", socket.gethostname()}
    found: set[str] = set()
    for name in names:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return {a.split("%")[0] for a in found}


def _private(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, what in (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_private, "private"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_reserved, "reserved"),
    ):
        if test:
            return what
    return None


class CallbackGuard:
    """Checks callback URLs; ``own_ports`` are the validator's services (axon, organic API)."""

    def __init__(self, *, allow_private: bool, own_ports: Collection[int], resolver: Resolver = resolve):
        self.allow_private = allow_private
        self.own_ports = frozenset(own_ports)
        self.resolver = resolver
        self._local = _local_addresses()
        # URLs whose host is an address, checked and passed: nothing their check depends on
        # changes while the guard lives (a host name's may: those are resolved every time).
        self._passed: dict[str, CallbackTarget] = {}

    async def check(self, url: str) -> CallbackTarget:
        passed = self._passed.get(url)
        if passed is not None:
            return passed
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise CallbackRefused(f"callback_url must be http or https, not {scheme or 'a relative URL'!r}")
        if parts.username is not None or parts.password is not None:
            raise CallbackRefused("callback_url must not carry a user name or password")
        host = parts.hostname
        if not host:
            raise CallbackRefused("callback_url has no host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise CallbackRefused("callback_url has an invalid port") from None
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        try:
            addresses = [str(literal)] if literal is not None else await self.resolver(host, port)
        except OSError as exc:
            raise CallbackRefused(f"callback_url's host {host!r} does not resolve ({exc})") from None
        if not addresses:
            raise CallbackRefused(f"callback_url's host {host!r} does not resolve")
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            kind = _private(ip)
            ours = (
                ip.is_loopback
                or ip.is_unspecified
                or str(ip) in self._local
                or (kind is not None and self.allow_private)
            )
            if port in self.own_ports and ours:
                raise CallbackRefused(f"callback_url {host}:{port} is one of the validator's own services")
            if kind is not None and not self.allow_private:
                raise CallbackRefused(f"callback_url's host {host!r} resolves to {ip}, a {kind} address")
        target = CallbackTarget(url, scheme, host, port, tuple(addresses))
        if literal is not None:
            if len(self._passed) >= MAX_PASSED:
                self._passed.clear()
            self._passed[url] = target
        return target
