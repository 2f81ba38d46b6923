"""Named crash points, for the tests that SIGKILL a neuron at an exact step of its work.

``DOJO_FAILPOINT=<name>`` in a neuron's environment makes :func:`failpoint` with that name
kill the process with SIGKILL the first time it is reached: no handler runs, no buffer is
flushed, exactly as when an operator's machine loses power or the OOM killer strikes. With
the variable unset (always, outside the crash tests) a failpoint is a dictionary lookup.

``DOJO_FAILPOINT=<name>:<n>`` kills at the n-th time instead of the first.
"""

from __future__ import annotations

import os
import signal
import sys

_ENV = "DOJO_FAILPOINT"
_hits: dict[str, int] = {}


def failpoint(name: str) -> None:
    """SIGKILL this process here if ``DOJO_FAILPOINT`` names ``name``."""
    wanted = os.environ.get(_ENV)
    if not wanted:
        return
    target, _, count = wanted.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(count) if count else 1):
        # Written straight to the file descriptor: the test reads it from the log.
        os.write(sys.stderr.fileno(), f"failpoint {name}: SIGKILL\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
