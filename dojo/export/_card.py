"""The dataset card: ``README.md`` with the Hugging Face metadata header, written last.

The header's ``configs`` name the two files, so ``datasets.load_dataset(DIR, "preferences")``
(or the Hub, once uploaded) finds them without being told; the body says what the data is,
how it was collected, how agreement and the consensus are measured, and the schema.
"""

from __future__ import annotations

import pyarrow as pa

from dojo.export._schema import (
    IMAGE,
    MODALITIES,
    SCHEMA_VERSION,
    conversational_schema,
    describe,
    preferences_schema,
    tasks_schema,
)
from dojo.export._summary import ExportSummary


def _size_category(n: int) -> str:
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
    ]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T" if n >= 10**12 else "100M<n<1B" if n < 10**9 else "1B<n<10B" if n < 10**10 else "10B<n<100B"


def _yaml_type(t: pa.DataType, indent: str) -> list[str]:
    """``datasets``' YAML of one field's type: ``dtype: x``, ``list: x``, or nested fields."""
    if pa.types.is_struct(t):
        return [f"{indent}struct:", *_yaml_fields(t, indent)]
    if pa.types.is_list(t):
        inner = t.value_type
        if pa.types.is_struct(inner):
            return [f"{indent}list:", *_yaml_fields(inner, indent)]
        return [f"{indent}list: {_dtype(inner)}"]
    return [f"{indent}dtype: {_dtype(t)}"]


def _yaml_fields(struct: pa.StructType | pa.Schema, indent: str) -> list[str]:
    lines = []
    for f in struct:
        lines.append(f"{indent}- name: {f.name}")
        if f.type == IMAGE:
            lines.append(f"{indent}  dtype: image")
        else:
            lines.extend(_yaml_type(f.type, indent + "  "))
    return lines


def _dtype(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, tz={t.tz}]" if t.tz else f"timestamp[{t.unit}]"
    return {"string": "string", "double": "float64", "bool": "bool"}.get(str(t), str(t))


def _features(name: str, schema: pa.Schema) -> str:
    """The ``dataset_info`` entry of one config: its features, so that ``datasets`` loads the
    JSON lines files with the Parquet files' exact types, whatever the first rows hold."""
    return "\n".join([f"- config_name: {name}", "  features:", *_yaml_fields(schema, "  ")])


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| column | type | description |", "|---|---|---|"]
    lines += [f"| `{name}` | {type_} | {text.replace('|', '/')} |" for name, type_, text in rows]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _kinds(summary: ExportSummary) -> str:
    lines = ["| kind | tasks | preference pairs |", "|---|---|---|"]
    for kind in MODALITIES:
        tasks = summary.tasks_by_modality.get(kind, 0)
        pairs = summary.preferences_by_modality.get(kind, 0)
        if tasks or pairs:
            lines.append(f"| {kind} | {tasks} | {pairs} |")
    if len(lines) == 2:
        lines.append("| (none) | 0 | 0 |")
    return "\n".join(lines)


