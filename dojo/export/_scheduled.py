"""Exports on a schedule (the validator's ``--export.interval``): dated folders and ``latest``.

:class:`ScheduledExport` is what the validator runs on its schedule; ``main_validator.py``
hands it in, since the export imports the validator and not the other way round.

Each export is written to ``<root>/.partial-<stamp>/``, renamed to ``<root>/<stamp>/`` when
whole, and then ``<root>/latest`` (a symbolic link) is swung to it in one ``rename``, so a
reader following ``latest`` always finds a complete export. The oldest dated folders beyond
``keep`` are removed afterwards; the one ``latest`` names never is.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from dojo.export._export import ExportOptions, export_dataset
from dojo.export._summary import ExportSummary

LATEST = "latest"
_STAMP = re.compile(r"^\d{8}T\d{6}Z$")


def _stamp(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def latest_export(root: Path) -> tuple[Path, datetime] | None:
    """The folder ``latest`` points at and when it was made, or None."""
    link = root / LATEST
    if not link.is_symlink():
        return None
    target = (root / os.readlink(link)).resolve()
    if not target.is_dir() or not _STAMP.match(target.name):
        return None
    return target, datetime.strptime(target.name, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def export_to_dated_folder(
    db: str | Path,
    root: str | Path,
    *,
    now: datetime | None = None,
    keep: int = 3,
    options: ExportOptions | None = None,
) -> ExportSummary:
    """Export ``db`` to a new dated folder under ``root``, point ``latest`` at it, prune."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(now or datetime.now(timezone.utc))
    final = root / stamp
    if final.exists():
        raise FileExistsError(f"{final} exists already: one export per second at most")
    partial = root / f".partial-{stamp}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        summary = export_dataset(db, partial, options)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, final)
    summary.out = final
    link = root / f".{LATEST}-{stamp}"
    link.unlink(missing_ok=True)
    os.symlink(stamp, link)  # relative: the folder can be moved or mounted elsewhere whole
    os.replace(link, root / LATEST)
    _prune(root, keep, keep_name=stamp)
    return summary


def _prune(root: Path, keep: int, keep_name: str) -> None:
    dated = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and _STAMP.match(p.name))
    for old in dated[: max(0, len(dated) - max(1, keep))]:
        if old.name != keep_name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".partial-*"):  # left by an export a crash cut short
        if stale.name != f".partial-{keep_name}":
            shutil.rmtree(stale, ignore_errors=True)


class ScheduledExport:
    """The validator's export every ``--export.interval`` seconds
    (:class:`dojo.validator.neuron.DatasetExport`), to dated folders under the export dir."""

    def latest(self, root: Path) -> datetime | None:
        """When the export ``root/latest`` names was made; None when there is none."""
        found = latest_export(root)
        return None if found is None else found[1]

    def export(self, database_url: str, root: Path, keep: int) -> ExportSummary:
        """:func:`export_to_dated_folder` with the export's default options."""
        return export_to_dated_folder(database_url, root, keep=keep)
