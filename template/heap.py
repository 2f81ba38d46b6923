"""``freeze_heap``: a long-running process's start-up heap taken out of the garbage
collector's view."""

from __future__ import annotations

import gc


def freeze_heap(*, collect: bool = True) -> None:
    """Take what is alive now (modules, classes, the app, ORM metadata: 170 000 objects in a
    validator, 260 000 with the in-process synthetic generator) out of the garbage
    collector's view. Each full collection walked all of it with every thread of the process
    stopped (the GIL held): 150-300 ms in the validator, whose organic API's tail was these
    pauses, one every second or two under load; 100-140 ms in the worker platform, stalling
    every request in flight. Objects made later are collected as ever. ``collect`` first
    frees the garbage of start-up (itself one such pause: call it at start-up, not while
    the process serves)."""
    if collect:
        gc.collect()
    gc.freeze()
