"""Where the validator's synthetic tasks come from, without loading the generator to ask.

A validator fed by the synthetic service (``SYNTHETIC_API_URL``, the production setup: the
service runs as its own process) only needs the HTTP client of :mod:`commons.synthetic_api`.
The in-process generator (:mod:`dojo.synthetic.pipeline`) is imported only when it is chosen:
with its dependencies (scipy's image filters among them) it adds about 25 MB of resident
memory a validator on the service would carry for nothing (130 MB while its duplicate filter
hashed with scikit-learn, which brought scipy's sparse and stats modules and pandas).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from commons.synthetic_api import SyntheticTaskSource, task_source_for


def default_task_source(
    *,
    url: str | None = None,
    token: str | None = None,
    store_path: str | Path | None = None,
    mix: Mapping[str, float] | str | None = None,
    **client_options: object,
) -> SyntheticTaskSource:
    """What the validator pulls tasks from: the service at ``url`` with ``token`` (its
    settings ``SYNTHETIC_API_URL`` and ``SYNTHETIC_API_TOKEN``) when set, otherwise in-process
    procedural generation of the kinds in ``mix``, whose duplicate filter keeps the
    instructions it used in the SQLite file ``store_path`` (in memory when ``None``)."""

    def in_process() -> SyntheticTaskSource:
        from commons.synthetic_api import parse_mix
        from dojo.synthetic.pipeline import InProcessTaskSource, PipelineOptions, SyntheticPipeline
        from dojo.synthetic.procedural import ProceduralBackend

        options = PipelineOptions(mix=parse_mix(mix) if isinstance(mix, str) else dict(mix or {"code": 1.0}))
        return InProcessTaskSource(SyntheticPipeline(ProceduralBackend(), store_path, options=options))

    return task_source_for(in_process, url=url, token=token, **client_options)
