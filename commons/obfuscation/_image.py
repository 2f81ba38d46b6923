"""Obfuscation of images: the same picture to a person, a file nobody has seen before.

Each channel's levels are moved by a few steps (at most 3 of 255, below what an eye tells
apart on flat colour), and the pixels are written as a fresh JPEG at a quality drawn between
86 and 93: no byte of the file a miner gets matches a file generated, sent or published
before, so looking it up by file hash finds nothing, and nothing of the source's metadata
survives. Shapes, counts, colours and positions are unchanged (the synthetic pipeline reads
every obfuscated image back before it is used).
"""

from __future__ import annotations

import random

from PIL import Image

from commons.media import ImageInfo, decode, encode

MAX_SHIFT = 3


def obfuscate_image(data: bytes, rng: random.Random) -> tuple[ImageInfo, bytes]:
    """``data`` (PNG, JPEG or WebP) as a new JPEG that looks the same; its info and bytes."""
    _, image = decode(data)
    return obfuscate_pixels(image, rng)


def obfuscate_pixels(image: Image.Image, rng: random.Random) -> tuple[ImageInfo, bytes]:
    """A decoded image (RGB or RGBA) as a new JPEG that looks the same; its info and bytes."""
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    shifts = [rng.randint(-MAX_SHIFT, MAX_SHIFT) for _ in range(3)]
    if not any(shifts):
        shifts[rng.randrange(3)] = rng.choice((-1, 1))
    lut = [max(0, min(255, v + s)) for s in shifts for v in range(256)]
    moved = image.point(lut)
    out = encode(moved, "image/jpeg", quality=rng.randint(86, 93))
    return ImageInfo("image/jpeg", image.width, image.height), out
