"""``dojo synthetic sample|preview|serve`` through their own parser (real handlers, files on disk)."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from dojo.cli import synthetic
from dojo.synthetic.settings import SettingsError, settings_from_args


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dojo")
    synthetic.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_sample_then_preview(tmp_path, capsys):
    out = tmp_path / "tasks.jsonl"
    assert _run(["synthetic", "sample", "--n", "2", "--out", str(out), "--seed", "7"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert sorted(first["ground_truth"].values()) == [1, 2, 3, 4]

    again = tmp_path / "again.jsonl"
    assert _run(["synthetic", "sample", "--n", "2", "--out", str(again), "--seed", "7"]) == 0
    assert again.read_text() == out.read_text()

    site = tmp_path / "preview"
    assert _run(["synthetic", "preview", "--from", str(out), "--out", str(site)]) == 0
    page = (site / "index.html").read_text()
    assert page.count("<iframe") == 4 and first["prompt"][:40] in page
    for n in range(1, 5):
        assert (site / f"completion-{n}" / "index.html").is_file()
    assert "preview written" in capsys.readouterr().out


def test_preview_generates_a_task_when_given_none(tmp_path):
    assert _run(["synthetic", "preview", "--out", str(tmp_path), "--seed", "1"]) == 0
    assert (tmp_path / "index.html").read_text().count("<iframe") == 4


def test_errors_are_reported_with_an_exit_code(tmp_path, capsys):
    assert (
        _run(["synthetic", "preview", "--from", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert _run(["synthetic", "serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "bearer token" in capsys.readouterr().err
    assert _run(["synthetic", "serve", "--host", "0.0.0.0", "--port", "0", "--no-token"]) == 2
    assert "bearer token" in capsys.readouterr().err
    assert _run(["synthetic", "sample", "--n", "0", "--out", str(tmp_path / "x")]) == 2


# --- serve's settings: flag > environment > .env > default, as the neurons' --------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory of one's own to run in (its .env is the one read), no SYNTHETIC_* set."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("SYNTHETIC_")]:
        monkeypatch.delenv(name)
    return tmp_path


def _serve_settings(argv: list[str], environ: dict[str, str]):
    parser = argparse.ArgumentParser(prog="dojo")
    synthetic.register(parser.add_subparsers(dest="group"))
    return settings_from_args(parser.parse_args(["synthetic", "serve", *argv]), environ)


def test_serve_takes_its_settings_from_the_environment(workdir):
    settings = _serve_settings(
        [],
        {
            "SYNTHETIC_BACKEND": "llm",
            "SYNTHETIC_HOST": "0.0.0.0",
            "SYNTHETIC_PORT": "6100",
            "SYNTHETIC_DB": str(workdir / "tasks.sqlite"),
            "SYNTHETIC_API_TOKEN": "s3cret",
            "SYNTHETIC_QUEUE_SIZE": "3",
            "SYNTHETIC_TASK_SECONDS": "30",
            "SYNTHETIC_LLM_PROVIDER": "together",
            "SYNTHETIC_LLM_MODELS": "org/a, org/b",
        },
    )
    assert (settings.backend, settings.host, settings.port, settings.db) == (
        "llm",
        "0.0.0.0",
        6100,
        str(workdir / "tasks.sqlite"),
    )
    assert settings.token is not None and settings.token.get_secret_value() == "s3cret"
    assert (settings.queue_size, settings.task_seconds, settings.llm_provider) == (3, 30.0, "together")
    assert settings.llm_models == ["org/a", "org/b"]


def test_a_flag_beats_its_variable(workdir):
    settings = _serve_settings(
        ["--port", "6200", "--llm-model", "x", "--llm-model", "y", "--queue-size", "4"],
        {
            "SYNTHETIC_PORT": "6100",
            "SYNTHETIC_LLM_MODELS": "a,b",
            "SYNTHETIC_QUEUE_SIZE": "9",
            "SYNTHETIC_SEED": "env",
            "SYNTHETIC_API_OPEN": "1",
        },
    )
    assert (settings.port, settings.llm_models, settings.queue_size, settings.seed) == (
        6200,
        ["x", "y"],
        4,
        "env",
    )


def test_an_open_bind_needs_a_token(workdir):
    with pytest.raises(SettingsError, match="needs a bearer token"):
        _serve_settings(["--host", "0.0.0.0"], {})
    assert _serve_settings(["--host", "0.0.0.0"], {"SYNTHETIC_API_TOKEN": "t"}).token is not None
    assert _serve_settings(["--no-token"], {}).host == "127.0.0.1"
    assert "s3" not in str(_serve_settings(["--token", "s3"], {}).masked())
    with pytest.raises(SettingsError, match="--port"):
        _serve_settings(["--port", "70000", "--no-token"], {})


def test_serve_needs_a_token_unless_told_explicitly_to_go_without(workdir):
    with pytest.raises(SettingsError, match="give it a bearer token"):
        _serve_settings([], {})
    assert _serve_settings([], {"SYNTHETIC_API_OPEN": "1"}).no_token
    with pytest.raises(SettingsError, match="needs a bearer token"):
        _serve_settings(["--host", "0.0.0.0", "--no-token"], {})
    with pytest.raises(SettingsError, match="contradict"):
        _serve_settings(["--token", "t", "--no-token"], {})


def test_dotenv_is_read_under_the_environment(workdir):
    (workdir / ".env").write_text("SYNTHETIC_SEED=from-file\nSYNTHETIC_COMPLETIONS=3\n")
    settings = _serve_settings(["--no-token"], {"SYNTHETIC_COMPLETIONS": "5"})
    assert (settings.seed, settings.completions) == ("from-file", 5)


@pytest.mark.parametrize(
    ("argv", "variable", "expected"),
    [
        ([], ("SYNTHETIC_PORT", "http"), "--port (env SYNTHETIC_PORT): Input should be a valid integer"),
        (
            ["--backend", "gpt"],
            None,
            "--backend (env SYNTHETIC_BACKEND): Input should be 'procedural' or 'llm'",
        ),
        ([], ("SYNTHETIC_SIMILARITY", "2"), "--similarity (env SYNTHETIC_SIMILARITY)"),
    ],
)
def test_a_bad_value_exits_2_naming_flag_and_variable(argv, variable, expected, workdir, monkeypatch, capsys):
    if variable:
        monkeypatch.setenv(*variable)
    assert _run(["synthetic", "serve", "--db", str(workdir / "s.sqlite"), *argv]) == 2
    assert expected in capsys.readouterr().err
    assert not (workdir / "s.sqlite").exists()
