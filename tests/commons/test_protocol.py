"""Protocol messages: versioned, size-capped, and validation errors that name the field."""

from __future__ import annotations

import sys
import unicodedata
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from commons.protocol import (
    MAX_COMPLETIONS,
    MAX_CONTENT,
    MAX_PROMPT,
    PROTOCOL_VERSION,
    CodeContent,
    CodeFile,
    Completion,
    FeedbackReply,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    MultiScoreCriteria,
    RankingCriteria,
    ScoringResult,
    TaskResultReply,
    TextContent,
    WorkerResult,
    has_control_characters,
)
from template.clock import utcnow


def completion(i: int, text: str = "x") -> Completion:
    return Completion(completion_id=f"c{i}", model=f"m{i}", content=TextContent(text=text))


def feedback(**overrides) -> dict:
    base = {
        "prompt": "Draw three red circles",
        "criteria": [{"type": "ranking"}],
        "completions": [completion(i).model_dump() for i in range(4)],
        "expire_at": (utcnow() + timedelta(hours=4)).isoformat(),
    }
    base.update(overrides)
    return base


def field_errors(exc: pytest.ExceptionInfo) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}


def test_round_trip_keeps_everything():
    request = FeedbackRequest.model_validate(
        feedback(
            criteria=[{"type": "ranking"}, {"type": "multi-score", "min": 1, "max": 10}],
            completions=[
                Completion(
                    completion_id="a",
                    model="m",
                    content=CodeContent(
                        files=[CodeFile(filename="index.html", content="<p>hi</p>", language="html")]
                    ),
                ).model_dump(),
                {
                    "completion_id": "b",
                    "model": "m",
                    "content": {
                        "kind": "dialogue",
                        "turns": [
                            {"role": "user", "message": "hi"},
                            {"role": "assistant", "message": "hello"},
                        ],
                    },
                },
            ],
        )
    )
    again = FeedbackRequest.model_validate_json(request.model_dump_json())
    assert again == request
    assert again.protocol_version == PROTOCOL_VERSION
    assert isinstance(again.criteria[0], RankingCriteria)
    assert isinstance(again.criteria[1], MultiScoreCriteria)
    assert again.completions[1].content.turns[1].message == "hello"


def test_every_request_carries_the_protocol_version():
    assert '"protocol_version":1' in Heartbeat().model_dump_json()
    assert ScoringResult(request_id="r", hotkey="h", score=0.5).protocol_version == PROTOCOL_VERSION


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prompt": "x" * (MAX_PROMPT + 1)}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"completions": [completion(0).model_dump()]}, "completions"),
        ({"completions": [completion(i).model_dump() for i in range(MAX_COMPLETIONS + 1)]}, "completions"),
        (
            {
                "completions": [
                    completion(0).model_dump(),
                    {
                        "completion_id": "c1",
                        "model": "m",
                        "content": {"kind": "text", "text": "y" * (MAX_CONTENT + 1)},
                    },
                ]
            },
            "completions.1.content.text.text",
        ),
        ({"criteria": []}, "criteria"),
        ({"criteria": [{"type": "multi-score", "min": 5, "max": 1}]}, "criteria.0.multi-score"),
        ({"criteria": [{"type": "stars"}]}, "criteria.0"),
        ({"expire_at": "2030-01-01T00:00:00"}, "expire_at"),
        ({"task_type": "poetry"}, "task_type"),
        ({"ground_truth": {"c0": 1}}, "ground_truth"),
        ({"request_id": "../../etc/passwd"}, "request_id"),
    ],
)
def test_invalid_requests_name_the_field(overrides, field):
    with pytest.raises(ValidationError) as info:
        FeedbackRequest.model_validate(feedback(**overrides))
    assert any(loc.startswith(field) for loc in field_errors(info)), field_errors(info)


def test_duplicate_completion_ids_are_refused():
    with pytest.raises(ValidationError, match="completion ids must be unique"):
        FeedbackRequest.model_validate(
            feedback(completions=[completion(1).model_dump(), completion(1).model_dump()])
        )


