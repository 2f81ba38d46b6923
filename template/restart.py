"""``RestartPolicy``: when a supervisor starts again a process that exited, pm2's way.

Used by ``dojo localnet``'s supervisor and by :func:`template.serving.serve_processes`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Start a process that exits again after a delay that doubles with each exit that came
    soon after a start (``first_delay``, then twice that … up to ``max_delay``); a run of
    ``stable_after`` seconds or more starts the count anew; after ``give_up_after`` quick
    exits in a row the process is left stopped (a broken set-up would only fill its log)."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 30.0
    give_up_after: int = 10

    def quick_exits(self, ran_for: float, before: int) -> int:
        """The quick exits in a row, this one counted: ``before`` were counted until now, and
        the process ran ``ran_for`` seconds."""
        return 0 if ran_for >= self.stable_after else before + 1

    def delay(self, quick_exits: int) -> float | None:
        """Seconds until the next start after ``quick_exits`` quick exits in a row; ``None``
        to give up."""
        if quick_exits >= self.give_up_after:
            return None
        return min(self.max_delay, self.first_delay * 2.0 ** max(0, quick_exits - 1))
