"""The log-in rate limit is counted in the database: every replica of a platform (here, two
limiters on one database, as two server processes have) counts the same attempts."""

from __future__ import annotations

import threading
import time

import pytest

from dojo.platform.errors import TooManyRequests
from dojo.platform.services.limits import LoginLimiter
from dojo.platform.storage.db import Database
from tests.dojo.platform.conftest import empty_tables


@pytest.fixture
def database(database_url: str):
    empty_tables(database_url)
    database = Database(database_url, pool_size=25)
    yield database
    database.dispose()


def _outcomes(limiter: LoginLimiter, key: str, count: int) -> list[int]:
    codes = []
    for _ in range(count):
        try:
            limiter.hit(key)
            codes.append(200)
        except TooManyRequests:
            codes.append(429)
    return codes


def test_two_replicas_share_one_count_per_address(database):
    first, second = LoginLimiter(database, 3, 60), LoginLimiter(database, 3, 60)
    assert _outcomes(first, "198.51.100.7", 2) == [200, 200]
    assert _outcomes(second, "198.51.100.7", 2) == [200, 429]
    with pytest.raises(TooManyRequests) as refused:
        first.hit("198.51.100.7")
    # Three a minute: the next place comes free 20 s after the first attempt.
    assert 15 < refused.value.retry_after <= 20
    assert _outcomes(second, "198.51.100.8", 1) == [200]  # another address has its own count


def test_concurrent_attempts_through_two_replicas_get_exactly_the_limit(database):
    limiters = [LoginLimiter(database, 5, 60), LoginLimiter(database, 5, 60)]
    start = threading.Barrier(20)
    codes: list[int] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        start.wait()
        code = _outcomes(limiters[n % 2], "203.0.113.9", 1)[0]
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 5 + [429] * 15


def test_a_refused_address_passes_again_when_retry_after_says(database):
    limiter = LoginLimiter(database, 2, 1.0)
    assert _outcomes(limiter, "192.0.2.1", 3) == [200, 200, 429]
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit("192.0.2.1")
    time.sleep(refused.value.retry_after + 0.05)  # what the 429 tells the client to wait
    assert _outcomes(limiter, "192.0.2.1", 2) == [200, 429]
