"""Files only their owner may read: the databases and state a neuron keeps.

A miner's database holds the secret behind its worker pseudonyms, a validator's and the
synthetic service's hold ground truth, the platform's holds sessions and key hashes. Like
the wallets' key files, each is created readable and writable by its owner only (0600),
whatever the process's umask. SQLite creates a database's ``-wal``, ``-shm`` and
``-journal`` files with the permissions of the database file itself, so making the
database private first makes them private too. Small files that hold keys or tokens (the
local network's state and keys, the simulated workers' identities) are replaced whole by
``write_private``, through a temporary file that is 0600 from the start.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE = 0o600
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def private_file(path: str | Path) -> Path:
    """Create ``path`` (and its folder) as an empty file of mode 0600, or, when it exists and
    this user owns it, make it and its SQLite sidecars 0600; returns the path. Never
    truncates, and leaves a file of another user as it is (opening it is then up to SQLite)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))
    for name in (str(path), *(f"{path}{suffix}" for suffix in SQLITE_SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(name)
            if info.st_uid == os.geteuid() and info.st_mode & 0o777 != PRIVATE:
                os.chmod(name, PRIVATE)
    return path


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` (creating its folder) with ``text``, readable and writable by this
    user only: written to a temporary file of mode 0600 beside it, synced, then renamed over
    ``path``, so a reader sees the old file or the new, never a part, and never the text
    under another mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


__all__ = ["PRIVATE", "private_file", "write_private"]