def dataset_card(summary: ExportSummary) -> str:
    tasks_file, prefs_file = summary.files["tasks"], summary.files["preferences"]
    chat_file = summary.files.get("preferences_conversational")
    chat_config = (
        f"""
- config_name: preferences_conversational
  data_files:
  - split: train
    path: {chat_file}"""
        if chat_file
        else ""
    )
    chat_features = (
        "\n" + _features("preferences_conversational", conversational_schema()) if chat_file else ""
    )
    chat_section = (
        f"""- `{chat_file}`: the text and dialogue pairs of `{prefs_file}` in TRL's conversational form:
  `prompt`, `chosen` and `rejected` as lists of `{{"role", "content"}}` messages (a dialogue's
  prompt is the conversation before the ranked turn), {summary.conversational_pairs} pairs.
"""
        if chat_file
        else ""
    )
    since = summary.since.isoformat().replace("+00:00", "Z") if summary.since else "the first task"
    header = f"""---
pretty_name: Dojo human preference rankings
language:
- en
license: other
tags:
- human-feedback
- preference
- dpo
- reward-modeling
- code
- image
- bittensor
task_categories:
- text-generation
- text-to-image
size_categories:
- {_size_category(summary.preferences)}
configs:
- config_name: preferences
  default: true
  data_files:
  - split: train
    path: {prefs_file}
- config_name: tasks
  data_files:
  - split: train
    path: {tasks_file}{chat_config}
dataset_info:
{_features("preferences", preferences_schema())}
{_features("tasks", tasks_schema(summary.synthetic_metadata))}{chat_features}
---
"""
    body = f"""
# Dojo human preference rankings

Human rankings of AI responses (code, text, dialogue and images), collected on Dojo, the
Bittensor subnet that crowdsources human preference data, and exported from one validator's
task database on {summary.exported_at_iso} (tasks created from {since} on).

{_kinds(summary)}

| | |
|---|---|
| tasks (scored) | {summary.tasks} |
| completions | {summary.completions} ({summary.completions_original_unknown} without their original content) |
| miners | {summary.miners} |
| workers | {summary.workers} |
| worker rankings | {summary.worker_rankings} |
| preference pairs | {summary.preferences}, from {summary.tasks_with_preferences} tasks with agreement ≥ {summary.min_agreement:g} |
| mean task agreement (kappa) | {_fmt(summary.mean_task_kappa)} |
| mean rho with the consensus | {_fmt(summary.mean_rho)} |

## Files

- `{tasks_file}`: one row per task: the prompt, every completion (its original content and
  model label), the ground-truth ranks, each miner's ranking and each of its workers', the
  consensus ranking and the task's agreement.
- `{prefs_file}`: one row per preference pair, in the format preference-tuning libraries read
  (`prompt`, `chosen`, `rejected`, as TRL's DPO and reward trainers take them), with `margin`,
  `agreement`, `task_id` and `modality`; an image pair has its pictures in `chosen_image` and
  `rejected_image` (the `Image` feature: `datasets` opens them as pictures) and no text.
{chat_section}
```python
from datasets import load_dataset

pairs = load_dataset("{summary.format_loader}", data_files="{prefs_file}", split="train")
tasks = load_dataset("{summary.format_loader}", data_files="{tasks_file}", split="train")
# or, with this card beside the files: load_dataset("path/to/this/folder", "preferences")
```

## How the data was collected

A Dojo validator generates each task: an instruction (the prompt) and several completions,
the first answering it and each other one step worse: for code, answering a variant of the
instruction that drifts one, two, three… properties away; for text and dialogue, a response
that states one, two, three… of the prompt's facts wrongly or takes its steps out of order;
for images, a picture with one, two, three… of the scene's objects' counts, shapes, places or
colours changed. So the validator knows the right order (the *ground truth*: rank 1 for the
completion that answers the prompt, k + 1 for the one k steps away), and a checker confirmed
it before the task was used. Before a task goes out, each completion's code is obfuscated
(names changed, comments stripped) and each image written anew, so that miners cannot look
it up or tell which model made it; this export gives the original (`original_known` says
where the validator did not keep it).

The validator sends the task to a sample of miners, each with its own completion ids and
order. Each miner has human workers on a worker platform rank the completions (1 = best);
after the deadline the validator collects every worker's ranking. A miner's *answer* is the
mean rank its workers gave each completion. Only tasks whose scoring round is finished
(status `scored`) are exported, so nothing here concerns a task still open to miners.

## Consensus and agreement

- **Consensus.** For each task, each miner's answer is turned into average ranks and the
  ranks are averaged over the miners that answered, miner `m` weighted by `q_m²`, where `q_m` is
  its reliability in the round that scored the task: the mean, over the tasks it answered in
  that round, of its agreement with the consensus and ground truth (floored at 0). This is
  the consensus the validator's scoring (`commons.scoring.score_round`) builds, with the
  reliability it ends the round with, except that scoring leaves each miner out of the
  consensus it is measured against and this one includes every miner: it is the task's
  consensus. Miners that agree with the others and with the ground truth count more; a
  miner answering at random, or against everyone, counts little. When every answering
  miner has reliability 0, they count equally. `consensus_mean_ranks` holds the weighted mean
  ranks, `consensus_ranking` their ranks (ties share the mean position).
- **Agreement.** `task_kappa` is the agreement the validator scored the task with: the
  multi-rater quadratic-weighted kappa of the miners' answers (chance-corrected: 0 is what
  independent random rankings give, 1 is identical rankings), each miner weighted by its
  reliability, floored at 0.3 of the best one's. A task with fewer than two answering miners
  has kappa 0. `mean_rho` is the mean over the miners of Spearman's rho between the miner's
  answer and the consensus (it includes the miner itself, so with few miners it is high).

## Preference pairs

Each task whose `task_kappa` is at least {summary.min_agreement:g} gives every ordered pair of its
completions by the consensus: `n(n-1)/2` pairs for `n` completions, the better one `chosen`.
A pair the consensus ties gives no row. `margin` is how far apart the two are,
`(mean rank of rejected - mean rank of chosen) / (n - 1)`, in (0, 1]; `agreement` is the task's
kappa. Code completions are rendered as text: each file's name on a line, then the file in
a fenced code block.

## Privacy

Miners and workers appear under pseudonyms (`miner-<8 hex>`, `worker-<12 hex>`): an
HMAC-SHA256 of the miner's hotkey (for a worker: of the miner's hotkey and the miner's own
pseudonym of the worker) under a random key made for this export and never stored. Within this export a name always
means the same miner or worker; in another export the same miner has another name, and no
hotkey can be recovered or checked against a name. No hotkey, uid, request id, IP address or
platform identity is in the data.

## Schema

`{tasks_file}`:

{_table(describe(tasks_schema(summary.synthetic_metadata)))}

`{prefs_file}`:

{_table(describe(preferences_schema()))}

## This export

Exported by `dojo export` (Dojo {summary.software_version}, schema version {SCHEMA_VERSION}) in
{summary.seconds:.1f} s: format {summary.format}, `--min-agreement {summary.min_agreement:g}`,
`--since {since}`{", with synthetic metadata" if summary.synthetic_metadata else ""}. License: set by
whoever publishes the data (`license: other` until then).
"""
    return header + body
