"""The duplicate filter's term hashing gives exactly scikit-learn's ``HashingVectorizer`` counts.

scikit-learn is a test requirement only: the filter hashes with ``mmh3`` so that a validator
generating its own tasks does not import it (``dojo/synthetic/filter.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import HashingVectorizer

from dojo.synthetic.filter import N_FEATURES, InstructionFilter, hashed_counts
from dojo.synthetic.store import SyntheticStore

REFERENCE = HashingVectorizer(
    n_features=N_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None, lowercase=True
)

CORPUS = [
    "",
    "a",
    "I a b c",  # single-character words are no tokens
    "Draw twelve small coral hexagons arranged in a ring on a midnight blue background.",
    "the the the THE The tHe",  # repeats, case folded
    "Build a bar chart; of monthly-rainfall, with tooltips (that show) the exact value on hover!",
    "snake_case and camelCase and x2 and 42 and 3.14159 and 1e-9 and __dunder__",
    "Tabs\tand\nnew\r\nlines   and    spaces",
    "Ça va? Élève naïve, façade, Straße, ĳssel, ﬁne ligature",
    "Σίσυφος ΟΔΥΣΣΕΥΣ καί İstanbul ıi",  # final sigma and dotted capital I change under lower()
    "日本語のテキスト 中文文本 한국어 텍스트",
    "emoji 🙂🙂 between 🚀words🚀 and zero\u200bwidth space",
    "def f(x):\n    return {'key': x ** 2}  # a comment\nprint(f(3))",
    '<div class="card"><span>Hello</span></div>',
    "ab " * 300,
    " ".join(f"word{n % 37} token{n % 11}" for n in range(500)),
]


def _reference(text: str) -> tuple[list[int], list[float]]:
    matrix = REFERENCE.transform([text]).tocsr()
    matrix.sum_duplicates()
    return matrix.indices.tolist(), matrix.data.tolist()


def _ours(text: str) -> tuple[list[int], list[float]]:
    terms = hashed_counts(text)
    assert terms.features.dtype == np.int64 and terms.weights.dtype == np.float64
    return terms.features.tolist(), terms.weights.tolist()


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
def test_counts_match_the_hashing_vectorizer(text: str) -> None:
    assert _ours(text) == _reference(text)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=200)
    | st.lists(st.sampled_from(["Ab", "cd", "É", "ß", "x1", "_", "-", " "])).map("".join)
)
def test_counts_match_the_hashing_vectorizer_on_any_text(text: str) -> None:
    assert _ours(text) == _reference(text)


def test_the_filter_scores_as_it_did_on_the_vectorizer() -> None:
    """Similarities computed from the reference vectors by the filter's own formula."""
    gate = InstructionFilter(SyntheticStore(), threshold=1.0)
    texts = [t for t in CORPUS if hashed_counts(t).nnz]
    ids = [gate.check(text).instruction_id for text in texts]
    counts = REFERENCE.transform(texts).toarray()
    tf = np.where(counts > 0, 1.0 + np.log(np.where(counts > 0, counts, 1.0)), 0.0)
    n = len(texts)
    idf = np.log((1.0 + n) / (1.0 + (counts > 0).sum(axis=0))) + 1.0
    rows = tf * idf
    query = "draw a ring of coral hexagons on a blue background"
    q_counts = REFERENCE.transform([query]).toarray()[0]
    q = np.where(q_counts > 0, 1.0 + np.log(np.where(q_counts > 0, q_counts, 1.0)), 0.0) * idf
    cosines = rows @ q / (np.linalg.norm(rows, axis=1) * np.linalg.norm(q))
    similarity, nearest = gate.similarity(query)
    assert similarity == pytest.approx(float(cosines.max()), rel=1e-12)
    assert nearest == ids[int(np.argmax(cosines))]
