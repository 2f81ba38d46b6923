"""Retrying calls: the one classifier of transient failures, the one backoff policy and the
one ``Retry-After`` parser that every retry loop of the project uses (the Dojo API client,
the organic API client, the synthetic API client, the LLM client, the simulated workers, the
validator's weights).

Each client keeps its own loop, because what is spent on a try differs (the LLM client also
has a task budget and shows the model its mistake), but what is worth another try and how
long to wait are decided here:

>>> is_transient(503), is_transient(404), is_transient(httpx.ConnectError("refused"))
(True, False, True)

>>> import random
>>> RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=0.0).delay(3, random.Random(0))
4.0
>>> RetryPolicy().delay(0, random.Random(0), retry_after=12.0)
12.0
>>> parse_retry_after("120")
120.0
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

__all__ = ["TRANSIENT_STATUSES", "RetryPolicy", "is_transient", "parse_retry_after", "retry_after"]

#: The 4xx statuses that mean "not now" rather than "no": request timeout, too early, too
#: many requests. Every 5xx is transient too (the server failed, not the request).
TRANSIENT_STATUSES = frozenset({408, 425, 429})

# Transport errors that a second try cannot mend: the URL or the request itself is wrong.
_PERMANENT_TRANSPORT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def is_transient(failure: BaseException | int) -> bool:
    """Whether a failure is worth another try of the same call.

    - An HTTP status: one of :data:`TRANSIENT_STATUSES` or a 5xx. Any other status is the
      server's answer, which the same request would get again.
    - An exception: a failure to get an answer at all (httpx's connect, read, write and
      pool errors and timeouts, a connection the server broke, a proxy's failure;
      ``TimeoutError``, ``ConnectionError``), an ``httpx.HTTPStatusError`` by its status, or
      one whose class says so with a ``transient`` attribute (the chain's errors do: a node
      that could not be reached or failed the call is, an unregistered hotkey is not).
      Everything else, a malformed URL or request included, is not: it is a refusal or a
      bug, and repeating it only delays the report.
    """
    if isinstance(failure, int):
        return failure in TRANSIENT_STATUSES or 500 <= failure <= 599
    if isinstance(failure, httpx.HTTPStatusError):
        return is_transient(failure.response.status_code)
    if isinstance(failure, _PERMANENT_TRANSPORT):
        return False
    declared = getattr(failure, "transient", None)
    if isinstance(declared, bool):
        return declared
    return isinstance(failure, (httpx.TransportError, TimeoutError, ConnectionError))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, over ``attempts`` tries in all.

    Attempt ``n`` (0-based) that fails transiently waits ``d * (1 - jitter * u)`` before the
    next one, where ``d = min(max_delay, base_delay * 2**n)`` and ``u`` is uniform on
    [0, 1): the wait lies in ``[d * (1 - jitter), d]``, so many clients that lost a server
    at once do not come back in lockstep. A server's ``Retry-After`` is its own word on when
    to come back, and is taken as it is.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        if retry_after is not None:
            return retry_after
        # 2**64 is past any max_delay; beyond 1023 the power would overflow a float.
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 64))
        return ceiling * (1.0 - self.jitter * rng.random())


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when absent or unreadable.

    Both forms of RFC 9110 §10.2.3: delay-seconds (``"120"``; a decimal is read too) and an
    HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``), counted from ``now`` (default: the
    clock). A time already past, or a negative number, is 0.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, as RFC 5322 says
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """:func:`parse_retry_after` of a response's headers (``response.headers``)."""
    return parse_retry_after(headers.get("retry-after"))
