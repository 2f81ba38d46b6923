"""The exported files' schemas: one pyarrow schema per file, each field with its description.

The Parquet files are written with exactly these schemas (the descriptions ride along as
field metadata); the JSON lines files hold the same fields, timestamps as ISO 8601 UTC
strings. The dataset card and ``docs/dataset.md`` print the tables :func:`describe` makes.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 2
MODALITIES = ("code", "text", "dialogue", "image")
# The Hugging Face ``Image`` feature's storage: the file's bytes and a name (``path``).
IMAGE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])


def _f(name: str, type_: pa.DataType, description: str, nullable: bool = True) -> pa.Field[pa.DataType]:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


_FILE = pa.struct(
    [
        _f("filename", pa.string(), "file name, e.g. index.html"),
        _f("content", pa.string(), "the file's text"),
        _f("language", pa.string(), "language of the file (html, javascript, css, …)"),
    ]
)
_TURN = pa.struct(
    [
        _f("role", pa.string(), "user, assistant or system"),
        _f("message", pa.string(), "what was said"),
    ]
)


def _image(name: str, description: str) -> pa.Field[pa.DataType]:
    return pa.field(name, IMAGE, metadata={"description": description, "dojo.feature": "Image"})


def _content(description: str) -> pa.Field[pa.DataType]:
    return _f(
        "content",
        pa.struct(
            [
                _f("kind", pa.string(), "code, text, dialogue or image: which of the fields below holds it"),
                _f("text", pa.string(), "the text (kind text)"),
                _f("files", pa.list_(_FILE), "the files (kind code)"),
                _f("turns", pa.list_(_TURN), "the turns (kind dialogue)"),
                _image(
                    "image",
                    "the image (kind image): the file's bytes (PNG, JPEG or WebP) and a name; "
                    "the Hugging Face Image feature, so datasets opens it as a picture",
                ),
            ]
        ),
        description,
    )


def tasks_schema(synthetic_metadata: bool = False) -> pa.Schema:
    completion = [
        _f("completion_id", pa.string(), "the task's own id of the completion (miners saw other ids)"),
        _f("model", pa.string(), "label of the model or generator that wrote it"),
        _content(
            "the completion as generated, before obfuscation; as sent to miners where original_known is false"
        ),
        _f(
            "original_known",
            pa.bool_(),
            "true: content is the original; false: the validator did not have "
            "it (tasks from before the original was kept) and content is what miners got, obfuscated",
        ),
    ]
    if synthetic_metadata:
        sent = _content("the completion exactly as miners got it (obfuscated)")
        completion.append(pa.field("sent_content", sent.type, metadata=sent.metadata))
    worker = pa.struct(
        [
            _f("worker", pa.string(), "worker pseudonym, worker-<12 hex>: stable within this export only"),
            _f(
                "values",
                pa.list_(pa.float64()),
                "the worker's rank (1 = best) of each completion, in completion "
                "order; for a multi-score criterion, its score (higher = better)",
            ),
            _f(
                "rationale",
                pa.string(),
                "why the worker ranked so, in its own words (one line, at most 1000 "
                "characters); null when it gave no reason",
            ),
        ]
    )
    miner = pa.struct(
        [
            _f("miner", pa.string(), "miner pseudonym, miner-<8 hex>: stable within this export only"),
            _f(
                "answer",
                pa.list_(pa.float64()),
                "the mean over the miner's workers of values, per completion",
            ),
            _f("n_workers", pa.int32(), "workers whose rankings made the answer"),
            _f("weight", pa.float64(), "the miner's weight in the consensus (the task's weights sum to 1)"),
            _f("score", pa.float64(), "the score the validator gave the miner on this task, in [0, 1]"),
            _f("workers", pa.list_(worker), "each worker's own ranking"),
        ]
    )
    fields = [
        _f("task_id", pa.string(), "the validator's task id", nullable=False),
        _f("created_at", pa.timestamp("us", tz="UTC"), "when the validator made the task (UTC)"),
        _f("task_type", pa.string(), "code_generation, text, dialogue or image: the task type miners got"),
        _f(
            "modality", pa.string(), "code, text, dialogue or image: the kind of every completion of the task"
        ),
        _f("criteria_type", pa.string(), "ranking, or multi-score"),
        _f("prompt", pa.string(), "the instruction every completion answers"),
        _f(
            "completions",
            pa.list_(pa.struct(completion)),
            "the completions, in the task's own order: every list of ranks below is in this order",
        ),
        _f(
            "ground_truth_ranking",
            pa.list_(pa.int32()),
            "the synthetic ground truth: rank of each completion, "
            "1 = the completion that answers the prompt, k + 1 = one answering a variant k steps from it; "
            "null where unknown",
        ),
        _f("miners", pa.list_(miner), "every miner that answered, with its workers"),
        _f(
            "consensus_mean_ranks",
            pa.list_(pa.float64()),
            "per completion, the weighted mean over miners of "
            "the rank each gave it (its answer re-ranked, 1 = best); null when no miner answered",
        ),
        _f(
            "consensus_ranking",
            pa.list_(pa.float64()),
            "the rank of each completion in the consensus, 1 = best, "
            "ties sharing the mean of their positions; null when no miner answered",
        ),
        _f(
            "task_kappa",
            pa.float64(),
            "agreement among the miners: the reliability-weighted multi-rater "
            "quadratic kappa the validator scored the task with, in [-1, 1]",
        ),
        _f(
            "mean_rho",
            pa.float64(),
            "mean over the miners of Spearman's rho between the miner's answer and the "
            "consensus, in [-1, 1]; null when no miner answered",
        ),
        _f("n_miners", pa.int32(), "miners that answered"),
        _f("n_workers", pa.int32(), "workers over all those miners"),
        _f(
            "origin",
            pa.string(),
            "synthetic: made by the validator, with a ground truth; organic: an outside "
            "caller's task that it made public (no ground truth; private organic tasks are never exported)",
        ),
    ]
    if synthetic_metadata:
        fields += [
            _f("source", pa.string(), "where the task came from: the synthetic API's URL, or in-process"),
            _f("criteria", pa.string(), "the criteria sent to miners, as the protocol's JSON"),
            _f("expire_at", pa.timestamp("us", tz="UTC"), "the deadline the workers had (UTC)"),
            _f("round_id", pa.int64(), "the validator's scoring round"),
            _f(
                "consensus_trust",
                pa.float64(),
                "the weight scoring gave the consensus on this task, in [0, 1]",
            ),
        ]
    return pa.schema(fields, metadata={"dojo.file": "tasks", "dojo.schema_version": str(SCHEMA_VERSION)})


def preferences_schema() -> pa.Schema:
    return pa.schema(
        [
            _f("prompt", pa.string(), "the task's prompt"),
            _f(
                "chosen",
                pa.string(),
                "the completion the consensus ranks better, as text (code: each file's "
                "name, then its content in a fenced block; dialogue: role: message turns); null for an image",
            ),
            _f("rejected", pa.string(), "the completion the consensus ranks worse, in the same form"),
            _f("modality", pa.string(), "code, text, dialogue or image"),
            _image("chosen_image", "the image the consensus ranks better (modality image), else null"),
            _image("rejected_image", "the image the consensus ranks worse (modality image), else null"),
            _f(
                "margin",
                pa.float64(),
                "(consensus mean rank of rejected - of chosen) / (n - 1), in (0, 1]: "
                "1 when every miner put chosen first and rejected last",
            ),
            _f("agreement", pa.float64(), "the task's agreement among miners (task_kappa in tasks)"),
            _f("task_id", pa.string(), "the task in tasks"),
            _f("chosen_id", pa.string(), "completion_id of chosen in the task"),
            _f("rejected_id", pa.string(), "completion_id of rejected in the task"),
        ],
        metadata={"dojo.file": "preferences", "dojo.schema_version": str(SCHEMA_VERSION)},
    )


_MESSAGE = pa.struct(
    [
        _f("role", pa.string(), "user, assistant or system"),
        _f("content", pa.string(), "what was said"),
    ]
)


def conversational_schema() -> pa.Schema:
    """The text and dialogue pairs in TRL's conversational preference form."""
    return pa.schema(
        [
            _f(
                "prompt",
                pa.list_(_MESSAGE),
                "the conversation before the answer: the task's prompt as the user's "
                "message (text), or the turns every completion shares (dialogue)",
            ),
            _f("chosen", pa.list_(_MESSAGE), "the answer the consensus ranks better, as assistant messages"),
            _f("rejected", pa.list_(_MESSAGE), "the answer the consensus ranks worse, as assistant messages"),
            _f("modality", pa.string(), "text or dialogue"),
            _f("margin", pa.float64(), "as in preferences"),
            _f("agreement", pa.float64(), "as in preferences"),
            _f("task_id", pa.string(), "the task in tasks"),
            _f("chosen_id", pa.string(), "completion_id of chosen in the task"),
            _f("rejected_id", pa.string(), "completion_id of rejected in the task"),
        ],
        metadata={"dojo.file": "preferences_conversational", "dojo.schema_version": str(SCHEMA_VERSION)},
    )


