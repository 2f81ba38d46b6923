"""Argument types shared by the command lines (``dojo …`` and ``python -m dojo.workers``)."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    """``text`` as a number more than 0, for ``type=`` of an argparse option."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value
