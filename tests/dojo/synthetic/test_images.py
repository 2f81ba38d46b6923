"""Image tasks: each level is one more edit of the instruction's scene, the picture read back
from the pixels is that scene, obfuscation makes a new file whose ground truth still holds,
and the validator re-encodes what it sends."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from PIL import Image

from commons.media import decode, sniff
from commons.obfuscation import obfuscate_image
from commons.protocol import ImageContent
from dojo.synthetic.backend import GeneratedCompletion, TaskDiscarded
from dojo.synthetic.imagegen import (
    COLOURS,
    Group,
    Scene,
    describe,
    deviate,
    png_bytes,
    read_scene,
    render,
    sample_scene,
    scene_distance,
)
from dojo.synthetic.kinds import ImageLevel, ProceduralImageBackend, image_content
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.procedural import ProceduralBackend


def test_each_level_is_one_more_edit_and_names_no_new_colour():
    for seed in range(200):
        rng = random.Random(seed)
        groups = 2 + seed % 2
        scene = sample_scene(rng, groups=groups)
        levels = deviate(scene, 5 if groups == 2 else 7, rng)
        assert [scene_distance(s, scene) for s in levels] == list(range(1, len(levels) + 1))
        for before, after in zip([scene, *levels], levels, strict=False):
            assert scene_distance(after, before) == 1
            assert sorted(after.colours()) == sorted(scene.colours())
            assert len({g.region for g in after.groups}) == len(after.groups)  # groups never share a quadrant
        words = describe(scene, rng)
        for g in scene.groups:
            assert g.colour in words


def test_swapping_two_groups_colours_is_one_edit():
    a = Group("red", "circle", 3, "top left")
    b = Group("blue", "star", 2, "bottom right")
    scene = Scene((a, b), "white")
    swapped = Scene(
        (Group("blue", "circle", 3, "top left"), Group("red", "star", 2, "bottom right")), "white"
    )
    assert scene_distance(swapped, scene) == 1
    assert scene_distance(Scene((a,), "white"), scene) >= 1000  # a group missing: not this scene


def test_the_scene_read_from_the_pixels_is_the_scene_drawn():
    for seed in range(60):
        rng = random.Random(seed)
        scene = sample_scene(rng, groups=2 + seed % 2)
        for level, s in enumerate([scene, *deviate(scene, 3, rng)]):
            image = render(s, 1024, rng)
            _, decoded = decode(png_bytes(image))
            assert scene_distance(read_scene(decoded, s.background), scene) == level


def test_an_obfuscated_image_is_a_new_file_whose_ground_truth_still_holds():
    rng = random.Random(4)
    scene = sample_scene(rng, groups=3)
    drawn = [scene, *deviate(scene, 3, rng)]
    for level, s in enumerate(drawn):
        original = png_bytes(render(s, 1024, rng))
        _, clean = decode(original)
        digests = set()
        for seed in range(4):
            info, data = obfuscate_image(original, random.Random(seed))
            digests.add(hashlib.sha256(data).hexdigest())
            assert info.media_type == "image/jpeg" and (info.width, info.height) == (1024, 1024)
            _, seen = decode(data)
            # Below perception: the typical pixel moves a few levels at most ...
            a, b = clean.resize((64, 64)).tobytes(), seen.resize((64, 64)).tobytes()
            diffs = sorted(abs(x - y) for x, y in zip(a, b, strict=True))
            assert diffs[len(diffs) // 2] <= 4
            # ... and the picture is still exactly ``level`` edits from the instruction.
            assert scene_distance(read_scene(seen, s.background), scene) == level
        assert hashlib.sha256(original).hexdigest() not in digests and len(digests) == 4


async def test_image_tasks_through_the_pipeline():
    pipeline = SyntheticPipeline(ProceduralBackend(), seed="img", options=PipelineOptions(n_completions=4))
    try:
        task = await pipeline.generate_task("image")
    finally:
        await pipeline.aclose()
    assert task.kind == "image" and sorted(task.ground_truth.values()) == [1, 2, 3, 4]
    for response in task.responses:
        sent, kept = response.completion.content, response.completion.original_content
        assert isinstance(sent, ImageContent) and isinstance(kept, ImageContent)
        assert sent.media_type == "image/jpeg" and kept.media_type == "image/png"
        assert (sent.width, sent.height) == (1024, 1024) and sent.alt == ""
        assert sent.data != kept.data
        # Small enough that four go to a miner within its 1 MiB request limit.
        assert sent.byte_size < 150_000
    assert pipeline.stats["image"].generated == 1


class Blurry(ProceduralImageBackend):
    """Draws the right scene, then smears it so that no shape can be read back."""

    async def generate(self, instruction, rng, budget, feedback=None):
        level: ImageLevel = instruction.payload
        image = render(level.scene, 256, rng).convert("RGB").resize((16, 16)).resize((256, 256))
        out = io.BytesIO()
        image.save(out, "PNG")
        return GeneratedCompletion(
            files=[], model="blurry", content=image_content(out.getvalue(), "image/png", 256, 256)
        )


async def test_an_image_task_the_checker_cannot_read_is_discarded_and_counted():
    pipeline = SyntheticPipeline(
        ProceduralBackend(),
        seed="blur",
        backends={"image": Blurry()},
        options=PipelineOptions(max_generation_attempts=1),
    )
    try:
        with pytest.raises(TaskDiscarded):
            await pipeline.generate_task("image")
        assert pipeline.stats["image"].discarded == 1
    finally:
        await pipeline.aclose()


def test_the_validator_sends_images_written_anew():
    from dojo.validator.neuron import sendable

    exif = Image.Exif()
    exif[0x010F] = "Secret-Camera"
    out = io.BytesIO()
    Image.new("RGB", (32, 32), COLOURS["red"]).save(out, "JPEG", exif=exif)
    tagged = out.getvalue()
    content = image_content(tagged, "image/jpeg", 32, 32)
    clean = sendable(content)
    assert isinstance(clean, ImageContent)
    assert b"Secret-Camera" in tagged and b"Secret-Camera" not in clean.image_bytes()
    assert sniff(clean.image_bytes(), "image/jpeg").width == 32


def test_the_validator_refuses_an_image_that_does_not_decode_before_anything_is_sent():
    from commons.media import ImageRefused
    from dojo.validator.neuron import sendable

    out = io.BytesIO()
    Image.new("RGB", (400, 300), COLOURS["blue"]).save(out, "JPEG", quality=95)
    truncated = out.getvalue()[: len(out.getvalue()) // 2]
    content = image_content(truncated, "image/jpeg", 400, 300)  # its header is whole: the protocol takes it
    with pytest.raises(ImageRefused, match="does not decode"):
        sendable(content)
