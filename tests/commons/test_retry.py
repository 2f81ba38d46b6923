"""The one classifier of transient failures, backoff policy and Retry-After parser of every
retry loop."""

from __future__ import annotations

import asyncio
import random
import socket
from datetime import datetime, timezone

import httpx
import pytest

from commons.retry import RetryPolicy, is_transient, parse_retry_after, retry_after
from template.chain import ChainError, ChainUnavailable, NotRegistered, WeightsRejected

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


# ------------------------------------------------------------------ what is transient


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (408, True),
        (425, True),
        (429, True),
        (500, True),
        (501, True),
        (503, True),
        (599, True),
        (200, False),
        (400, False),
        (401, False),
        (404, False),
        (409, False),
        (422, False),
    ],
)
def test_transient_statuses_are_not_now_rather_than_no(status, transient):
    assert is_transient(status) is transient
    response = httpx.Response(status, request=httpx.Request("GET", "http://127.0.0.1/"))
    if status >= 400:
        with pytest.raises(httpx.HTTPStatusError) as raised:
            response.raise_for_status()
        assert is_transient(raised.value) is transient


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _failure(url: str, timeout: float | httpx.Timeout = 5.0) -> BaseException:
    async with httpx.AsyncClient(timeout=timeout) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.get(url)
    return raised.value


async def test_no_answer_is_transient_a_malformed_url_is_not():
    refused = await _failure(f"http://127.0.0.1:{_closed_port()}/")
    assert isinstance(refused, httpx.ConnectError) and is_transient(refused)
    # A server that accepts and never answers: the read times out.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        # A short read, a long connect: a slow machine's connect must not pass for the read.
        silent = await _failure(f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(0.2, connect=5.0))
    assert isinstance(silent, httpx.ReadTimeout) and is_transient(silent)
    wrong_scheme = await _failure("ftp://127.0.0.1/")
    assert isinstance(wrong_scheme, httpx.UnsupportedProtocol) and not is_transient(wrong_scheme)
    assert is_transient(TimeoutError()) and is_transient(ConnectionResetError())


def test_the_chain_says_which_of_its_failures_are_transient():
    assert is_transient(ChainUnavailable("no subtensor node answered"))
    assert is_transient(ChainError("set_weights failed: priority too low"))
    assert not is_transient(NotRegistered("5F...", 1))
    assert not is_transient(WeightsRejected("too_few_weights", "need 8"))


def test_anything_else_is_not_transient():
    assert not is_transient(ValueError("bad input"))
    assert not is_transient(KeyError("criterion"))
