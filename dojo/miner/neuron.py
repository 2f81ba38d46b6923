"""The miner neuron: answers validators on its signed endpoint."""

from __future__ import annotations

from loguru import logger

from commons.protocol import PROTOCOL_VERSION, Heartbeat, HeartbeatReply
from template.neuron import BaseNeuron
from template.transport import CallerInfo


class MinerNeuron(BaseNeuron):
    neuron_type = "miner"

    def setup(self) -> None:
        self.server.protocol_version = PROTOCOL_VERSION
        self.server.route(Heartbeat, self.heartbeat)

    async def heartbeat(self, request: Heartbeat, caller: CallerInfo) -> HeartbeatReply:
        logger.debug("heartbeat from validator uid {} ({})", caller.uid, caller.hotkey)
        return HeartbeatReply(hotkey=self.hotkey)
