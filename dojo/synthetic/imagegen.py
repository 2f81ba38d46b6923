"""Image tasks: scenes of coloured shapes, drawn offline, and a checker that reads them back.

As prompt-alignment benchmarks (GenEval) check a picture against its prompt object by object,
a :class:`Scene` is a few **groups** of objects, each with a colour, a shape, a count and a
region of the picture (a quadrant), on a background. The instruction names all of it
(:func:`describe`); deviation ``k`` is the scene with ``k`` edits (:func:`deviate`), each of
one attribute: a group's count, a group's shape, a group moved to a free quadrant, or the
colours of two groups swapped (which object is which colour, GenEval's *colour attribution*).
No edit brings in a colour the instruction does not name, and every shape is drawn with the
same area, so the colours' shares of the picture move only with the counts, up or down at
random.

:func:`scene_distance` is the least number of such edits between two scenes;
:func:`read_scene` recovers a scene from the pixels (each palette colour's connected
components: their number, their shape by how much of their bounding box they fill, the
quadrant of their centre). The pipeline keeps an image only when the scene read back from
the file miners get is exactly ``k`` edits from the instruction's, so the ground truth holds
for the picture as sent, after obfuscation.
"""

from __future__ import annotations

import io
import itertools
import math
import random
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

SHAPES = ("circle", "square", "triangle", "star")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "blue": (31, 90, 200),
    "green": (34, 150, 60),
    "yellow": (240, 200, 20),
    "purple": (130, 60, 170),
    "orange": (245, 125, 20),
    "black": (25, 25, 25),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250),
    "light grey": (205, 205, 205),
    "cream": (246, 234, 206),
    "pale blue": (205, 225, 245),
}
REGIONS = ("top left", "top right", "bottom left", "bottom right")
COUNT_RANGE = (1, 6)
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
# Every shape covers this share of the picture's area, whatever its outline.
AREA_SHARE = 0.0052
STAR_INNER = 0.4


@dataclass(frozen=True)
class Group:
    colour: str
    shape: str
    count: int
    region: str


@dataclass(frozen=True)
class Scene:
    groups: tuple[Group, ...]
    background: str

    def colours(self) -> list[str]:
        return [g.colour for g in self.groups]


def sample_scene(rng: random.Random, groups: int = 2) -> Scene:
    colours = rng.sample(tuple(COLOURS), groups)
    regions = rng.sample(REGIONS, groups)
    return Scene(
        groups=tuple(
            Group(colour=c, shape=rng.choice(SHAPES), count=rng.randint(*COUNT_RANGE), region=r)
            for c, r in zip(colours, regions, strict=True)
        ),
        background=rng.choice(tuple(BACKGROUNDS)),
    )


def _edits(scene: Scene, rng: random.Random) -> list[Scene]:
    """Every scene one edit away, in random order."""
    out: list[Scene] = []
    used_regions = {g.region for g in scene.groups}
    for i, g in enumerate(scene.groups):
        for count in range(COUNT_RANGE[0], COUNT_RANGE[1] + 1):
            if count != g.count:
                out.append(_with_group(scene, i, replace(g, count=count)))
        for shape in SHAPES:
            if shape != g.shape:
                out.append(_with_group(scene, i, replace(g, shape=shape)))
        for region in REGIONS:
            if region not in used_regions:
                out.append(_with_group(scene, i, replace(g, region=region)))
    for i, j in itertools.combinations(range(len(scene.groups)), 2):
        a, b = scene.groups[i], scene.groups[j]
        swapped = _with_group(scene, i, replace(a, colour=b.colour))
        out.append(_with_group(swapped, j, replace(b, colour=a.colour)))
    rng.shuffle(out)
    return out


def _with_group(scene: Scene, i: int, group: Group) -> Scene:
    groups = list(scene.groups)
    groups[i] = group
    return replace(scene, groups=tuple(groups))


def deviate(scene: Scene, levels: int, rng: random.Random) -> list[Scene]:
    """``levels`` scenes; scene ``k`` (1-based) is exactly ``k`` edits from ``scene`` and one
    edit from scene ``k - 1``."""
    # Depth first: a greedy walk can reach a scene from which no edit goes further away.
    budget = [2000]

    def walk(path: list[Scene]) -> list[Scene] | None:
        if len(path) == levels + 1:
            return path
        for candidate in _edits(path[-1], rng):
            budget[0] -= 1
            if budget[0] < 0:
                return None
            if scene_distance(candidate, scene) == len(path):
                found = walk([*path, candidate])
                if found is not None:
                    return found
        return None

    chain = walk([scene])
    if chain is None:
        raise ValueError(f"no chain of {levels} edits from {scene}")
    return chain[1:]


