"""Synthetic task generation: tasks whose right ranking the validator knows.

The pipeline (:mod:`dojo.synthetic.pipeline`) runs instructor → filter → augmenter →
output generator → obfuscator → checks → shuffle over a backend: ``procedural``
(:mod:`dojo.synthetic.procedural`, offline, deterministic) or ``llm``
(:mod:`dojo.synthetic.llm`, any OpenAI-compatible endpoint). The service
(:mod:`dojo.synthetic.service`) serves tasks over HTTP; the client lives in
:mod:`commons.synthetic_api`.

For the validator::

    source = default_task_source()   # the service at SYNTHETIC_API_URL, else in-process
    task = await source.next_task()
"""

from dojo.synthetic.backend import Backend, BudgetExceeded, GenerationError, Instruction, TaskBudget
from dojo.synthetic.pipeline import (
    InProcessTaskSource,
    PipelineOptions,
    SyntheticPipeline,
    default_task_source,
)

__all__ = [
    "Backend",
    "BudgetExceeded",
    "GenerationError",
    "InProcessTaskSource",
    "Instruction",
    "PipelineOptions",
    "SyntheticPipeline",
    "TaskBudget",
    "default_task_source",
]
