"""Loguru set-up for the neurons and the tools: one line per event, level from ``--logging.debug/trace``.

Everything goes to stderr, so that a command's stdout stays its output (a report, a live
view). A service under a process manager that keeps the two streams apart (the neurons under
pm2, with its ``-out.log`` and ``-error.log``) passes ``split=True``: below WARNING to stdout,
WARNING and above to stderr, so that its error log holds the problems alone.

A value from outside (a peer's id or reply, a worker's text, a request's header) is logged
through :func:`quoted`, a Python literal on one line, so that it can neither end the line and
forge the next one nor hold a terminal escape. As a second guard every message is written
with its control characters other than line breaks and tabs escaped (``\x1b``), so no log
line can move a terminal's cursor or recolour it, whatever a call site forgot.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from loguru import logger

FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[neuron]} | {message}"
_WARNING = logger.level("WARNING").no
# C0 but tab and line feed, DEL, C1: what a terminal reads as a command.
_TERMINAL_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def quoted(value: object) -> str:
    """``value`` as a one-line quoted literal (``'w1\\n2026…'``), for logging what a peer,
    a worker or a client chose: a line break or an escape in it is written as its escape."""
    return repr(value if isinstance(value, str) else str(value))


def _escape_controls(record: Any) -> None:
    message = record["message"]
    if _TERMINAL_CONTROLS.search(message):
        record["message"] = _TERMINAL_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", message)


def setup_logging(
    debug: bool = False, trace: bool = False, neuron: str = "-", *, split: bool = False
) -> None:
    level = "TRACE" if trace else "DEBUG" if debug else "INFO"
    logger.remove()
    logger.configure(extra={"neuron": neuron}, patcher=_escape_controls)
    if split:
        logger.add(
            sys.stdout,
            level=level,
            format=FORMAT,
            filter=lambda record: record["level"].no < _WARNING,
            backtrace=False,
            diagnose=False,
        )
        logger.add(sys.stderr, level="WARNING", format=FORMAT, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=FORMAT, backtrace=False, diagnose=False)
    # The SDK and uvicorn log through the standard library; keep them quiet unless tracing.
    logging.getLogger("bittensor").setLevel(logging.DEBUG if trace else logging.WARNING)
