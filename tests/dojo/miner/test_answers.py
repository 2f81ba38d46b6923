"""The miner's rules for backend answers, and the backends' pure mappings (no server)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from commons.protocol import (
    CodeContent,
    CodeFile,
    Completion,
    DialogueContent,
    DialogueTurn,
    FeedbackRequest,
    MultiScoreCriteria,
    RankingCriteria,
    TextContent,
)
from dojo.miner.answers import judge, worker_pseudonym_for_validators
from dojo.miner.backends import Answer, BackendTask, BackendUnavailable, TaskKey, within_deadline
from dojo.miner.backends.dojo_platform import DojoPlatformBackend
from dojo.miner.backends.label_studio import LabelStudioBackend, read_ranking, task_data
from dojo.workers import ranker_result

SECRET = b"s" * 32
DEADLINE = datetime(2030, 1, 1, tzinfo=timezone.utc)
CIDS = ("a", "b", "c")


def _task(max_results: int = 2, criteria: tuple[str, ...] = ("ranking",)) -> BackendTask:
    return BackendTask(TaskKey("5V", "r1"), "7", CIDS, criteria, DEADLINE, max_results)


def _answer(n: int, worker: str, ranks: dict | None = None, **kw) -> Answer:
    values = {"ranking": ranks if ranks is not None else {"a": 1, "b": 2, "c": 3}}
    fields = {"submitted_at": DEADLINE - timedelta(hours=1), "values": values, **kw}
    return Answer(answer_id=str(n), worker_id=worker, **fields)


def test_the_first_k_whole_answers_of_distinct_workers_count_and_the_rest_say_why():
    answers = [
        _answer(1, "u1", skipped=True),
        _answer(2, "u2", {"a": 1, "b": 2}),  # partial
        _answer(3, "u3", {"a": 1, "b": 1, "c": 3}),  # a tie is not a ranking
        _answer(4, "u4"),
        _answer(5, "u4", {"a": 3, "b": 2, "c": 1}),  # the same worker again
        _answer(6, "u5", submitted_at=DEADLINE + timedelta(seconds=1)),
        _answer(7, "u1", {"a": 2, "b": 1, "c": 3}),  # after its skip, its first answer
        _answer(8, "u6"),  # beyond the two asked for
        _answer(9, "u7", problem="its ranking cannot be read"),
    ]
    verdicts = judge(_task(), answers, [], SECRET)
    assert [v.answer_id for v in verdicts if v.counted] == ["4", "7"]
    reasons = {v.answer_id: v.reason for v in verdicts if not v.counted}
    assert reasons["1"] == "skipped or cancelled"
    assert "names completions ['a', 'b']" in reasons["2"]
    assert "not the ranks 1..3 each once" in reasons["3"]
    assert reasons["5"] == "a second answer by a worker already counted for this task"
    assert "after the deadline" in reasons["6"]
    assert reasons["8"] == "beyond the 2 answers the task asked for"
    assert reasons["9"] == "its ranking cannot be read"
    assert all(v.values == {} for v in verdicts if not v.counted)
    assert {v.worker for v in verdicts if v.counted} == {
        worker_pseudonym_for_validators(SECRET, "u4"),
        worker_pseudonym_for_validators(SECRET, "u1"),
    }


def test_pinned_verdicts_are_never_revised_and_an_answer_is_judged_once():
    task = _task(max_results=2)
    first = judge(task, [_answer(1, "u1"), _answer(2, "u2", {"a": 1})], [], SECRET)
    assert [v.counted for v in first] == [True, False]
    # Read again: the same answers are not judged again; a new one fills the last place,
    # and one after that is beyond the count.
    later = judge(
        task, [_answer(1, "u1"), _answer(2, "u2"), _answer(3, "u3"), _answer(4, "u4")], first, SECRET
    )
    assert [(v.answer_id, v.counted) for v in later] == [("3", True), ("4", False)]
    # An answer that vanished from the backend keeps its place: nothing moves up.
    again = judge(task, [_answer(5, "u5")], first + later, SECRET)
    assert [(v.answer_id, v.counted) for v in again] == [("5", False)]


def test_a_counted_answer_keeps_its_rationale_and_a_refused_one_keeps_nothing():
    said = [_answer(1, "u1", rationale="B runs, A does not"), _answer(2, "u2", {"a": 1}, rationale="partial")]
    counted, refused = judge(_task(), said, [], SECRET)
    assert (counted.counted, counted.rationale) == (True, "B runs, A does not")
    assert (refused.counted, refused.rationale, refused.values) == (False, None, {})


def test_a_whole_answer_answers_every_criterion_asked():
    task = _task(criteria=("ranking", "multi-score"))
    [only_ranking] = judge(task, [_answer(1, "u1")], [], SECRET)
    assert not only_ranking.counted and "the task asked for ['multi-score', 'ranking']" in only_ranking.reason
    both = _answer(
        2, "u2", values={"ranking": {"a": 1, "b": 2, "c": 3}, "multi-score": {"a": 9, "b": 5, "c": 1}}
    )
    [verdict] = judge(task, [both], [], SECRET)
    assert verdict.counted and verdict.values["multi-score"] == {"a": 9, "b": 5, "c": 1}


def test_label_studio_rankings_are_read_whole_or_refused_with_the_reason():
    assert read_ranking(ranker_result(["c", "a", "b"]), CIDS) == ({"c": 1.0, "a": 2.0, "b": 3.0}, None)
    assert "partial ranking" in read_ranking(ranker_result(["c", "a"]), CIDS)[1]
    assert "names a response twice" in read_ranking(ranker_result(["c", "a", "a", "b"]), CIDS)[1]
    unsorted = ranker_result(["c", "a"])
    unsorted[0]["value"]["ranker"]["_"] = ["b"]
    assert "['b'] left unranked" in read_ranking(unsorted, CIDS)[1]
    assert read_ranking([], CIDS) == ({}, "it holds no ranking")
    assert read_ranking(ranker_result(["c", "a", "b"]) * 2, CIDS)[1] == "it holds more than one ranking"


def _request(*contents, criteria=None) -> FeedbackRequest:
    return FeedbackRequest(
        request_id="r1",
        prompt="Say hello",
        criteria=criteria or [RankingCriteria()],
        completions=[Completion(completion_id=f"c{i}", model="m", content=c) for i, c in enumerate(contents)],
        expire_at=DEADLINE,
    )


async def test_a_backend_call_past_its_deadline_is_unavailable():
    async def answer(after: float) -> str:
        await asyncio.sleep(after)
        return "answered"

    assert await within_deadline(answer(0), "late", seconds=5) == "answered"
    with pytest.raises(BackendUnavailable, match="^late$") as refused:
        await within_deadline(answer(5), "late", seconds=0.05)
    assert refused.value.status == 503


def test_what_a_backend_cannot_show_is_refused_with_a_reason():
    code = CodeContent(files=[CodeFile(filename="a.py", content="print(1)")])
    text, dialogue = TextContent(text="hi"), DialogueContent(turns=[DialogueTurn(role="user", message="hi")])
    ls = LabelStudioBackend("http://127.0.0.1:9", "token", miner_hotkey="5Miner")
    dojo = DojoPlatformBackend("http://127.0.0.1:9", "key")
    assert ls.refusal(_request(code, code)) is None and ls.refusal(_request(dialogue, dialogue)) is None
    scored = _request(text, text, criteria=[RankingCriteria(), MultiScoreCriteria(min=1, max=10)])
    assert "label-studio) cannot ask for multi-score" in ls.refusal(scored)
    assert dojo.refusal(scored) is None
    assert "several kinds of content" in ls.refusal(_request(text, code))
    assert ls.problem() is None
    keyless = LabelStudioBackend("http://127.0.0.1:9", None, miner_hotkey="5Miner")
    assert "LABEL_STUDIO_API_KEY" in keyless.problem()
    with pytest.raises(ValueError, match="--label_studio.url"):
        LabelStudioBackend("ftp://x", "token", miner_hotkey="5Miner")


def test_label_studio_tasks_carry_the_validators_ids_and_the_task_key():
    code = CodeContent(
        files=[CodeFile(filename="index.html", content="<p>1</p>"), CodeFile(filename="a.js", content="x")]
    )
    data = task_data(_request(code, TextContent(text="plain")), TaskKey("5V", "r1"))
    assert [item["id"] for item in data["items"]] == ["c0", "c1"]
    assert [item["title"] for item in data["items"]] == ["Response A", "Response B"]
    assert data["items"][0]["body"] == "── index.html ──\n<p>1</p>\n\n── a.js ──\nx"
    assert data["dojo_key"] == TaskKey("5V", "r1").idempotency_key and data["prompt"] == "Say hello"
