"""Images as the protocol carries them: hostile files are refused with the reason, metadata
never survives a re-encode."""

from __future__ import annotations

import io
import random
import struct
import zlib
from datetime import timedelta

import pytest
from PIL import Image, PngImagePlugin
from pydantic import ValidationError

from commons.media import (
    MAX_IMAGE_BYTES,
    ImageRefused,
    b64decode,
    b64encode,
    decode,
    reencode,
    sniff,
)
from commons.protocol import MAX_REQUEST_IMAGE_BYTES, Completion, FeedbackRequest, ImageContent
from template.clock import utcnow


def png(width: int = 64, height: int = 48, colour: str = "red", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG", **save)
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48, **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(out, "JPEG", **save)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring ``width``×``height`` (gigapixels) in a few hundred bytes:
    its IDAT is a zlib stream of zeros that would inflate to the whole picture."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    stream = zlib.compressobj(9)
    body = stream.compress(b"\0" * (1 << 20)) + stream.flush()
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(document.cookie)</script></svg>'
)
HTML = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/worker/me')</script></body></html>"


def test_an_image_bomb_is_refused_from_its_header_before_any_pixel_is_decoded():
    bomb = png_bomb()
    assert len(bomb) < 5000
    with pytest.raises(ImageRefused, match="too many pixels|at most"):
        sniff(bomb)
    with pytest.raises(ImageRefused):
        decode(bomb)
    # Within Pillow's own limit but above ours: refused by our cap, with the numbers.
    with pytest.raises(ImageRefused, match="3000×3000 pixels"):
        sniff(png_bomb(3000, 3000))


def test_a_truncated_image_passes_the_header_check_and_is_refused_when_decoded():
    for whole, media_type in (
        (png(400, 300, "red"), "image/png"),
        (jpeg(400, 300, quality=95), "image/jpeg"),
    ):
        cut = whole[: len(whole) // 2]
        assert sniff(cut, media_type).width == 400  # the header is intact
        with pytest.raises(ImageRefused, match="does not decode"):
            decode(cut, media_type)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (SVG, "an SVG document"),
        (HTML, "HTML or other markup"),
        (b"GIF89a" + b"\0" * 20, "a GIF"),
        (b"\x89PNG\r\n\x1a\n" + HTML, "header does not parse"),
    ],
)
def test_markup_or_other_formats_dressed_as_an_image_are_refused(data, what):
    with pytest.raises(ImageRefused, match=what):
        sniff(data, "image/png")


def test_the_declared_type_must_be_the_files_own():
    with pytest.raises(ImageRefused, match="is image/png but is declared as image/jpeg"):
        sniff(png(), "image/jpeg")


def test_a_reencode_keeps_no_metadata():
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker-Secret"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "green").save(out, "JPEG", exif=exif, comment=b"owner: alice")
    tagged = out.getvalue()
    assert b"CameraMaker-Secret" in tagged and b"alice" in tagged
    info, clean = reencode(tagged, "image/jpeg")
    assert b"CameraMaker-Secret" not in clean and b"alice" not in clean and b"Exif" not in clean
    assert not Image.open(io.BytesIO(clean)).getexif()
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "alice@example.org")
    tagged_png = png(pnginfo=text, icc_profile=b"\0" * 128)
    assert b"alice@example.org" in tagged_png
    _, clean_png = reencode(tagged_png, "image/png")
    assert b"alice@example.org" not in clean_png and b"iCCP" not in clean_png
    assert (info.width, info.height) == (64, 48)


def test_base64_is_strict_and_bounded():
    assert b64decode(b64encode(b"\x89PNG")) == b"\x89PNG"
    with pytest.raises(ImageRefused, match="not valid base64"):
        b64decode("abc$")
    with pytest.raises(ImageRefused, match="characters"):
        b64decode("A" * (4 * (MAX_IMAGE_BYTES // 3 + 2)))


def _image(data: bytes, media_type: str = "image/png", **fields: object) -> dict:
    info = sniff(data)
    return {
        "kind": "image",
        "media_type": media_type,
        "data": b64encode(data),
        "width": info.width,
        "height": info.height,
        **fields,
    }


def test_the_protocol_refuses_hostile_images_naming_the_field():
    def request(content: dict) -> dict:
        good = {"kind": "text", "text": "x"}
        return {
            "prompt": "p",
            "criteria": [{"type": "ranking"}],
            "expire_at": (utcnow() + timedelta(hours=1)).isoformat(),
            "completions": [
                {"completion_id": "a", "model": "m", "content": content},
                {"completion_id": "b", "model": "m", "content": good},
            ],
        }

    ok = FeedbackRequest.model_validate(request(_image(png())))
    assert isinstance(ok.completions[0].content, ImageContent)
    assert ok.completions[0].content.image_bytes() == png()
    bad = {
        "bomb": {**_image(png()), "data": b64encode(png_bomb())},
        "svg": {**_image(png()), "data": b64encode(SVG)},
        "html": {**_image(png()), "media_type": "image/jpeg", "data": b64encode(HTML)},
        "size lie": {**_image(png()), "width": 1024},
        "type lie": {**_image(png()), "media_type": "image/webp"},
        "svg type": {**_image(png()), "media_type": "image/svg+xml"},
    }
    for name, content in bad.items():
        with pytest.raises(ValidationError) as exc:
            FeedbackRequest.model_validate(request(content))
        assert any(e["loc"][:3] == ("completions", 0, "content") for e in exc.value.errors()), name


def test_the_images_of_one_request_are_bounded_together():
    noise = Image.frombytes("RGB", (200, 200), random.Random(1).randbytes(200 * 200 * 3))
    out = io.BytesIO()
    noise.save(out, "PNG")
    big = out.getvalue()
    assert 100_000 < len(big) < MAX_IMAGE_BYTES
    n = MAX_REQUEST_IMAGE_BYTES // len(big) + 1
    completions = [
        Completion(completion_id=f"c{i}", model="m", content=ImageContent.model_validate(_image(big)))
        for i in range(n)
    ]
    with pytest.raises(ValidationError, match="images hold"):
        FeedbackRequest(
            prompt="p",
            criteria=[{"type": "ranking"}],
            completions=completions,
            expire_at=utcnow() + timedelta(hours=1),
        )
