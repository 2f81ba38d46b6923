"""``dojo synthetic sample|preview|serve`` through their own parser (real handlers, files on disk)."""

from __future__ import annotations

import argparse
import json

from dojo.cli import synthetic


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
    assert _run(["synthetic", "preview", "--from", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _run(["synthetic", "serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "bearer token" in capsys.readouterr().err
    assert _run(["synthetic", "sample", "--n", "0", "--out", str(tmp_path / "x")]) == 2