def scene_distance(found: Scene, target: Scene) -> int:
    """The least number of edits (count, shape, quadrant, a swap of two groups' colours) that
    turns ``target`` into ``found``; a large number when their colours or group counts differ."""
    if sorted(found.colours()) != sorted(target.colours()) or found.background != target.background:
        return 1000
    by_colour = {g.colour: g for g in found.groups}
    best = 1000
    targets = target.groups
    for perm in itertools.permutations(range(len(targets))):
        # Group i of the target is meant to be the found group that has the colour of target
        # group perm[i]: the colours were permuted by perm, at (n - cycles) swaps.
        cost = len(targets) - _cycles(perm)
        for i, p in enumerate(perm):
            t, f = targets[i], by_colour[targets[p].colour]
            cost += (t.shape != f.shape) + (t.count != f.count) + (t.region != f.region)
        best = min(best, cost)
    return best


def _cycles(perm: tuple[int, ...]) -> int:
    seen: set[int] = set()
    cycles = 0
    for start in range(len(perm)):
        if start not in seen:
            cycles += 1
            i = start
            while i not in seen:
                seen.add(i)
                i = perm[i]
    return cycles


# --- words ------------------------------------------------------------------------------------

_REGION_WORDS = {
    "top left": ("in the top left", "in the top-left corner", "at the upper left"),
    "top right": ("in the top right", "in the top-right corner", "at the upper right"),
    "bottom left": ("in the bottom left", "in the bottom-left corner", "at the lower left"),
    "bottom right": ("in the bottom right", "in the bottom-right corner", "at the lower right"),
}
_OPENINGS = (
    "A picture of",
    "An image showing",
    "Draw",
    "Make an image with",
    "A flat illustration of",
    "Render",
    "Show",
)
_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars"}


def _group_words(g: Group, rng: random.Random) -> str:
    count = NUMBER_WORDS[g.count] if rng.random() < 0.8 else str(g.count)
    noun = g.shape if g.count == 1 else _PLURAL[g.shape]
    if g.count == 1 and count == "one":
        count = rng.choice(("one", "a single", "a"))
    return f"{count} {g.colour} {noun} {rng.choice(_REGION_WORDS[g.region])}"


def describe(scene: Scene, rng: random.Random) -> str:
    groups = [_group_words(g, rng) for g in scene.groups]
    rng.shuffle(groups)
    listed = ", ".join(groups[:-1]) + " and " + groups[-1]
    background = rng.choice(
        (f"on a {scene.background} background", f"against a plain {scene.background} background")
    )
    closing = rng.choice(
        (
            "Flat colours, no outlines.",
            "Nothing else in the picture.",
            "Simple flat shapes only.",
            "Keep the shapes apart.",
            "",
        )
    )
    return f"{rng.choice(_OPENINGS)} {listed}, {background}. {closing}".strip()


# --- drawing -----------------------------------------------------------------------------------

_PALETTE_NAMES = (*BACKGROUNDS, *COLOURS)
_PALETTE = [*BACKGROUNDS.values(), *COLOURS.values()]
_FLAT_PALETTE = [c for rgb in _PALETTE for c in rgb] + list(_PALETTE[-1]) * (256 - len(_PALETTE))


def _outline(shape: str, cx: float, cy: float, area: float, angle: float) -> list[tuple[float, float]] | None:
    if shape == "circle":
        return None
    if shape == "square":
        half = math.sqrt(area) / 2
        return [
            (cx - half, cy - half),
            (cx + half, cy - half),
            (cx + half, cy + half),
            (cx - half, cy + half),
        ]
    if shape == "triangle":
        side = math.sqrt(4 * area / math.sqrt(3))
        h = side * math.sqrt(3) / 2
        return [(cx, cy - 2 * h / 3), (cx + side / 2, cy + h / 3), (cx - side / 2, cy + h / 3)]
    # A five-pointed star of this area: 5 R r sin(36°) with r = STAR_INNER R.
    outer = math.sqrt(area / (5 * STAR_INNER * math.sin(math.pi / 5)))
    points = []
    for k in range(10):
        reach = outer if k % 2 == 0 else outer * STAR_INNER
        a = -math.pi / 2 + angle + math.pi * k / 5
        points.append((cx + reach * math.cos(a), cy + reach * math.sin(a)))
    return points


def _extent(shape: str, area: float) -> float:
    """Half the width of the shape's bounding box, at most."""
    if shape == "circle":
        return math.sqrt(area / math.pi)
    if shape == "square":
        return math.sqrt(area) / 2
    if shape == "triangle":
        return math.sqrt(4 * area / math.sqrt(3)) / 2 + 1
    return math.sqrt(area / (5 * STAR_INNER * math.sin(math.pi / 5)))


