"""What one exported task says: pseudonyms, the consensus ranking, agreement, preference pairs.

Pure functions over what the reader took from the database; no I/O. The consensus and the
agreement are computed for a whole batch of tasks at once, with the metrics of
:mod:`commons.scoring`, so their cost does not grow with Python loops per completion.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from commons.scoring import ScoringParams, average_ranks, spearman_rho

# Agreement (multi-rater kappa) a task needs for its pairs to be exported by default: the
# kappa below which the validator's own scoring gives the consensus no trust.
DEFAULT_MIN_AGREEMENT = ScoringParams().kappa_min
# Consensus mean ranks closer than this count as tied (float sums of equal ranks).
_TIE = 1e-9

_MINER_HEX = 8
_WORKER_HEX = 12
_CACHE_LIMIT = 1 << 16


class Pseudonyms:
    """Names for miners and workers that are stable within one export and reveal no hotkey.

    ``miner-<8 hex>`` is HMAC-SHA256 of the hotkey under a random key made for this export and
    never written anywhere, so the same miner has the same name in every row of an export, a
    different name in the next export, and nobody holding the data (or every hotkey on chain)
    can tell which hotkey a name is. Worker ids are already the miners' own pseudonyms; they
    are hashed again, with the miner's hotkey, into ``worker-<12 hex>`` (longer: there are many
    more workers than miners, and a collision would merge two people).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._cache: dict[tuple[str, ...], str] = {}

    def _name(self, prefix: str, digits: int, parts: tuple[str, ...]) -> str:
        name = self._cache.get(parts)
        if name is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()  # bounded memory; recomputing gives the same name
            # Parts joined with NUL, which no hotkey or worker id holds: ("a", "bc") != ("ab", "c").
            digest = hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()
            name = self._cache[parts] = f"{prefix}-{digest[:digits]}"
        return name

    def miner(self, hotkey: str) -> str:
        return self._name("miner", _MINER_HEX, ("miner", hotkey))

    def worker(self, miner_hotkey: str, worker_id: str) -> str:
        return self._name("worker", _WORKER_HEX, ("worker", miner_hotkey, worker_id))


# --- content ---------------------------------------------------------------------------------


_BACKTICKS = re.compile(r"`{3,}")


def render_content(content: Mapping[str, Any]) -> str:
    """One completion's content as the text a preference-tuning library trains on.

    Text is itself; a dialogue is ``role: message`` turns separated by blank lines; code is
    each file as its name on a line of its own, then a Markdown code block in the file's
    language, fenced with more backticks than the file holds in a row, so that the file can
    never close its own block; an image has no text (its alternative text, if any).
    """
    kind = content.get("kind")
    if kind == "text":
        return str(content.get("text", ""))
    if kind == "image":
        return str(content.get("alt", ""))
    if kind == "dialogue":
        return "\n\n".join(f"{t['role']}: {t['message']}" for t in content.get("turns", []))
    parts = []
    for f in content.get("files", []):
        body = str(f.get("content", ""))
        longest = max((len(m) for m in _BACKTICKS.findall(body)), default=2) if "```" in body else 2
        fence = "`" * max(3, longest + 1)
        parts.append(f"{f.get('filename', '')}\n{fence}{f.get('language', '')}\n{body}\n{fence}")
    return "\n\n".join(parts)


_SUFFIX = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def image_record(content: Mapping[str, Any], name: str = "image") -> dict[str, Any] | None:
    """An image content as the Hugging Face ``Image`` feature stores one: its bytes and a name."""
    if content.get("kind") != "image":
        return None
    data = base64.b64decode(str(content.get("data", "")))
    return {"bytes": data, "path": f"{name}.{_SUFFIX.get(str(content.get('media_type')), 'img')}"}


def content_record(content: Mapping[str, Any], name: str = "image") -> dict[str, Any]:
    """The protocol's content in the export's fixed shape: every kind's fields, null if not its
    own. The lists are the stored ones, not copies (their items are the protocol's objects)."""
    kind = content.get("kind")
    return {
        "kind": kind,
        "text": content.get("text") if kind == "text" else None,
        "files": content.get("files") if kind == "code" else None,
        "turns": content.get("turns") if kind == "dialogue" else None,
        "image": image_record(content, name),
    }


def conversation(
    prompt: str, chosen: Mapping[str, Any], rejected: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A text or dialogue pair in TRL's conversational form: ``prompt`` (the messages before
    the answer), ``chosen`` and ``rejected`` (the answers, as assistant messages); None for
    another kind. A dialogue's prompt is the turns both completions share; with none shared,
    the task's prompt as the user's message and each whole conversation as the answer."""
    kind = chosen.get("kind")
    if kind != rejected.get("kind") or kind not in ("text", "dialogue"):
        return None
    if kind == "text":
        ask = [{"role": "user", "content": prompt}]
        return {
            "prompt": ask,
            "chosen": [{"role": "assistant", "content": str(chosen.get("text", ""))}],
            "rejected": [{"role": "assistant", "content": str(rejected.get("text", ""))}],
        }
    a = [{"role": str(t["role"]), "content": str(t["message"])} for t in chosen.get("turns", [])]
    b = [{"role": str(t["role"]), "content": str(t["message"])} for t in rejected.get("turns", [])]
    shared = 0
    while shared < min(len(a), len(b)) - 1 and a[shared] == b[shared]:
        shared += 1
    if shared == 0:
        return {"prompt": [{"role": "user", "content": prompt}], "chosen": a, "rejected": b}
    return {"prompt": a[:shared], "chosen": a[shared:], "rejected": b[shared:]}


# --- consensus and agreement -------------------------------------------------------------------


@dataclass
class MinerAnswer:
    """One miner's answer to a task: ``answer`` in the task's completion order (mean rank
    per completion over its workers; for a multi-score criterion the mean score), its
    in-round reliability, its score on the task, and its workers' own values."""

    hotkey: str
    answer: list[float]
    n_workers: int
    reliability: float
    score: float
    workers: list[tuple[str, list[float], str | None]] = field(default_factory=list)  # id, values, rationale


