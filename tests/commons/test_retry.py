"""The one backoff policy and Retry-After parser of every HTTP client."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import httpx
import pytest

from commons.retry import RetryPolicy, parse_retry_after, retry_after

NOW = datetime(2026, 10, 21, 7, 28, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),  # never a wait into the past
        ("Wed, 21 Oct 2026 07:30:00 GMT", 120.0),  # the HTTP-date form, counted from now
        ("Wed, 21 Oct 2026 07:00:00 GMT", 0.0),  # already past
        ("Wed, 21 Oct 2026 07:28:30 -0000", 30.0),
    ],
)
def test_both_forms_of_retry_after(value, seconds):
    assert parse_retry_after(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "soon", "inf", "nan", "Wed, 99 Foo 2026"])
def test_unreadable_retry_after_is_none(value):
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_reads_a_response_header_in_any_case():
    assert retry_after(httpx.Response(429, headers={"Retry-After": "12"}).headers) == 12.0
    assert retry_after(httpx.Response(503).headers) is None


def test_the_servers_word_wins_over_the_backoff():
    policy = RetryPolicy(attempts=3, base_delay=1.0, max_delay=4.0, jitter=0.0)
    rng = random.Random(0)
    assert [policy.delay(n, rng) for n in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert policy.delay(0, rng, retry_after=30.0) == 30.0
    assert policy.delay(3, rng, retry_after=0.0) == 0.0


def test_the_backoff_stays_finite_however_many_attempts_failed():
    policy = RetryPolicy(base_delay=0.5, max_delay=60.0, jitter=0.0)
    assert policy.delay(5000, random.Random(0)) == 60.0
