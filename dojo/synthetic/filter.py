"""The filter: keeps new instructions distinct from every instruction already accepted.

Two filters share one interface (:class:`DuplicateFilter`): :class:`InstructionFilter`,
TF-IDF over words (offline, the procedural backend's), and
:class:`~dojo.synthetic.semantic.EmbeddingFilter`, cosine similarity of embeddings from an
OpenAI-compatible embeddings endpoint (the LLM backend's), which also catches a paraphrase
that shares few words with what it repeats. Each kind of task has its own filter over its
own kind's instructions.

An instruction is rejected when its TF-IDF cosine similarity to any accepted instruction
reaches ``threshold``; every decision is recorded in the task database, rejections
included. Terms are word unigrams and bigrams, hashed into ``N_FEATURES`` buckets (so no
vocabulary goes stale as instructions arrive), term frequencies are sublinear
(``1 + ln tf``), and IDF is scikit-learn's smoothed ``ln((1 + n) / (1 + df)) + 1`` over the
accepted instructions, exact at every check.

The hashing is :func:`hashed_counts`: the steps scikit-learn's ``HashingVectorizer``
documents, for the settings this filter used it with (``ngram_range=(1, 2)``,
``alternate_sign=False``, ``norm=None``, lowercase), on ``mmh3``'s MurmurHash3 (the same
32-bit hash, the same seed). It gives the vectorizer's counts exactly
(``tests/dojo/synthetic/test_hashing.py`` compares them on varied texts), so the decisions
are the same, without importing scikit-learn: that import (it brings scipy's sparse,
stats and pandas) was about 120 MB of a validator's 300 MB when it generates its own
synthetic tasks.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import mmh3
import numpy as np
from loguru import logger

from dojo.synthetic.store import SyntheticStore

DEFAULT_THRESHOLD = 0.8
N_FEATURES = 2**18
# scikit-learn's default token pattern: runs of two or more word characters.
TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True)
class Terms:
    """A text's hashed terms: the buckets it uses, ascending, and a weight for each."""

    features: np.ndarray  # int64
    weights: np.ndarray  # float64

    @property
    def nnz(self) -> int:
        return len(self.features)


def hashed_counts(text: str) -> Terms:
    """How often each of ``N_FEATURES`` buckets occurs among the text's words and word pairs.

    scikit-learn's ``HashingVectorizer(n_features=N_FEATURES, ngram_range=(1, 2),
    alternate_sign=False, norm=None, lowercase=True)``, step by step: the text lowercased;
    its tokens, ``TOKEN``'s matches; its terms, every token then every two adjacent tokens
    joined by a space; each term's bucket, ``|h| mod N_FEATURES`` where ``h`` is the signed
    32-bit MurmurHash3 of its UTF-8 bytes with seed 0; each bucket's value, the number of
    terms in it (with ``alternate_sign=False`` every term adds +1, and no norm is applied).
    """
    tokens = TOKEN.findall(text.lower())
    terms = tokens + [f"{a} {b}" for a, b in pairwise(tokens)]
    hashes = np.fromiter(
        (mmh3.hash(term, 0, signed=True) for term in terms), dtype=np.int64, count=len(terms)
    )
    features, counts = np.unique(np.abs(hashes) % N_FEATURES, return_counts=True)
    return Terms(features.astype(np.int64), counts.astype(np.float64))


@dataclass(frozen=True)
class FilterDecision:
    accepted: bool
    similarity: float  # to the nearest accepted instruction (0 when there is none)
    nearest_id: int | None
    instruction_id: int


class DuplicateFilter(Protocol):
    """Decides whether an instruction is new enough, records the decision, remembers it if so."""

    threshold: float

    async def decide(self, text: str) -> FilterDecision: ...

    def sample_accepted(self, rng: random.Random, k: int) -> list[str]: ...

    async def aclose(self) -> None: ...


