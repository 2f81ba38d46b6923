"""Every content kind in the export: a modality column, images as the Hugging Face Image
feature that datasets opens as pictures, text and dialogue pairs in TRL's conversational form
behind an option, and the card's count of each kind."""

from __future__ import annotations

import base64
import json

import pytest

from dojo.export import ExportOptions, export_dataset
from tests.dojo.export.conftest import MINERS

AGREE = [[1, 2, 3, 4]] * 3  # every worker ranks the completions in order


@pytest.fixture
def kinds(scored):
    planned = {
        kind: scored.add({hk: AGREE for _, hk in MINERS}, kind=kind)
        for kind in ("code", "text", "dialogue", "image")
    }
    scored.score()
    return planned


def test_each_task_says_its_modality_and_images_load_as_pictures(store, kinds, tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    summary = export_dataset(store.url, tmp_path, ExportOptions(min_agreement=0.0))
    assert summary.tasks_by_modality == {"code": 1, "text": 1, "dialogue": 1, "image": 1}
    assert summary.preferences_by_modality == {"code": 6, "text": 6, "dialogue": 6, "image": 6}
    tasks = datasets.load_dataset("parquet", data_files=str(tmp_path / "tasks.parquet"), split="train")
    by_id = {t["task_id"]: t for t in tasks}
    assert {by_id[p.task_id]["modality"] for p in kinds.values()} == {"code", "text", "dialogue", "image"}
    image_task = by_id[kinds["image"].task_id]
    assert image_task["task_type"] == "image"
    picture = image_task["completions"][0]["content"]["image"]
    assert isinstance(picture, Image.Image) and picture.size == (8, 6)
    original = base64.b64decode(kinds["image"].originals[0]["data"])
    assert picture.tobytes() == Image.open(__import__("io").BytesIO(original)).convert("RGB").tobytes()
    assert by_id[kinds["text"].task_id]["completions"][0]["content"]["image"] is None
    pairs = datasets.load_dataset("parquet", data_files=str(tmp_path / "preferences.parquet"), split="train")
    image_pairs = [p for p in pairs if p["modality"] == "image"]
    assert len(image_pairs) == 6
    assert all(isinstance(p["chosen_image"], Image.Image) and p["chosen"] is None for p in image_pairs)
    text_pairs = [p for p in pairs if p["modality"] == "text"]
    assert all(
        p["chosen_image"] is None and p["chosen"].startswith("The answer: original") for p in text_pairs
    )
    # The card lists the kinds, and loading the folder through it gives pictures too.
    card = (tmp_path / "README.md").read_text()
    assert "| image | 1 | 6 |" in card and "| dialogue | 1 | 6 |" in card
    through_card = datasets.load_dataset(str(tmp_path), split="train", cache_dir=str(tmp_path / "cache"))
    assert any(isinstance(p["chosen_image"], Image.Image) for p in through_card)


def test_jsonl_carries_the_image_bytes_in_base64(store, kinds, tmp_path):
    export_dataset(store.url, tmp_path, ExportOptions(format="jsonl", min_agreement=0.0))
    rows = [json.loads(line) for line in (tmp_path / "preferences.jsonl").read_text().splitlines()]
    image = next(r for r in rows if r["modality"] == "image")
    assert base64.b64decode(image["chosen_image"]["bytes"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert image["chosen_image"]["path"].endswith(".png")


def test_text_and_dialogue_pairs_in_trls_conversational_form(store, kinds, tmp_path):
    datasets = pytest.importorskip("datasets")
    plain = export_dataset(store.url, tmp_path / "plain", ExportOptions(min_agreement=0.0))
    assert "preferences_conversational" not in plain.files
    assert not (tmp_path / "plain" / "preferences_conversational.parquet").exists()
    summary = export_dataset(
        store.url, tmp_path / "chat", ExportOptions(min_agreement=0.0, conversational=True)
    )
    assert summary.conversational_pairs == 12
    rows = datasets.load_dataset(
        "parquet", data_files=str(tmp_path / "chat" / "preferences_conversational.parquet"), split="train"
    )
    assert {r["modality"] for r in rows} == {"text", "dialogue"}
    text = next(r for r in rows if r["modality"] == "text" and r["chosen_id"].endswith("c0"))
    assert text["prompt"] == [{"role": "user", "content": "Draw scene 1 with a red square"}]
    assert text["chosen"] == [{"role": "assistant", "content": "The answer: original 1.0"}]
    dialogue = next(r for r in rows if r["modality"] == "dialogue" and r["chosen_id"].endswith("c0"))
    # The turn the completions share is the prompt; the ranked turn is the answer.
    assert dialogue["prompt"] == [{"role": "user", "content": "Where do we meet?"}]
    assert dialogue["chosen"] == [{"role": "assistant", "content": "At original 2.0."}]
    assert dialogue["rejected"][0]["role"] == "assistant"
    card = (tmp_path / "chat" / "README.md").read_text()
    assert "config_name: preferences_conversational" in card
    by_card = datasets.load_dataset(
        str(tmp_path / "chat"), "preferences_conversational", split="train", cache_dir=str(tmp_path / "cache")
    )
    assert len(by_card) == 12
