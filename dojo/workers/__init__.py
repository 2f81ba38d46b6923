"""Simulated workers: a team that ranks tasks on the worker platform through its real HTTP API.

For the end-to-end tests and the local network (``dojo localnet up --worker-mix …``).
Workers log in as a browser would (wallet signature or invite link), subscribe with a
miner's subscription key, and answer each task by their behaviour; honest ones learn the
true order from an :class:`Oracle` on the simulation's side, never from the platform.

Example::

    team = SimulatedTeam(url, subscription_key, parse_mix("honest:2,random:1"),
                         ValidatorDatabaseOracle("validator.sqlite"), think_time=(0.2, 1.0))
    await team.run(stop)  # until the asyncio.Event ``stop`` is set
    print(team.stats().to_dict())

As a process: ``python -m dojo.workers --platform URL --subscription-key KEY --mix honest:2,random:1``
(see :func:`main`); ``--label-studio URL`` instead of ``--platform`` runs a team of Label Studio
annotators (:class:`LabelStudioTeam`) on a miner's Label Studio server.

Worker mix syntax: ``entry ("," entry)*`` with ``entry = name ["(" key=number, … ")"] [":" count]``,
e.g. ``honest:2,random:1``, ``honest(noise=0.5):2,lazy(participation=0.3)``. Behaviours and
their parameters (defaults are the incentive simulator's): ``honest(noise)``, ``random``,
``constant``, ``reverse``, ``lazy(participation, noise)``.
"""

from dojo.workers._behaviours import BEHAVIOURS, Behaviour, WorkerSpecError, parse_mix, result_data
from dojo.workers._cli import main
from dojo.workers._label_studio import LabelStudioAnnotator, LabelStudioTeam, ranker_result
from dojo.workers._oracle import (
    DictOracle,
    IntendedOrders,
    Oracle,
    ValidatorDatabaseOracle,
    ValidatorDatabasesOracle,
)
from dojo.workers._team import SimulatedTeam, TeamStats
from dojo.workers._worker import SimulatedWorker, WorkerStats

__all__ = [
    "BEHAVIOURS",
    "Behaviour",
    "DictOracle",
    "IntendedOrders",
    "LabelStudioAnnotator",
    "LabelStudioTeam",
    "Oracle",
    "SimulatedTeam",
    "SimulatedWorker",
    "TeamStats",
    "ValidatorDatabaseOracle",
    "ValidatorDatabasesOracle",
    "WorkerSpecError",
    "WorkerStats",
    "main",
    "parse_mix",
    "ranker_result",
    "result_data",
]
