"""The validator's own ``--neuron.*`` settings, in a module of their own: the miner accepts
them too (``dojo.miner.config``) and imports them without the rest of the validator's
settings (whose synthetic-task mix imports :mod:`commons.synthetic_api`)."""

from __future__ import annotations

from pydantic import Field

from template.config import NeuronSettings


class ValidatorNeuronSettings(NeuronSettings):
    """The validator's own ``--neuron.*`` settings: its sampling, its clocks and its scoring."""

    sample_size: int = Field(8, ge=1, le=1024, description="miners queried per task (validator)")
    moving_average_alpha: float = Field(
        0.1, gt=0, le=1, description="weight of a new score in the moving average (validator)"
    )
    heartbeat_interval: float = Field(30.0, gt=0, description="seconds between heartbeats (validator)")
    timeout: float = Field(12.0, gt=0, description="per-call timeout in seconds (validator)")
    task_interval: float = Field(300.0, gt=0, description="seconds between new synthetic tasks (validator)")
    task_deadline: float = Field(
        14400.0,
        gt=0,
        le=5 * 86400,
        description="seconds workers have for a task before collection (validator)",
    )
    collection_grace: float = Field(
        3600.0, ge=0, description="seconds after the deadline during which collection is retried (validator)"
    )
    collect_at_results: int = Field(
        0,
        ge=0,
        le=100,
        description="collect a miner's results before the deadline once it returns this many workers' rankings: "
        "the places its tasks have, when every miner's are known (a local network); 0: at the deadline (validator)",
    )
    scoring_interval: float = Field(60.0, gt=0, description="seconds between scoring rounds (validator)")
    # As the subnet template's: a neuron with a permit and this much stake is another validator
    # (its endpoint answers heartbeats too), never sampled as a miner.
    vpermit_tao_limit: float = Field(
        4096.0,
        ge=0,
        description="a neuron holding a validator permit with more stake than this is a validator, not a miner "
        "to send tasks to (validator)",
    )
