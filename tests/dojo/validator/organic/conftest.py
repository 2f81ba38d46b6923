"""Fixtures for the organic API: a validator database, a local chain with another subnet whose
validators may call, and the API itself served on loopback from its own thread."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dojo.localnet.net import free_port
from dojo.validator.config import ValidatorConfig
from dojo.validator.organic.service import OrganicService
from dojo.validator.organic.store import CreatedKey, OrganicStore
from dojo.validator.store import TaskStore
from template.chain.local import LocalChain
from template.clock import utcnow
from template.config import resolve
from tests.dojo.validator.test_neuron import network  # noqa: F401 - the validator among fake miners

NETUID = 1
CALLER_NETUID = 7


def text_task(n: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": "Which answer is best?",
        "completions": [
            {"id": f"a{i}", "model": f"m{i}", "content": {"kind": "text", "text": f"answer {i}"}}
            for i in range(n)
        ],
        **extra,
    }


@dataclass
class OrganicAPI:
    service: OrganicService
    store: TaskStore
    organic: OrganicStore
    url: str
    validator: Any  # the validator's wallet
    callers: dict[str, Any]  # name -> wallet on the caller subnet
    config: ValidatorConfig

    def key(self, rate: int = 1000, quota: int = 1000, name: str = "test") -> CreatedKey:
        return self.organic.create_key(name, rate, quota, utcnow())


def make_config(tmp: Path, **flags: str) -> ValidatorConfig:
    settings = {
        "--netuid": str(NETUID),
        "--subtensor.network": str(tmp / "chain"),
        "--neuron.data_dir": str(tmp / "validator"),
        "--neuron.task_deadline": "600",
        "--organic.enabled": "true",
        "--organic.port": str(free_port()),
        "--axon.port": str(free_port()),
        "--organic.caller_netuids": str(CALLER_NETUID),
        "--organic.min_stake": "1000",
        **flags,
    }
    return resolve(ValidatorConfig, [x for kv in settings.items() for x in kv], environ={}, env_file=None)


def start_api(tmp: Path, make_wallet, **flags: str) -> Iterator[OrganicAPI]:
    chain = LocalChain.init(tmp / "chain", netuid=NETUID, block_time=0.5, exist_ok=True)
    LocalChain.init(tmp / "chain", netuid=CALLER_NETUID, exist_ok=True, max_validators=2)
    validator = make_wallet("validator")
    chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, 1000.0)
    other = LocalChain(tmp / "chain", CALLER_NETUID)
    callers = {}
    for name, stake in (("staked", 5000.0), ("poor", 10.0), ("unpermitted", 1.0)):
        wallet = make_wallet(name)
        other.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake)
        callers[name] = wallet
    config = make_config(tmp, **flags)
    store = TaskStore(tmp / "validator" / "validator.sqlite")
    service = OrganicService(
        config,
        store.engine,
        validator_hotkey=validator.hotkey.ss58_address,
        subnet_size=lambda: 16,
        caller_chains={CALLER_NETUID: other},
        sender_options={"poll": 0.2},
    )
    service.start()
    try:
        yield OrganicAPI(service, store, OrganicStore(store.engine), service.url, validator, callers, config)
    finally:
        service.stop()
        store.close()


@pytest.fixture
def organic_api(tmp_path: Path, make_wallet) -> Iterator[OrganicAPI]:
    yield from start_api(tmp_path, make_wallet)
