"""How the task page turns completions into text, dialogue, highlighted code and previews."""

from __future__ import annotations

import re
from datetime import timezone

from dojo.platform.http.web._render import PREVIEW_CSP, completion_view, highlight_code, preview_document


def test_text_completion_is_text_and_numbered():
    view = completion_view(1, "c2", "plain <b>answer</b>")
    assert (view.kind, view.label, view.cid, view.text) == ("text", "2", "c2", "plain <b>answer</b>")
    assert view.preview_document is None


def test_dialogue_completion_keeps_roles_in_order():
    view = completion_view(
        0, "c1", [{"role": "user", "message": "hi"}, {"role": "assistant", "message": "hello"}]
    )
    assert view.kind == "dialogue"
    assert [(t.role, t.text) for t in view.turns] == [("user", "hi"), ("assistant", "hello")]


def test_code_is_highlighted_on_the_server_and_escaped():
    html = highlight_code("x = '<script>alert(1)</script>'\n", filename="main.py")
    assert 'class="hl"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert re.search(r'<span class="k?n?">', html) or "<span class=" in html


def test_unknown_language_falls_back_to_plain_text():
    html = highlight_code("whatever <b>", language="no-such-language")
    assert "&lt;b&gt;" in html


def test_code_completion_has_a_tab_per_file_and_a_preview():
    completion = {
        "files": [
            {
                "filename": "index.html",
                "language": "html",
                "content": '<p id="x">hi</p><script src="app.js"></script>',
            },
            {"filename": "app.js", "language": "javascript", "content": "document.title = '</script>';"},
            {"filename": "style.css", "content": "p { color: red }"},
        ],
        "additional_notes": "run it",
    }
    view = completion_view(0, "c1", completion)
    assert view.kind == "code"
    assert [f.filename for f in view.files] == ["index.html", "app.js", "style.css"]
    assert [f.language for f in view.files] == ["html", "javascript", "css"]
    assert view.notes == "run it"
    doc = view.preview_document
    assert doc is not None
    # The policy is the first thing in the document, before anything the completion wrote.
    assert doc.index(f'content="{PREVIEW_CSP}"') < doc.index('<p id="x">')
    # The referenced script is inlined where it was (nothing can be fetched), safely closed.
    assert 'src="app.js"' not in doc
    assert "document.title = '<\\/script>';" in doc
    assert "<style>p { color: red }</style>" in doc


def test_javascript_alone_runs_in_an_empty_page_and_other_code_has_no_preview():
    assert "<script>console.log(1)</script>" in preview_document([("a.js", "javascript", "console.log(1)")])
    assert preview_document([("main.py", "python", "print(1)")]) is None


def test_preview_policy_forbids_the_network():
    assert "default-src 'none'" in PREVIEW_CSP
    assert "connect-src" not in PREVIEW_CSP  # covered by default-src 'none'
    assert "img-src data:" in PREVIEW_CSP


def test_a_hostile_completion_cannot_break_out_of_the_task_page():
    from types import SimpleNamespace as NS

    from dojo.platform.http.web._guidelines import guidelines_for
    from dojo.platform.http.web._render import completion_view
    from dojo.platform.http.web._templating import render

    hostile = '"></iframe><script>window.owned = 1</script><iframe srcdoc="'
    completions = [
        completion_view(0, "a", {"files": [{"filename": "index.html", "content": hostile}]}),
        completion_view(1, "b", hostile),
        completion_view(2, "c", {"files": [{"filename": "x.py", "content": hostile}]}),
    ]
    page = render(
        "task.html",
        worker=NS(label="w", short="w"),
        miner=None,
        csrf_token="t",
        title="x",
        active="tasks",
        task=NS(
            id="t1",
            title=hostile,
            num_results=0,
            max_results=3,
            expire_at=None,
            closed_reason=None,
            held_until=None,
        ),
        prompt=hostile,
        kind="Code",
        guidelines=guidelines_for("code_generation"),
        criteria_lines=[hostile],
        completions=completions,
        completions_by_cid={c.cid: c for c in completions},
        ranking_order=["a", "b", "c"],
        criteria=[{"type": "ranking"}],
        scores={},
        has_result=False,
        progress=NS(done_today=0, done_total=0, available=0),
    )
    # Only the page's own external scripts are script elements; the rest is text or an attribute.
    assert re.findall(r"<script[^>]*>", page) == [
        f'<script src="{src}">' for src in re.findall(r'<script src="([^"]+)">', page)
    ]
    assert len(re.findall(r"<script", page)) == 2
    assert page.count("<iframe") == 1 and 'sandbox="allow-scripts"' in page
    # The preview is a document of its own, framed: nothing of the completion runs in the page.
    assert 'src="/tasks/t1/preview/1"' in page and "<iframe srcdoc" not in page


def test_deadlines_and_numbers_read_as_a_person_writes_them():
    from datetime import datetime, timedelta

    from dojo.platform.http.web._templating import iso, num, short, until

    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    naive = datetime(2026, 1, 1, 12, 0)  # the platform stores naive UTC
    assert until(naive + timedelta(hours=3, minutes=20), now) == "in 3 h 20 min"
    assert until(naive + timedelta(days=4), now) == "in 4 days"
    assert until(naive - timedelta(minutes=5), now) == "ended 5 min ago"
    assert until(naive + timedelta(seconds=20), now) == "in under a minute"
    assert iso(naive) == "2026-01-01T12:00:00Z"
    assert (num(3.0), num(2.5), num(7)) == ("3", "2.5", "7")
    assert short("0x1234567890abcdef") == "0x1234…cdef"
