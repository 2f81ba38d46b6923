"""Retrying HTTP calls: the one backoff policy and the one ``Retry-After`` parser that every
client of the project uses (the Dojo API client, the synthetic API client, the LLM client,
the simulated workers).

Each client keeps its own loop, because what counts as transient and what is spent on a
try differ (the LLM client also has a task budget and shows the model its mistake), but
how long to wait is decided here:

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

__all__ = ["RetryPolicy", "parse_retry_after", "retry_after"]


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
