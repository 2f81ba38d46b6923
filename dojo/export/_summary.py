"""``ExportSummary``: what an export wrote, for ``dojo export --json``, the dataset card and
the scheduled export's log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class ExportSummary:
    """What an export wrote; :meth:`to_dict` is what ``dojo export --json`` prints."""

    out: Path
    format: str
    files: dict[str, str]
    exported_at: datetime
    since: datetime | None
    min_agreement: float
    synthetic_metadata: bool
    software_version: str
    tasks: int = 0
    completions: int = 0
    completions_original_unknown: int = 0
    worker_rankings: int = 0
    preferences: int = 0
    tasks_with_preferences: int = 0
    conversational_pairs: int = 0
    # Tasks and preference pairs of each kind (code, text, dialogue, image).
    tasks_by_modality: dict[str, int] = field(default_factory=dict)
    preferences_by_modality: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    mean_task_kappa: float | None = None
    mean_rho: float | None = None
    miners: int = 0
    workers: int = 0
    _miners: set[str] = field(default_factory=set, repr=False)
    _workers: set[str] = field(default_factory=set, repr=False)
    _kappa_sum: float = field(default=0.0, repr=False)
    _kappa_n: int = field(default=0, repr=False)
    _rho_sum: float = field(default=0.0, repr=False)
    _rho_n: int = field(default=0, repr=False)

    @property
    def exported_at_iso(self) -> str:
        return self.exported_at.isoformat(timespec="seconds").replace("+00:00", "Z")

    @property
    def format_loader(self) -> str:
        """The ``datasets`` builder that reads this format."""
        return "parquet" if self.format == "parquet" else "json"

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        data["out"] = str(self.out)
        data["exported_at"] = self.exported_at_iso
        data["since"] = None if self.since is None else self.since.isoformat().replace("+00:00", "Z")
        data["seconds"] = round(self.seconds, 3)
        return data
