"""Images as tasks carry them: PNG, JPEG or WebP, bounded in bytes and pixels, checked before use.

Three levels of trust, from cheapest to safest:

- :func:`sniff` reads the first bytes and the header only (no pixel is decoded): the format
  from its magic number, never from what the sender says, and the dimensions. An SVG, an
  HTML page or anything else dressed up as an image is not one of the three formats and is
  refused; so is an image whose header declares more pixels than :data:`MAX_IMAGE_PIXELS`
  (an "image bomb": a few kilobytes that would decode to gigabytes), before any decoding.
- :func:`decode` does that, then decodes every pixel, so a truncated or corrupt file is
  refused too. Pillow's own decompression-bomb guard is bypassed only after our own cap
  has been checked.
- :func:`reencode` decodes and writes the pixels out again in a fresh file: no metadata
  (EXIF, XMP, ICC, text chunks, comments) survives, whatever the input carried.

Every failure is an :class:`ImageRefused` whose message says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image

MediaType = Literal["image/png", "image/jpeg", "image/webp"]
MEDIA_TYPES: tuple[MediaType, ...] = ("image/png", "image/jpeg", "image/webp")
# An image fits a worker platform's completion (512 KiB of JSON) once written in base64.
MAX_IMAGE_BYTES = 360 * 1024
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = 2048 * 2048
MAX_BASE64 = 4 * math.ceil(MAX_IMAGE_BYTES / 3)

_PIL_FORMATS: dict[str, MediaType] = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_SAVE_FORMATS: dict[MediaType, str] = {v: k for k, v in _PIL_FORMATS.items()}


class ImageRefused(ValueError):
    """The bytes are not an image this protocol accepts; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    media_type: MediaType
    width: int
    height: int


def magic_type(data: bytes) -> MediaType | None:
    """The format the file's own first bytes name, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _describe_other(data: bytes) -> str:
    head = data[:256].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
        return "an SVG document"
    if head.startswith((b"<!doctype", b"<html", b"<script", b"<")):
        return "HTML or other markup"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF"
    return "not a PNG, JPEG or WebP file"


def sniff(data: bytes, declared: str | None = None, *, max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    """Format and size from the header alone; refuses what :func:`decode` would refuse
    without decoding a pixel (all but truncated or corrupt pixel data). ``max_bytes`` is
    raised only for a file that is written anew before anyone gets it (a provider's)."""
    if len(data) > max_bytes:
        raise ImageRefused(f"the image holds {len(data)} bytes; at most {max_bytes} are accepted")
    media_type = magic_type(data)
    if media_type is None:
        raise ImageRefused(f"the data is {_describe_other(data)}; images must be PNG, JPEG or WebP")
    if declared is not None and declared != media_type:
        raise ImageRefused(f"the data is {media_type} but is declared as {declared}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_SAVE_FORMATS[media_type]]) as image:
                width, height = image.size
    except Image.DecompressionBombError as exc:
        raise ImageRefused(f"the image declares too many pixels ({exc})") from None
    except Image.DecompressionBombWarning as exc:
        raise ImageRefused(f"the image declares too many pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"the {media_type} header does not parse: {exc}") from None
    _check_size(width, height)
    return ImageInfo(media_type, width, height)


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageRefused(f"the image is {width}×{height} pixels")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageRefused(
            f"the image is {width}×{height} pixels; at most {MAX_IMAGE_SIDE} a side and "
            f"{MAX_IMAGE_PIXELS} pixels are accepted"
        )


def decode(
    data: bytes, declared: str | None = None, *, max_bytes: int = MAX_IMAGE_BYTES
) -> tuple[ImageInfo, Image.Image]:
    """The header checks of :func:`sniff`, then every pixel decoded (RGB or RGBA)."""
    info = sniff(data, declared, max_bytes=max_bytes)
    try:
        # The size was checked above, far below Pillow's own decompression-bomb limit.
        with Image.open(io.BytesIO(data), formats=[_SAVE_FORMATS[info.media_type]]) as image:
            image.load()
            converted = image.convert("RGBA" if _has_alpha(image) else "RGB")
            converted.info = {}
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"the {info.media_type} image does not decode: {exc}") from None
    if converted.size != (info.width, info.height):
        raise ImageRefused("the image decodes to another size than its header declares")
    return info, converted


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def encode(image: Image.Image, media_type: MediaType, quality: int = 90) -> bytes:
    """``image`` written as ``media_type`` with no metadata at all."""
    out = io.BytesIO()
    fmt = _SAVE_FORMATS[media_type]
    if media_type == "image/jpeg" and image.mode != "RGB":
        image = image.convert("RGB")
    if image.info:
        # Nothing of the source's info dict (EXIF, ICC, comments, text chunks) may ride
        # along, whatever a format's writer would copy from it.
        image = image.copy()
        image.info = {}
    if media_type == "image/png":
        image.save(out, fmt, compress_level=6)
    elif media_type == "image/jpeg":
        image.save(out, fmt, quality=quality)
    else:
        image.save(out, fmt, quality=quality, method=4)
    return out.getvalue()


def reencode(data: bytes, declared: str | None = None, quality: int = 90) -> tuple[ImageInfo, bytes]:
    """``data`` decoded and written again in its own format, without metadata."""
    info, image = decode(data, declared)
    return info, encode(image, info.media_type, quality)


def encode_within(image: Image.Image, budget: int, media_type: MediaType = "image/webp") -> bytes:
    """``image`` in ``media_type`` at the best quality whose file fits ``budget`` bytes
    (halving the size when even the lowest quality does not fit)."""
    for _ in range(4):
        for quality in (90, 80, 70, 55, 40):
            data = encode(image, media_type, quality)
            if len(data) <= budget:
                return data
            if media_type == "image/png":
                break
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)
    raise ImageRefused(f"the image does not fit {budget} bytes")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict base64 (no whitespace, no URL alphabet, padding required)."""
    if len(text) > MAX_BASE64:
        raise ImageRefused(f"the image's base64 holds {len(text)} characters; at most {MAX_BASE64}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRefused(f"the image data is not valid base64: {exc}") from None


__all__ = [
    "MAX_BASE64",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MEDIA_TYPES",
    "ImageInfo",
    "ImageRefused",
    "MediaType",
    "b64decode",
    "b64encode",
    "decode",
    "encode",
    "encode_within",
    "magic_type",
    "reencode",
    "sniff",
]