_LAYOUTS = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (2, 2), 5: (3, 2), 6: (3, 2)}


def render(scene: Scene, size: int, rng: random.Random) -> Image.Image:
    """The scene at ``size``×``size`` pixels; where each object sits in its quadrant is drawn
    from ``rng``."""
    # Drawn in palette mode (one byte a pixel): every colour is one of the palette's, and the
    # PNG writes four times faster than an RGB one.
    image = Image.new("P", (size, size), _PALETTE_NAMES.index(scene.background))
    image.putpalette(_FLAT_PALETTE)
    draw = ImageDraw.Draw(image)
    area = AREA_SHARE * size * size
    half = size / 2
    for g in scene.groups:
        x0 = 0.0 if "left" in g.region else half
        y0 = 0.0 if "top" in g.region else half
        cols, rows = _LAYOUTS[g.count]
        if rng.random() < 0.5:
            cols, rows = rows, cols
        cells = rng.sample(range(cols * rows), g.count)
        reach = _extent(g.shape, area)
        margin = half * 0.06
        cw, ch = (half - 2 * margin) / cols, (half - 2 * margin) / rows
        fill = _PALETTE_NAMES.index(g.colour)
        for cell in cells:
            c, r = cell % cols, cell // cols
            slack_x = max(0.0, cw / 2 - reach - 2)
            slack_y = max(0.0, ch / 2 - reach - 2)
            cx = x0 + margin + cw * (c + 0.5) + rng.uniform(-slack_x, slack_x)
            cy = y0 + margin + ch * (r + 0.5) + rng.uniform(-slack_y, slack_y)
            points = _outline(g.shape, cx, cy, area, 0.0)
            if points is None:
                radius = math.sqrt(area / math.pi)
                draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
            else:
                draw.polygon(points, fill=fill)
    return image


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=3)
    return out.getvalue()


# --- reading a picture back -----------------------------------------------------------------------

_READ_SIDE = 256


def _palette_image() -> Image.Image:
    palette = Image.new("P", (1, 1))
    palette.putpalette(_FLAT_PALETTE)
    return palette


_PALETTE_IMAGE = _palette_image()


def _shape_of(fill_ratio: float) -> str:
    if fill_ratio > 0.9:
        return "square"
    if fill_ratio > 0.64:
        return "circle"
    if fill_ratio > 0.42:
        return "triangle"
    return "star"


def read_scene(image: Image.Image, background: str) -> Scene:
    """The scene the pixels show, as :func:`render` draws scenes: each palette colour's objects,
    their number, their most common shape and the quadrant of their mean centre. A colour
    with no object of at least a tenth of the expected area is absent."""
    small = image if image.mode == "RGB" else image.convert("RGB")
    if small.width > _READ_SIDE:
        factor = small.width / _READ_SIDE
        small = small.resize((_READ_SIDE, max(1, round(small.height / factor))), Image.Resampling.NEAREST)
    labels = np.asarray(small.quantize(palette=_PALETTE_IMAGE, dither=Image.Dither.NONE))
    side_w, side_h = small.size
    expected = AREA_SHARE * side_w * side_h
    groups = []
    for index, name in enumerate(_PALETTE_NAMES):
        if name not in COLOURS:
            continue
        mask = labels == index
        if not mask.any():
            continue
        components, n = ndimage.label(mask)
        if n == 0:
            continue
        sizes = np.bincount(components.ravel(), minlength=n + 1)[1:]
        boxes = ndimage.find_objects(components)
        shapes, xs, ys = [], [], []
        for k, (box, area) in enumerate(zip(boxes, sizes, strict=True)):
            if box is None or area < expected * 0.25:
                continue
            ys_, xs_ = box
            h, w = ys_.stop - ys_.start, xs_.stop - xs_.start
            shapes.append(_shape_of(float(area) / (h * w)))
            cy, cx = ndimage.center_of_mass(components[box] == k + 1)
            xs.append(xs_.start + cx)
            ys.append(ys_.start + cy)
        if not shapes:
            continue
        shape = max(set(shapes), key=shapes.count)
        mx, my = float(np.mean(xs)), float(np.mean(ys))
        region = ("top" if my < side_h / 2 else "bottom") + " " + ("left" if mx < side_w / 2 else "right")
        groups.append(Group(colour=name, shape=shape, count=len(shapes), region=region))
    return Scene(groups=tuple(groups), background=background)


__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "REGIONS",
    "SHAPES",
    "Group",
    "Scene",
    "describe",
    "deviate",
    "png_bytes",
    "read_scene",
    "render",
    "sample_scene",
    "scene_distance",
]
