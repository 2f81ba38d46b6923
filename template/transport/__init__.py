"""Signed HTTP between neurons: the endpoint a neuron serves and the client that calls many."""

from template.transport.client import Outcome, SignedClient, Status, Target
from template.transport.server import BlacklistPolicy, CallerInfo, HandlerRefusal, PriorityGate, SignedServer

__all__ = [
    "BlacklistPolicy",
    "CallerInfo",
    "HandlerRefusal",
    "Outcome",
    "PriorityGate",
    "SignedClient",
    "SignedServer",
    "Status",
    "Target",
]
