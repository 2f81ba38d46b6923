"""Which hotkeys may call the organic API: another subnet's validators.

A hotkey qualifies when it holds a validator permit, with at least ``--organic.min_stake``,
on one of ``--organic.caller_netuids``, as the chain says. The metagraphs are read through
the chain adapter once an epoch (never per request) and kept here; between two reads a
caller that lost its permit keeps it, as the neurons' own endpoints do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from loguru import logger

from template.chain import Chain, Metagraph


class HotkeyCallers:
    def __init__(self, chains: Mapping[int, Chain], *, min_stake: float, epoch_length: int):
        self.chains = dict(chains)
        self.min_stake = min_stake
        self.epoch_length = epoch_length
        self._metagraphs: dict[int, Metagraph] = {}

    async def refresh(self, *, force: bool = False) -> None:
        """Read each subnet's metagraph again when an epoch has passed since the last read."""
        for netuid, chain in self.chains.items():
            try:
                held = self._metagraphs.get(netuid)
                if held is not None and not force:
                    block = await asyncio.to_thread(chain.block)
                    if block - held.block < self.epoch_length:
                        continue
                self._metagraphs[netuid] = await asyncio.to_thread(chain.metagraph)
            except Exception as exc:  # a chain hiccup keeps the last metagraph; the next poll retries
                logger.warning(
                    "organic API: cannot read subnet {}'s metagraph: {}: {}", netuid, type(exc).__name__, exc
                )

    async def run(self, stop: asyncio.Event, poll: float) -> None:
        while not stop.is_set():
            await self.refresh()
            try:
                await asyncio.wait_for(stop.wait(), poll)
            except asyncio.TimeoutError:
                continue

    def refusal(self, hotkey: str) -> str | None:
        """None when ``hotkey`` may call; otherwise why not."""
        reasons = []
        for netuid in self.chains:
            metagraph = self._metagraphs.get(netuid)
            if metagraph is None:
                reasons.append(f"subnet {netuid}'s metagraph is not read yet")
                continue
            neuron = metagraph.get(hotkey)
            if neuron is None:
                reasons.append(f"not registered on subnet {netuid}")
            elif not neuron.validator_permit:
                reasons.append(f"no validator permit on subnet {netuid}")
            elif neuron.stake < self.min_stake:
                reasons.append(
                    f"stake {neuron.stake:g} on subnet {netuid}, below the minimum {self.min_stake:g}"
                )
            else:
                return None
        netuids = ", ".join(str(n) for n in self.chains)
        return f"hotkey {hotkey} may not call: it needs a validator permit on subnet {netuids}: " + "; ".join(
            reasons
        )
