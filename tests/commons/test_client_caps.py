"""Every HTTP client in commons caps what it reads: a gzip bomb or a flood is refused with its error.

The server is real (``tests.hostile_miner.BombServer`` on loopback): 1 GiB of JSON whitespace
in about 1 MiB of gzip, or 200 MiB of it plain. Each client must refuse it with its own error
naming the cap, having read a small part of it, and the process's peak may grow by little.
"""

from __future__ import annotations

import pytest

from commons import dojo_api, synthetic_api
from commons.dojo_api import BadResponse, DojoAPI
from commons.organic import OrganicClient
from commons.organic._errors import OrganicResponseError
from commons.retry import RetryPolicy
from commons.synthetic_api import SyntheticAPIClient, SyntheticAPIResponseError
from tests.hostile_miner import FLOOD_BYTES, BombServer, PeakRss

MiB = 1024 * 1024
RSS_BOUND = 96 * MiB  # a 16 MiB cap and the decoder's steps, with room for the allocator


def _bounded(peak: PeakRss) -> None:
    if not peak.available:
        pytest.skip("the peak resident size cannot be reset here")
    assert peak.grew < RSS_BOUND, f"the peak grew by {peak.grew / MiB:.0f} MiB"


async def test_the_platform_client_refuses_a_gzip_bomb():
    async with BombServer() as bomb:
        api = DojoAPI(bomb.url, api_key="key", retry=RetryPolicy(attempts=3), sleep=_no_sleep)
        refused = f"inflates \\(gzip\\) to more than {dojo_api.MAX_REPLY_BYTES} bytes"
        with PeakRss() as peak, pytest.raises(BadResponse, match=refused):
            await api.task_status("t1")
        await api.aclose()
    _bounded(peak)
    assert bomb.requests == 1  # not retried: the same request gets the same reply


async def test_the_platform_client_refuses_a_flood():
    async with BombServer(FLOOD_BYTES, gzip=False) as flood, DojoAPI(flood.url, api_key="key") as api:
        with PeakRss() as peak, pytest.raises(BadResponse, match="bytes on the wire"):
            await api.task_results("t1")
    _bounded(peak)
    assert flood.bytes_sent < FLOOD_BYTES


async def test_the_synthetic_api_client_refuses_a_gzip_bomb():
    cap = synthetic_api.MAX_REPLY_BYTES
    async with BombServer() as bomb, SyntheticAPIClient(bomb.url) as client:
        with PeakRss() as peak, pytest.raises(SyntheticAPIResponseError, match=f"more than {cap} bytes"):
            await client.next_task()
    _bounded(peak)
    assert bomb.requests == 1


async def test_the_organic_client_refuses_a_gzip_bomb_within_its_read_limit():
    async with BombServer() as bomb:
        client = OrganicClient(bomb.url, api_key="key", max_response_bytes=1 * MiB)
        with PeakRss() as peak, pytest.raises(OrganicResponseError, match=f"more than {1 * MiB} bytes"):
            await client.usage()
        await client.aclose()
    _bounded(peak)


async def _no_sleep(_: float) -> None:
    return None


async def test_a_proxy_named_in_the_environment_is_no_way_around_the_cap(monkeypatch):
    """httpx uses no proxy from the environment once a client has a transport of its own, as every
    capped client has: HTTP_PROXY naming a server that floods goes unused, and the reply read is
    the target's, through the client's cap."""
    async with BombServer(FLOOD_BYTES, gzip=False) as proxy, BombServer() as platform:
        for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with DojoAPI(platform.url, api_key="key", retry=RetryPolicy(attempts=1)) as api:
            with PeakRss() as peak, pytest.raises(BadResponse, match="inflates \\(gzip\\)"):
                await api.task_results("t1")
    _bounded(peak)
    assert proxy.requests == 0 and platform.requests == 1
