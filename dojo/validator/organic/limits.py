"""Per-caller limits of the organic API: a sliding-window rate limit and a daily task quota.

Both live in the API's own process memory (one validator serves its API from one process);
the quota's count starts from the database each UTC day, so a restart forgets nothing of it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

WINDOW = 60.0  # seconds: rates are per minute


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until a request is allowed again (0 when one is now).
    reset: float


class RateLimiter:
    """A sliding-window log per caller: at most ``limit`` requests in any ``WINDOW`` seconds.

    Each caller keeps the times of its last ``limit`` requests, so memory is bounded by the
    limits given, and a request is refused exactly when the oldest of them is still inside
    the window (no fixed-window burst at the boundary).
    """

    def __init__(self, window: float = WINDOW):
        self.window = window
        self._log: dict[str, deque[float]] = {}

    def hit(self, caller: str, limit: int, now: float) -> RateDecision:
        log = self._log.setdefault(caller, deque())
        while log and log[0] <= now - self.window:
            log.popleft()
        while len(log) > limit:  # the limit was lowered since
            log.popleft()
        if len(log) >= limit:
            return RateDecision(False, limit, 0, max(0.0, log[0] + self.window - now))
        log.append(now)
        remaining = limit - len(log)
        reset = 0.0 if remaining > 0 else max(0.0, log[0] + self.window - now)
        return RateDecision(True, limit, remaining, reset)

    def peek(self, caller: str, limit: int, now: float) -> RateDecision:
        log = self._log.get(caller, deque())
        inside = [t for t in log if t > now - self.window]
        remaining = max(0, limit - len(inside))
        reset = 0.0 if remaining > 0 else max(0.0, inside[-limit] + self.window - now)
        return RateDecision(remaining > 0, limit, remaining, reset)


def day_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


class DailyQuota:
    """Tasks accepted per caller per UTC day. ``reserve`` before writing, ``release`` when the
    write made no new task (a duplicate, a conflict, a failure), so concurrent requests cannot
    overrun the quota between the check and the write."""

    def __init__(self) -> None:
        self._used: dict[str, tuple[datetime, int]] = {}

    def known(self, caller: str, now: datetime) -> bool:
        entry = self._used.get(caller)
        return entry is not None and entry[0] == day_start(now)

    def load(self, caller: str, now: datetime, used: int) -> None:
        """The count of today's tasks in the database, read when the day's first request came."""
        if not self.known(caller, now):
            self._used[caller] = (day_start(now), used)

    def used(self, caller: str, now: datetime) -> int:
        entry = self._used.get(caller)
        return entry[1] if entry is not None and entry[0] == day_start(now) else 0

    def reserve(self, caller: str, quota: int, now: datetime) -> bool:
        used = self.used(caller, now)
        if used >= quota:
            return False
        self._used[caller] = (day_start(now), used + 1)
        return True

    def release(self, caller: str, now: datetime) -> None:
        day, used = self._used.get(caller, (day_start(now), 0))
        if day == day_start(now) and used > 0:
            self._used[caller] = (day, used - 1)

    @staticmethod
    def resets_at(now: datetime) -> datetime:
        return day_start(now) + timedelta(days=1)

    @staticmethod
    def seconds_to_reset(now: datetime) -> int:
        return math.ceil((DailyQuota.resets_at(now) - now).total_seconds())
