"""The outside servers the suite starts once per session, and the test files that use each.

``scripts/test.sh`` hands each test file whole to one worker (``--dist loadfile``). The files
that use one session's server go together, as one unit (``tests/conftest.py``'s scheduler), so
that the server starts on one worker only. Label Studio's first start migrates its database:
over a minute of a core's time.
"""

from __future__ import annotations

import os

import pytest

ONE_SERVER_FILES = {
    "label-studio": ("tests/dojo/miner/test_label_studio.py", "tests/e2e/test_localnet_label_studio.py"),
    "haproxy-replicas": ("tests/dojo/platform/test_replicas.py",),
}
_UNIT_OF_FILE = {path: server for server, paths in ONE_SERVER_FILES.items() for path in paths}


def unit_of(path: str) -> str:
    """The unit of work of the test file ``path`` (relative to the repository): its server's
    name for the files in :data:`ONE_SERVER_FILES`, else the file itself."""
    return _UNIT_OF_FILE.get(path, path)


def only_start_of_session(tmp_path_factory: pytest.TempPathFactory, server: str) -> None:
    """Fail when another worker of this session of the suite already started ``server``: the
    file now asking for it is missing from :data:`ONE_SERVER_FILES`."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:  # one process: a session fixture starts once anyway
        return
    # The workers' temporary directories share this session's parent.
    marker = tmp_path_factory.getbasetemp().parent / f"{server}.started-by"
    try:
        with marker.open("x") as out:
            out.write(worker)
    except FileExistsError:
        pytest.fail(
            f"{server} was already started in this session by worker {marker.read_text()}: "
            f"list this test file with the others of {server} in ONE_SERVER_FILES (tests/_session_servers.py)"
        )