class InstructionFilter:
    """Accepts an instruction unless one too similar was accepted before; thread-safe."""

    def __init__(
        self, store: SyntheticStore, threshold: float = DEFAULT_THRESHOLD, *, kind: str = "code"
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"the similarity threshold must be in (0, 1], got {threshold}")
        self.store = store
        self.kind = kind
        self.threshold = threshold
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._texts: list[str] = []
        # The accepted rows, unweighted (IDF moves as the corpus grows), over a compact
        # vocabulary: only hashed terms some accepted instruction uses get a column, so
        # every check works on arrays the size of that vocabulary and of the rows' terms,
        # not on all 2**18 hashed features.
        self._columns: dict[int, int] = {}  # hashed feature -> compact column
        self._df = np.zeros(0)
        # Every accepted row's terms, concatenated: row number, compact column, 1 + ln tf.
        self._flat = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # rows not yet in _flat
        for row_id, text in store.accepted_instructions(kind):
            self._remember(row_id, text, self._tf(text))

    def _tf(self, text: str) -> Terms:
        counts = hashed_counts(text)
        return Terms(counts.features, 1.0 + np.log(counts.weights))

    def _remember(self, row_id: int, text: str, tf: Terms) -> None:
        columns = self._columns
        for feature in tf.features.tolist():
            if feature not in columns:
                columns[feature] = len(columns)
        if len(columns) > len(self._df):
            self._df = np.concatenate(
                [self._df, np.zeros(max(len(columns), 2 * len(self._df)) - len(self._df))]
            )
        cols = np.fromiter((columns[f] for f in tf.features.tolist()), dtype=np.int64, count=tf.nnz)
        self._df[cols] += 1
        self._pending.append((np.full(tf.nnz, len(self._ids), dtype=np.int64), cols, tf.weights))
        self._ids.append(row_id)
        self._texts.append(text)

    def sample_accepted(self, rng: random.Random, k: int) -> list[str]:
        """Up to ``k`` accepted instructions drawn at random (self-instruct examples)."""
        with self._lock:
            return rng.sample(self._texts, min(k, len(self._texts)))

    def similarity(self, text: str) -> tuple[float, int | None]:
        """Cosine similarity to the nearest accepted instruction and that instruction's id."""
        with self._lock:
            return self._nearest(self._tf(text))

    def _nearest(self, tf: Terms) -> tuple[float, int | None]:
        n = len(self._ids)
        if n == 0 or tf.nnz == 0:
            return 0.0, None
        if self._pending:
            self._flat = tuple(
                np.concatenate([old, *new]) for old, *new in zip(self._flat, *self._pending, strict=True)
            )  # type: ignore[assignment]
            self._pending = []
        row_of, cols, vals = self._flat
        vocabulary = len(self._columns)
        idf = np.log((1.0 + n) / (1.0 + self._df[:vocabulary])) + 1.0
        unseen_idf = np.log(1.0 + n) + 1.0  # a term no accepted instruction has: df = 0
        # The query, TF-IDF weighted; its terms outside the vocabulary count in its norm only.
        query_cols = np.fromiter(
            (self._columns.get(f, -1) for f in tf.features.tolist()), dtype=np.int64, count=tf.nnz
        )
        known = query_cols >= 0
        query = tf.weights * np.where(known, idf[np.where(known, query_cols, 0)], unseen_idf)
        query_norm = float(np.sqrt(np.dot(query, query)))
        weights = np.zeros(vocabulary)
        weights[query_cols[known]] = query[known] * idf[query_cols[known]]
        row_idf = idf[cols]
        dots = np.bincount(row_of, weights=vals * weights[cols], minlength=n)
        squared = np.bincount(row_of, weights=vals * vals * row_idf * row_idf, minlength=n)
        norms = np.sqrt(squared) * query_norm
        scores = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        best = int(np.argmax(scores))
        return float(scores[best]), self._ids[best]

    async def decide(self, text: str) -> FilterDecision:
        return await asyncio.to_thread(self.check, text)

    async def aclose(self) -> None:
        return None

    def check(self, text: str) -> FilterDecision:
        """Decide on ``text``, record the decision, and remember it if accepted."""
        with self._lock:
            tf = self._tf(text)
            similarity, nearest = self._nearest(tf)
            accepted = similarity < self.threshold
            row_id = self.store.record_instruction(
                text, accepted=accepted, similarity=similarity, nearest_id=nearest, kind=self.kind
            )
            if accepted:
                self._remember(row_id, text, tf)
            else:
                logger.debug("instruction rejected: similarity {:.3f} to #{}", similarity, nearest)
            return FilterDecision(accepted, similarity, nearest, row_id)