def test_code_files_are_capped():
    files = [{"filename": f"f{i}.js", "content": "", "language": "js"} for i in range(21)]
    with pytest.raises(ValidationError) as info:
        Completion.model_validate(
            {"completion_id": "a", "model": "m", "content": {"kind": "code", "files": files}}
        )
    assert "content.code.files" in field_errors(info)


def test_scores_are_bounded_and_finite():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValidationError):
            ScoringResult(request_id="r", hotkey="h", score=bad)


def test_results_reply_caps_and_rejects_non_finite_values():
    result = {
        "worker_id": "w1",
        "criteria_type": "ranking",
        "values": {"a": 1, "b": 2},
        "submitted_at": datetime.now().astimezone().isoformat(),
    }
    assert TaskResultReply.model_validate({"request_id": "r", "results": [result]}).results[
        0
    ] == WorkerResult.model_validate(result)
    with pytest.raises(ValidationError):
        TaskResultReply.model_validate({"request_id": "r", "results": [{**result, "values": {"a": "inf"}}]})
    with pytest.raises(ValidationError) as info:
        TaskResultReply.model_validate({"request_id": "r", "results": [result] * 1001})
    assert "results" in field_errors(info)


def test_a_results_rationale_is_optional_bounded_and_one_line():
    result = {
        "worker_id": "w1",
        "criteria_type": "ranking",
        "values": {"a": 1, "b": 2},
        "submitted_at": datetime.now().astimezone().isoformat(),
    }
    assert WorkerResult.model_validate(result).rationale is None  # an older miner sends none
    said = WorkerResult.model_validate({**result, "rationale": "b is cut off — a runs"})
    assert said.rationale == "b is cut off — a runs"
    for bad in ("two\nlines", "a \x1b[2Jforged screen", "tab\there", "c1 \x85 control", "x" * 1001):
        with pytest.raises(ValidationError) as info:
            TaskResultReply.model_validate({"request_id": "r", "results": [{**result, "rationale": bad}]})
        assert "results.0.rationale" in field_errors(info), bad


FORGED = "w1\n2026-01-01 00:00:00.000 | ERROR   | validator | forged \x1b[2J"


@pytest.mark.parametrize(
    ("model", "fields", "where"),
    [
        (
            WorkerResult,
            {"criteria_type": "ranking", "values": {}, "submitted_at": "2026-01-01T00:00:00Z"},
            "worker_id",
        ),
        (FeedbackReply, {"request_id": "r"}, "dojo_task_id"),
        (HeartbeatReply, {}, "hotkey"),
        (HeartbeatReply, {"hotkey": "5F"}, "software_version"),
        (ScoringResult, {"request_id": "r", "score": 0.5}, "hotkey"),
    ],
)
@pytest.mark.parametrize(
    "bad", [FORGED, "tab\there", "carriage\rreturn", "c1 \x85 control", "line\u2028separator"]
)
def test_ids_and_names_a_peer_chooses_may_not_hold_control_characters(model, fields, where, bad):
    with pytest.raises(ValidationError) as info:
        model.model_validate({**fields, where: bad})
    assert where in field_errors(info)
    model.model_validate({**fields, where: "w" + "0" * 24})  # the same without them passes


def test_the_control_character_checks_refuse_exactly_their_unicode_categories():
    """Over every code point: has_control_characters is category Cc, and a Printable field
    refuses Cc, Zl and Zp and nothing else."""
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        category = unicodedata.category(ch)
        assert has_control_characters(f"a{ch}b") is (category == "Cc"), hex(code)
        if category in ("Cc", "Zl", "Zp"):
            with pytest.raises(ValidationError):
                HeartbeatReply.model_validate({"hotkey": f"a{ch}b"})
    allowed = "".join(map(chr, range(0x20, 0x7F))) + "\u00a0\u2027\u202a"
    for start in range(0, len(allowed), 32):
        HeartbeatReply.model_validate({"hotkey": allowed[start : start + 32]})
