"""``template.private.write_private``: a small file of keys or tokens replaced whole, private
to its owner whatever the umask and whatever the mode of the file it replaces."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from template.private import PRIVATE, write_private


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would make every new file readable and writable by anyone."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_a_new_file_is_private_with_its_text_and_its_folder_is_made(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "keys.json"
    text = '{"workers": {"w1": {"key": "sk-1"}}}\n' + "x" * 100_000
    write_private(path, text)
    assert path.read_text() == text
    assert _mode(path) == PRIVATE == 0o600
    assert os.listdir(path.parent) == ["keys.json"]  # no temporary file left


@pytest.mark.usefixtures("open_umask")
def test_a_file_readable_by_others_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "localnet.json"
    path.write_text("old")
    path.chmod(0o644)
    old_inode = path.stat().st_ino
    write_private(path, "new")
    assert path.read_text() == "new"
    assert _mode(path) == 0o600
    # A new file renamed over the old one: the text never lived under the old file's mode.
    assert path.stat().st_ino != old_inode


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "identities.json"
    write_private(path, "kept")
    with pytest.raises(UnicodeEncodeError):
        write_private(path, "lone surrogate \ud800")
    assert path.read_text() == "kept"
    assert os.listdir(tmp_path) == ["identities.json"]
