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

Importing this package loads neither the pipeline nor what it imports (scipy among them:
about 25 MB): a validator fed by the service never needs them. The
pipeline's names are imported on first use (:pep:`562`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from dojo.synthetic.backend import Backend, BudgetExceeded, GenerationError, Instruction, TaskBudget
from dojo.synthetic.source import default_task_source

if TYPE_CHECKING:
    from dojo.synthetic.pipeline import InProcessTaskSource, PipelineOptions, SyntheticPipeline

_LAZY = {
    "InProcessTaskSource": "dojo.synthetic.pipeline",
    "PipelineOptions": "dojo.synthetic.pipeline",
    "SyntheticPipeline": "dojo.synthetic.pipeline",
}


def __getattr__(name: str) -> object:
    """The pipeline's names, imported when first asked for (not by importing this package)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


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
