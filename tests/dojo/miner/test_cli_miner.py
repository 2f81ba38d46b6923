"""``dojo miner status`` finds the miner's database as the neuron does: flag > environment > .env."""

from __future__ import annotations

import pytest

from dojo.cli import main
from dojo.miner.store import MinerStore


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory of one's own to run in (its .env is the one read), no miner variables set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINER_DATABASE_URL", raising=False)
    monkeypatch.delenv("NEURON_DATA_DIR", raising=False)
    return tmp_path


def _status(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["miner", "status", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_status_reads_the_database_the_variable_names(workdir, monkeypatch, capsys):
    url = f"sqlite:///{workdir / 'env.sqlite'}"
    MinerStore(url).close()  # an empty miner database
    monkeypatch.setenv("MINER_DATABASE_URL", url)
    code, out, _ = _status(capsys)
    assert code == 0 and f"miner database {url}" in out and "tasks received 0" in out


def test_a_flag_beats_the_variable(workdir, monkeypatch, capsys):
    monkeypatch.setenv("MINER_DATABASE_URL", f"sqlite:///{workdir / 'env.sqlite'}")
    code, _, err = _status(capsys, "--db", f"sqlite:///{workdir / 'flag.sqlite'}")
    assert code == 1 and f"no miner database at {workdir / 'flag.sqlite'}" in err
    assert not (workdir / "flag.sqlite").exists()


def test_dotenv_names_the_data_dir(workdir, capsys):
    (workdir / ".env").write_text(f"NEURON_DATA_DIR={workdir / 'data'}\n")
    code, _, err = _status(capsys)
    assert code == 1 and f"no miner database at {workdir / 'data' / 'miner.sqlite'}" in err
