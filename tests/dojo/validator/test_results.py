"""What a miner returns is accepted whole, or refused whole with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commons.protocol import MAX_WORKERS_PER_TASK, WorkerResult
from dojo.miner.answers import worker_pseudonym_for_validators
from dojo.validator.results import ResultsRefused, check_results
from template.clock import utcnow

IDS = {"ma": "a", "mb": "b", "mc": "c"}  # miner's ids -> task's ids
RANKING = [{"type": "ranking"}]
SCORE = [{"type": "multi-score", "min": 1, "max": 10}]
W1, W2 = "w" + "1" * 24, "w" + "2" * 24  # workers as miners name them (worker_pseudonym_for_validators)


def _result(values, worker=W1, kind="ranking", at=None) -> WorkerResult:
    return WorkerResult(worker_id=worker, criteria_type=kind, values=values, submitted_at=at or utcnow())


def _check(results, criteria=RANKING, sent_at=None):
    return check_results(results, completion_ids=IDS, criteria=criteria, sent_at=sent_at, now=utcnow())


def test_whole_rankings_are_mapped_back_to_the_tasks_ids():
    accepted = _check([_result({"ma": 2, "mb": 1, "mc": 3}), _result({"ma": 1, "mb": 2, "mc": 3}, worker=W2)])
    assert [r.values for r in accepted] == [{"a": 2.0, "b": 1.0, "c": 3.0}, {"a": 1.0, "b": 2.0, "c": 3.0}]
    assert [r.worker_id for r in accepted] == [W1, W2]


def test_no_results_is_an_empty_answer():
    assert _check([]) == []


@pytest.mark.parametrize(
    ("results", "criteria", "reason"),
    [
        ([_result({"ma": 1, "mb": 2, "mx": 3})], RANKING, "not given"),
        ([_result({"ma": 1, "mb": 2})], RANKING, "misses 1 of the 3"),
        (
            [_result({"ma": 1, "mb": 2, "mc": 3}), _result({"ma": 3, "mb": 2, "mc": 1})],
            RANKING,
            "answers twice",
        ),
        ([_result({"ma": 1, "mb": 1, "mc": 2})], RANKING, "not a ranking"),
        ([_result({"ma": 1, "mb": 2, "mc": 4})], RANKING, "not a ranking"),
        ([_result({"ma": 0.5, "mb": 2, "mc": 3})], RANKING, "not a ranking"),
        ([_result({"ma": 1, "mb": 2, "mc": 3}, kind="multi-score")], RANKING, "was not asked for"),
        ([_result({"ma": 1, "mb": 5, "mc": 11}, kind="multi-score")], SCORE, "outside the criterion's range"),
        ([_result({"ma": 1, "mb": 2, "mc": 3}, at=utcnow() + timedelta(hours=1))], RANKING, "in the future"),
    ],
)
def test_a_reply_with_any_bad_result_is_refused_with_its_reason(results, criteria, reason):
    with pytest.raises(ResultsRefused, match=reason):
        _check(results, criteria)


def test_a_result_from_before_the_task_was_sent_is_refused():
    with pytest.raises(ResultsRefused, match="before the task was sent"):
        _check([_result({"ma": 1, "mb": 2, "mc": 3}, at=utcnow() - timedelta(hours=2))], sent_at=utcnow())


def test_scores_within_the_range_are_accepted():
    [result] = _check([_result({"ma": 1, "mb": 5.5, "mc": 10}, kind="multi-score")], SCORE)
    assert result.values == {"a": 1.0, "b": 5.5, "c": 10.0}


def test_a_workers_rationale_is_kept_with_its_result():
    said = WorkerResult(
        worker_id=W1,
        criteria_type="ranking",
        values={"ma": 2, "mb": 1, "mc": 3},
        submitted_at=utcnow(),
        rationale="b is the only one that runs",
    )
    accepted = _check([said, _result({"ma": 1, "mb": 2, "mc": 3}, worker=W2)])
    assert [r.rationale for r in accepted] == ["b is the only one that runs", None]


def test_a_reply_naming_more_workers_than_a_miner_is_asked_for_is_refused():
    invented = [
        _result({"ma": 1, "mb": 2, "mc": 3}, worker=f"w{i:024x}") for i in range(MAX_WORKERS_PER_TASK + 1)
    ]
    with pytest.raises(ResultsRefused, match=f"names {MAX_WORKERS_PER_TASK + 1} workers"):
        _check(invented)
    assert len(_check(invented[:MAX_WORKERS_PER_TASK])) == MAX_WORKERS_PER_TASK


@pytest.mark.parametrize("worker", ["w1", "alice", "w" + "A" * 24, "w" + "1" * 25, "x" + "1" * 24])
def test_a_worker_id_not_in_the_miners_pseudonym_form_is_refused(worker):
    with pytest.raises(ResultsRefused, match="not a worker pseudonym"):
        _check([_result({"ma": 1, "mb": 2, "mc": 3}, worker=worker)])


def test_the_miners_pseudonyms_are_in_the_form_validators_accept():
    worker = worker_pseudonym_for_validators(b"a miner's secret", "platform-worker-7")
    assert len(_check([_result({"ma": 1, "mb": 2, "mc": 3}, worker=worker)])) == 1
