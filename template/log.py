"""Loguru set-up for the neurons and the tools: one line per event, level from ``--logging.debug/trace``.

Everything goes to stderr, so that a command's stdout stays its output (a report, a live
view). A service under a process manager that keeps the two streams apart (the neurons under
pm2, with its ``-out.log`` and ``-error.log``) passes ``split=True``: below WARNING to stdout,
WARNING and above to stderr, so that its error log holds the problems alone.
"""

from __future__ import annotations

import logging
import sys

from loguru import logger

FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[neuron]} | {message}"
_WARNING = logger.level("WARNING").no


def setup_logging(debug: bool = False, trace: bool = False, neuron: str = "-", *, split: bool = False) -> None:
    level = "TRACE" if trace else "DEBUG" if debug else "INFO"
    logger.remove()
    logger.configure(extra={"neuron": neuron})
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
