"""The validator's global task database as a dataset people can load and train on.

``dojo export --db URL_OR_PATH --out DIR`` (and the validator itself, on a schedule) writes:

- ``tasks.parquet`` (or ``.jsonl``): one row per scored task: prompt, each completion's
  original content and model label, ground-truth ranks, each miner's ranking and its
  workers' (under pseudonyms), the consensus ranking, agreement;
- ``preferences.parquet``: the consensus of every task that passes ``--min-agreement``
  expanded into its ordered pairs, as ``prompt``, ``chosen``, ``rejected`` (+ ``margin``,
  ``agreement``, ``task_id``);
- ``README.md``: the dataset card, with the Hugging Face metadata header.

``docs/dataset.md`` describes the schema, how the consensus and agreement are measured and
how to load the files (pandas, ``datasets``, TRL). Using it from Python::

    from dojo.export import ExportOptions, export_dataset

    summary = export_dataset("~/.dojo/validator.sqlite", "out/", ExportOptions(format="jsonl"))

Errors: :class:`ExportError` for anything a user can cause (no database there, not a
validator database, a bad option). Modules: ``_reader`` (the snapshot, in batches),
``_records`` (pseudonyms, consensus, pairs), ``_schema``, ``_writers``, ``_card``,
``_export`` (the whole), ``_scheduled`` (dated folders and ``latest``).
"""

from dojo.export._export import ExportOptions, export_dataset
from dojo.export._reader import ExportError
from dojo.export._records import (
    DEFAULT_MIN_AGREEMENT,
    MinerAnswer,
    Pseudonyms,
    consensus_batch,
    preference_pairs,
    render_content,
)
from dojo.export._scheduled import ScheduledExport, export_to_dated_folder, latest_export
from dojo.export._summary import ExportSummary

__all__ = [
    "DEFAULT_MIN_AGREEMENT",
    "ExportError",
    "ExportOptions",
    "ExportSummary",
    "MinerAnswer",
    "Pseudonyms",
    "ScheduledExport",
    "consensus_batch",
    "export_dataset",
    "export_to_dated_folder",
    "latest_export",
    "preference_pairs",
    "render_content",
]
