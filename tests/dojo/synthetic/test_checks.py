"""Completion checks: HTML structure, JavaScript syntax through node, Python compile."""

from __future__ import annotations

import shutil

import pytest

from commons.protocol import CodeFile
from dojo.synthetic.checks import CompletionChecker, NodeSyntaxChecker

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

PAGE = '<!DOCTYPE html><html><head><link rel="stylesheet" href="s.css"></head><body><p>hi<div>x</div>{script}</body></html>'


@pytest.fixture
def checker():
    instance = CompletionChecker()
    yield instance
    instance.close()


def _page(script: str = "<script>let a = 1;</script>") -> CodeFile:
    return CodeFile(filename="index.html", content=PAGE.format(script=script), language="html")


CSS = CodeFile(filename="s.css", content="p { color: red; }", language="css")


def test_a_valid_completion_has_no_problems(checker):
    files = [
        _page('<script src="a.js"></script>'),
        CSS,
        CodeFile(filename="a.js", content="const x = () => 1;\n", language="javascript"),
    ]
    assert checker.problems(files) == []


@needs_node
@pytest.mark.parametrize(
    "files, expected",
    [
        (
            [_page(), CSS, CodeFile(filename="a.js", content="function (", language="javascript")],
            "a.js: JavaScript syntax error",
        ),
        ([_page("<script>let = ;</script>"), CSS], "<script> #1: JavaScript syntax error"),
        ([CodeFile(filename="index.html", content="<div><span></div>", language="html")], "closes no open"),
        ([CodeFile(filename="index.html", content="<main><section>", language="html")], "unclosed <main>"),
        ([_page()], "references 's.css'"),
        (
            [_page(), CSS, CodeFile(filename="x.py", content="def f(:\n", language="python")],
            "Python does not compile",
        ),
        ([CodeFile(filename="page.html", content="<p>x</p>", language="html")], "no index.html"),
        ([_page(), CodeFile(filename="s.css", content="p { color: red;", language="css")], "unclosed"),
    ],
    ids=["js-file", "inline-js", "misnested", "unclosed", "missing-file", "python", "no-entry", "css"],
)
def test_broken_completions_are_caught(checker, files, expected):
    problems = checker.problems(files)
    assert any(expected in p for p in problems), problems


@needs_node
def test_the_node_checker_restarts_after_its_process_dies():
    node = NodeSyntaxChecker()
    try:
        assert node.check("let ok = 1;") is None
        assert node._process is not None
        node._process.kill()
        node._process.wait()
        assert "Unexpected" in (node.check("let = ;") or "")
    finally:
        node.close()


def test_without_node_javascript_is_not_checked():
    node = NodeSyntaxChecker(node=None)
    node.node = None
    assert not node.available and node.check("function (") is None