_DTYPES = {"double": "float64", "float": "float32"}


def _feature(
    field: pa.Field[pa.DataType] | pa.DataType, meta: dict[Any, Any] | None = None
) -> dict[str, Any]:
    t = field.type if isinstance(field, pa.Field) else field
    if (meta or {}).get(b"dojo.feature") == b"Image":
        return {"_type": "Image"}
    if pa.types.is_list(t):
        item = t.value_field
        return {"feature": _feature(item, item.metadata), "_type": "List"}
    if pa.types.is_struct(t):
        return {t.field(i).name: _feature(t.field(i), t.field(i).metadata) for i in range(t.num_fields)}
    return {"dtype": _DTYPES.get(str(t), str(t)), "_type": "Value"}


def with_features(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the Hugging Face ``datasets`` features in its metadata (key
    ``huggingface``), so that a loader reads the image columns as pictures."""
    features = {f.name: _feature(f, f.metadata) for f in schema}
    metadata = dict(schema.metadata or {})
    metadata[b"huggingface"] = json.dumps({"info": {"features": features}}).encode()
    return schema.with_metadata(metadata)


def _type_name(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return f"list<{_type_name(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_timestamp(t):
        return "timestamp (UTC)"
    if t == IMAGE:
        return "Image"
    return {"string": "string", "double": "float64", "int32": "int32", "int64": "int64", "bool": "bool"}.get(
        str(t), str(t)
    )


def describe(schema: pa.Schema) -> list[tuple[str, str, str]]:
    """``(column, type, description)`` for every field, nested ones as ``a[].b``."""
    rows: list[tuple[str, str, str]] = []

    def walk(field: pa.Field[pa.DataType], prefix: str) -> None:
        meta: dict[Any, Any] = field.metadata or {}
        rows.append((prefix + field.name, _type_name(field.type), meta.get(b"description", b"").decode()))
        t = field.type
        if pa.types.is_list(t):
            t = t.value_type
            prefix = prefix + field.name + "[]."
        else:
            prefix = prefix + field.name + "."
        if pa.types.is_struct(t) and t != IMAGE:
            for i in range(t.num_fields):
                walk(t.field(i), prefix)

    for f in schema:
        walk(f, "")
    return rows
