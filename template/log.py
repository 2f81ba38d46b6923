"""Loguru set-up for the neurons: one line per event, level from ``--logging.debug/trace``."""

from __future__ import annotations

import logging
import sys

from loguru import logger

FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[neuron]} | {message}"


def setup_logging(debug: bool = False, trace: bool = False, neuron: str = "-") -> None:
    level = "TRACE" if trace else "DEBUG" if debug else "INFO"
    logger.remove()
    logger.configure(extra={"neuron": neuron})
    logger.add(sys.stderr, level=level, format=FORMAT, backtrace=False, diagnose=False)
    # The SDK and uvicorn log through the standard library; keep them quiet unless tracing.
    logging.getLogger("bittensor").setLevel(logging.DEBUG if trace else logging.WARNING)