@dataclass
class Consensus:
    """A task's consensus: each completion's weighted mean rank and its rank among them
    (1 = best, ties share the mean position), each answering miner's weight (summing to 1),
    and the mean Spearman rho of the answers with the consensus. ``None`` fields: no miner
    answered."""

    mean_ranks: list[float] | None
    ranks: list[float] | None
    weights: list[float]
    mean_rho: float | None


def consensus_batch(
    answers: Sequence[Sequence[MinerAnswer]],
    n_completions: Sequence[int],
    higher_is_better: Sequence[bool],
) -> list[Consensus]:
    """The consensus of each task of a batch, from its miners' answers.

    As :func:`commons.scoring.score_round` forms its consensus: each answer is turned into
    average ranks (a multi-score answer oriented first, higher = better), and the ranks are
    averaged with weight ``q_m²``, ``q_m`` the miner's reliability in the round that scored the
    task (the reliability ``score_round`` ends the round with). Unlike scoring, which leaves
    each miner out of its own consensus, every answering miner is in it: this is the
    consensus of the task, not the one a miner is measured against. When every answering
    miner has reliability 0 they count equally.

    ``mean_rho`` is the mean over answering miners of Spearman's rho between the miner's
    answer and the consensus mean ranks (a miner that is alone gives 1, or 0 for a constant
    answer).
    """
    n_tasks = len(answers)
    if n_tasks == 0:
        return []
    width = max([*n_completions, 1])
    depth = max([len(a) for a in answers] + [1])
    x = np.full((n_tasks, depth, width), np.nan)
    q = np.zeros((n_tasks, depth))
    present = np.zeros((n_tasks, depth), dtype=bool)
    for t, task_answers in enumerate(answers):
        sign = -1.0 if higher_is_better[t] else 1.0
        for k, a in enumerate(task_answers):
            n = min(len(a.answer), n_completions[t])
            x[t, k, :n] = np.asarray(a.answer[:n], dtype=np.float64) * sign
            q[t, k] = max(0.0, a.reliability) if np.isfinite(a.reliability) else 0.0
            present[t, k] = True
    items = np.arange(width)[None, :] < np.asarray(n_completions)[:, None]  # (T, C)
    # A miner whose answer misses a completion is no answer (as in scoring).
    complete = present & np.all(np.isfinite(x) | ~items[:, None, :], axis=-1)
    ranks = average_ranks(x, mask=items[:, None, :] & complete[..., None])
    w = np.where(complete, q * q, 0.0)
    none_weighted = w.sum(axis=1) <= 0
    w[none_weighted] = complete[none_weighted].astype(np.float64)
    total = w.sum(axis=1)
    safe_total = np.where(total > 0, total, 1.0)
    mean_ranks = np.einsum("tk,tkc->tc", w, np.nan_to_num(ranks, nan=0.0)) / safe_total[:, None]
    mean_ranks = np.round(mean_ranks, 9)  # equal sums of ranks compare equal
    mean_ranks = np.where(items & (total > 0)[:, None], mean_ranks, np.nan)
    cons_ranks = average_ranks(mean_ranks)
    rho = spearman_rho(x, mean_ranks[:, None, :])  # (T, K), over the items valid in both
    out = []
    for t in range(n_tasks):
        n = n_completions[t]
        if total[t] <= 0:
            out.append(Consensus(None, None, [0.0] * len(answers[t]), None))
            continue
        answered = complete[t, : len(answers[t])]
        out.append(
            Consensus(
                mean_ranks=[float(v) for v in mean_ranks[t, :n]],
                ranks=[float(v) for v in cons_ranks[t, :n]],
                weights=[float(v) for v in w[t, : len(answers[t])] / total[t]],
                mean_rho=float(rho[t, : len(answers[t])][answered].mean()),
            )
        )
    return out


def preference_pairs(mean_ranks: Sequence[float]) -> list[tuple[int, int, float]]:
    """Every ordered pair of a task's completions by its consensus: ``(chosen, rejected,
    margin)`` with the chosen completion's consensus mean rank strictly better (lower).

    ``margin = (mean rank of rejected - mean rank of chosen) / (n - 1)``, in ``(0, 1]``: 1 when
    every weighted miner put the chosen completion first and the rejected one last. A strict
    consensus of ``n`` completions gives ``n(n-1)/2`` pairs; a pair the consensus ties gives
    none (there is no preference to learn from it). Ordered by the chosen completion's
    consensus, then the rejected one's.
    """
    n = len(mean_ranks)
    if n < 2:
        return []
    order = sorted(range(n), key=lambda i: (mean_ranks[i], i))
    pairs = []
    for a, i in enumerate(order):
        for j in order[a + 1 :]:
            gap = mean_ranks[j] - mean_ranks[i]
            if gap > _TIE:
                pairs.append((i, j, gap / (n - 1)))
    return pairs
