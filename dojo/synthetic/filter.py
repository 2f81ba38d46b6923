"""The filter: keeps new instructions distinct from every instruction already accepted.

An instruction is rejected when its TF-IDF cosine similarity to any accepted instruction
reaches ``threshold``; every decision is recorded in the task database, rejections
included. Terms are word unigrams and bigrams hashed by scikit-learn's
``HashingVectorizer`` (so no vocabulary goes stale as instructions arrive), term
frequencies are sublinear (``1 + ln tf``), and IDF is scikit-learn's smoothed
``ln((1 + n) / (1 + df)) + 1`` over the accepted instructions, exact at every check.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from loguru import logger
from sklearn.feature_extraction.text import HashingVectorizer

from dojo.synthetic.store import SyntheticStore

DEFAULT_THRESHOLD = 0.8
N_FEATURES = 2**18


@dataclass(frozen=True)
class FilterDecision:
    accepted: bool
    similarity: float  # to the nearest accepted instruction (0 when there is none)
    nearest_id: int | None
    instruction_id: int


class InstructionFilter:
    """Accepts an instruction unless one too similar was accepted before; thread-safe."""

    def __init__(self, store: SyntheticStore, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"the similarity threshold must be in (0, 1], got {threshold}")
        self.store = store
        self.threshold = threshold
        self._lock = threading.Lock()
        self._hasher = HashingVectorizer(
            n_features=N_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None, lowercase=True
        )
        self._ids: list[int] = []
        self._texts: list[str] = []
        self._rows: list[sp.csr_matrix] = []  # not yet stacked into _matrix
        self._matrix = sp.csr_matrix((0, N_FEATURES))
        self._df = np.zeros(N_FEATURES)
        for row_id, text in store.accepted_instructions():
            self._remember(row_id, text, self._tf(text))

    def _tf(self, text: str) -> sp.csr_matrix:
        counts = self._hasher.transform([text]).tocsr()
        counts.data = 1.0 + np.log(counts.data)
        return counts

    def _remember(self, row_id: int, text: str, tf: sp.csr_matrix) -> None:
        self._ids.append(row_id)
        self._texts.append(text)
        self._rows.append(tf)
        self._df[tf.indices] += 1

    def sample_accepted(self, rng: random.Random, k: int) -> list[str]:
        """Up to ``k`` accepted instructions drawn at random (self-instruct examples)."""
        with self._lock:
            return rng.sample(self._texts, min(k, len(self._texts)))

    def similarity(self, text: str) -> tuple[float, int | None]:
        """Cosine similarity to the nearest accepted instruction and that instruction's id."""
        with self._lock:
            return self._nearest(self._tf(text))

    def _nearest(self, tf: sp.csr_matrix) -> tuple[float, int | None]:
        if self._rows:
            self._matrix = sp.vstack([self._matrix, *self._rows], format="csr")
            self._rows = []
        n = self._matrix.shape[0]
        if n == 0 or tf.nnz == 0:
            return 0.0, None
        idf = np.log((1.0 + n) / (1.0 + self._df)) + 1.0
        query = tf.multiply(idf).tocsr()
        query_norm = float(np.sqrt(query.multiply(query).sum()))
        # Rows are stored unweighted (IDF moves as the corpus grows): weight both sides here.
        dots = (self._matrix @ query.multiply(idf).tocsr().T).toarray().ravel()
        squared = self._matrix.multiply(self._matrix) @ (idf * idf)
        norms = np.sqrt(np.asarray(squared).ravel()) * query_norm
        scores = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        best = int(np.argmax(scores))
        return float(scores[best]), self._ids[best]

    def check(self, text: str) -> FilterDecision:
        """Decide on ``text``, record the decision, and remember it if accepted."""
        with self._lock:
            tf = self._tf(text)
            similarity, nearest = self._nearest(tf)
            accepted = similarity < self.threshold
            row_id = self.store.record_instruction(text, accepted=accepted, similarity=similarity, nearest_id=nearest)
            if accepted:
                self._remember(row_id, text, tf)
            else:
                logger.debug("instruction rejected: similarity {:.3f} to #{}", similarity, nearest)
            return FilterDecision(accepted, similarity, nearest, row_id)
