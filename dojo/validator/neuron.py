"""The validator neuron: keeps the set of live miners by heartbeat.

Every ``--neuron.heartbeat_interval`` seconds it sends a signed ``Heartbeat`` to every
neuron serving an endpoint on the subnet (but itself), and the ones that answer with the
protocol version it speaks form the active set, logged on every change.
"""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger

from commons.protocol import PROTOCOL_VERSION, Heartbeat, HeartbeatReply
from template.neuron import BaseNeuron
from template.transport import CallerInfo, SignedClient, Status, Target


class ValidatorNeuron(BaseNeuron):
    neuron_type = "validator"

    def setup(self) -> None:
        self.server.protocol_version = PROTOCOL_VERSION
        self.server.route(Heartbeat, self.heartbeat)
        self.client = SignedClient(self.keypair, timeout=self.config.neuron.timeout)
        self.active_uids: set[int] | None = None  # None until the first round, which always logs

    async def heartbeat(self, request: Heartbeat, caller: CallerInfo) -> HeartbeatReply:
        return HeartbeatReply(hotkey=self.hotkey)

    def loops(self):
        return [self._heartbeat_loop]

    def miner_targets(self) -> list[Target]:
        return [
            Target(hotkey=n.hotkey, url=n.axon.url, uid=n.uid)
            for n in self.metagraph.serving()
            if n.hotkey != self.hotkey
        ]

    async def heartbeat_round(self) -> set[int]:
        """One heartbeat to every serving miner; returns and records the active uids."""
        targets = self.miner_targets()
        outcomes = await self.client.fanout(targets, Heartbeat(), HeartbeatReply)
        active = set()
        for outcome in outcomes:
            uid = outcome.target.uid
            if outcome.status is Status.OK and outcome.reply is not None:
                if outcome.reply.protocol_version == PROTOCOL_VERSION and outcome.reply.hotkey == outcome.target.hotkey:
                    active.add(uid)
                else:
                    logger.debug("uid {} answered with protocol {} as {}", uid, outcome.reply.protocol_version,
                                 outcome.reply.hotkey)
            else:
                logger.debug("uid {} heartbeat: {} {}", uid, outcome.status.value, outcome.detail)
        if active != self.active_uids:
            logger.info("active set: {} of {} serving miners: uids {}", len(active), len(targets), sorted(active))
        self.active_uids = active
        return active

    async def _heartbeat_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                await self.heartbeat_round()
            except Exception:  # a bug in one round is logged with its traceback; the next round runs
                logger.exception("heartbeat round failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self.config.neuron.heartbeat_interval)

    async def shutdown(self) -> None:
        await self.client.close()
