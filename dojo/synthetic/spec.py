"""The procedural backend's grammar: specifications of interactive visualisations.

A :class:`SceneSpec` fixes every property a worker can check by looking at the page:
shape, count, size, fill colour, accent colour (the interaction's highlight), background,
layout, motion, speed and interaction. :func:`sample_spec` draws one from a random
combination of task seeds; :func:`describe` renders it to instruction text;
:func:`deviate` changes properties one at a time, so the variant at deviation ``k``
differs from the original in exactly ``k`` properties and answers it ``k`` steps worse.

A replacement value is drawn from the same pool as the original's, bar values too close
to it to be told apart at a glance (a neighbouring hue, a count within a third), so a
property's value says little about a completion's deviation.
"""

from __future__ import annotations

import colorsys
import random
from dataclasses import dataclass, fields, replace
from typing import Any

# name -> (points, inner radius as a fraction of the outer, rotation in radians). A regular
# polygon is drawn as a star whose inner vertices sit on its edges (inner = cos(pi/points)),
# so every shape goes through the same drawing code.
SHAPES: dict[str, tuple[int, float, float]] = {
    "circle": (40, 0.997, 0.0),
    "triangle": (3, 0.5, -1.5708),
    "square": (4, 0.7071, 0.7854),
    "pentagon": (5, 0.809, -1.5708),
    "hexagon": (6, 0.866, 0.0),
    "octagon": (8, 0.9239, 0.3927),
    "star": (5, 0.42, -1.5708),
}
PLURALS = {name: f"{name}s" for name in SHAPES}

# name -> RGB. Fill and accent colours are chosen so that they stand out on every background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 57, 70),
    "coral": (255, 127, 80),
    "orange": (244, 140, 40),
    "gold": (255, 195, 0),
    "lime green": (140, 220, 60),
    "emerald": (30, 170, 110),
    "turquoise": (64, 210, 200),
    "sky blue": (90, 175, 240),
    "royal blue": (65, 95, 225),
    "violet": (150, 90, 230),
    "magenta": (220, 50, 170),
    "pink": (250, 140, 190),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "midnight blue": (18, 24, 56),
    "charcoal": (40, 42, 46),
    "black": (6, 6, 8),
    "deep purple": (42, 16, 60),
    "dark green": (12, 44, 30),
    "slate grey": (62, 72, 86),
}
SIZES: dict[str, tuple[float, float]] = {
    "small": (0.022, 0.03),
    "medium": (0.042, 0.052),
    "large": (0.07, 0.085),
}
SPEEDS: dict[str, tuple[float, float]] = {"slowly": (6.0, 8.0), "steadily": (3.0, 4.2), "quickly": (0.9, 1.5)}
LAYOUTS = ("grid", "ring", "row", "spiral", "scatter", "wave")
MOTIONS = ("spin", "pulse", "orbit", "bounce", "sway", "fade")
INTERACTIONS = ("toggle", "hover", "drag", "pause", "add", "nearest")
COUNT_RANGE = (3, 24)

NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "twenty-one",
    "twenty-two",
    "twenty-three",
    "twenty-four",
]


@dataclass(frozen=True)
class SceneSpec:
    """Everything a rendered page shows; the unit the procedural backend augments."""

    shape: str
    count: int
    size: str
    fill: str
    accent: str
    background: str
    layout: str
    motion: str
    speed: str
    interaction: str


PROPERTIES = tuple(f.name for f in fields(SceneSpec))


def _hue_distance(a: str, b: str) -> float:
    ha = colorsys.rgb_to_hls(*(c / 255 for c in COLOURS[a]))[0]
    hb = colorsys.rgb_to_hls(*(c / 255 for c in COLOURS[b]))[0]
    d = abs(ha - hb)
    return min(d, 1 - d)


def _distinct_colours(a: str, b: str) -> bool:
    # Neighbouring hues (coral/orange, red/magenta) are hard to tell apart at a glance.
    return _hue_distance(a, b) >= 0.08


def _valid(spec: SceneSpec) -> bool:
    # A spinning circle looks still: the motion would be invisible to the worker.
    return _distinct_colours(spec.fill, spec.accent) and not (
        spec.shape == "circle" and spec.motion == "spin"
    )


def sample_spec(rng: random.Random) -> SceneSpec:
    """A random specification: one value drawn for each property (the task seeds)."""
    while True:
        spec = SceneSpec(
            shape=rng.choice(tuple(SHAPES)),
            count=rng.randint(*COUNT_RANGE),
            size=rng.choice(tuple(SIZES)),
            fill=rng.choice(tuple(COLOURS)),
            accent=rng.choice(tuple(COLOURS)),
            background=rng.choice(tuple(BACKGROUNDS)),
            layout=rng.choice(LAYOUTS),
            motion=rng.choice(MOTIONS),
            speed=rng.choice(tuple(SPEEDS)),
            interaction=rng.choice(INTERACTIONS),
        )
        if _valid(spec):
            return spec


def _alternatives(spec: SceneSpec, prop: str) -> list[object]:
    current = getattr(spec, prop)
    if prop == "count":
        # A count must change enough to be seen: at least a third, and at least two.
        lo, hi = COUNT_RANGE
        return [n for n in range(lo, hi + 1) if abs(n - current) >= max(2, current // 3)]
    pool: tuple[object, ...] = {
        "shape": tuple(SHAPES),
        "size": tuple(SIZES),
        "fill": tuple(COLOURS),
        "accent": tuple(COLOURS),
        "background": tuple(BACKGROUNDS),
        "layout": LAYOUTS,
        "motion": MOTIONS,
        "speed": tuple(SPEEDS),
        "interaction": INTERACTIONS,
    }[prop]
    options = [v for v in pool if v != current]
    if prop in ("fill", "accent"):
        options = [v for v in options if _distinct_colours(str(v), str(current))]
    return options


def _changed(spec: SceneSpec, prop: str, value: object) -> SceneSpec:
    """``spec`` with ``prop`` set to ``value``, one of the values ``_alternatives`` gives for it."""
    change: dict[str, Any] = {prop: value}  # the property is named at run time: its type too
    return replace(spec, **change)


def deviate(spec: SceneSpec, levels: int, rng: random.Random) -> list[SceneSpec]:
    """``levels`` variants; variant ``k`` (1-based) differs from ``spec`` in ``k`` properties.

    Each variant changes one more property than the previous one, keeping the earlier
    changes, so every step answers the original instruction strictly worse.
    """
    if not 0 <= levels <= len(PROPERTIES):
        raise ValueError(f"levels must be between 0 and {len(PROPERTIES)}, got {levels}")
    order = list(PROPERTIES)
    rng.shuffle(order)
    variants: list[SceneSpec] = []
    current = spec
    for prop in order:
        if len(variants) == levels:
            break
        options = [v for v in _alternatives(current, prop) if _valid(_changed(current, prop, v))]
        if not options:
            continue
        current = _changed(current, prop, rng.choice(options))
        variants.append(current)
    if len(variants) != levels:
        raise ValueError(f"could not build {levels} variants of {spec}")
    return variants


# --- instruction text ------------------------------------------------------------------

_LAYOUT_TEXT = {
    "grid": "arranged in a tidy grid",
    "ring": "evenly spaced around a circle in the middle of the screen",
    "row": "lined up in a single horizontal row across the middle",
    "spiral": "arranged in a sunflower-style spiral from the centre outwards",
    "scatter": "scattered at fixed random positions",
    "wave": "placed along one sine wave that crosses the screen",
}
_MOTION_TEXT = {
    "spin": "Each {one} spins {speed} about its own centre.",
    "pulse": "Each {one} {speed} grows and shrinks, like a heartbeat, out of step with its neighbours.",
    "orbit": "Each {one} {speed} circles a small loop around its place.",
    "bounce": "Each {one} bounces up and down {speed}, in a travelling wave.",
    "sway": "Each {one} sways from side to side {speed}.",
    "fade": "Each {one} {speed} fades out and back in, one after another.",
}
_INTERACTION_TEXT = {
    "toggle": "Clicking a {one} toggles its colour to {accent} and back.",
    "hover": "Hovering the mouse over a {one} enlarges it and tints it {accent}.",
    "drag": "The {many} can be dragged with the mouse; the one being dragged turns {accent}.",
    "pause": "Pressing the space bar pauses and resumes the animation; while paused every {one} turns {accent}.",
    "add": "Clicking empty space adds another {one} there, drawn in {accent}.",
    "nearest": "The {one} nearest the mouse pointer is highlighted in {accent}.",
}
_OPENINGS = (
    "Create an interactive web page with HTML, CSS and JavaScript.",
    "Build a small interactive visualisation for the browser (HTML, CSS, JavaScript).",
    "Write a self-contained interactive animation in HTML, CSS and JavaScript.",
    "Make an animated, interactive canvas scene in the browser using HTML, CSS and JavaScript.",
)
_CLOSINGS = (
    "The scene fills the whole window and keeps working when the window is resized.",
    "It should fill the browser window and adapt when the window is resized.",
    "Use the full window, and redraw correctly after a resize.",
)


def _count_text(n: int, rng: random.Random) -> str:
    return NUMBER_WORDS[n] if rng.random() < 0.7 else str(n)


def describe(spec: SceneSpec, rng: random.Random) -> str:
    """The instruction for ``spec``: every property in words, the phrasing drawn from ``rng``."""
    many = PLURALS[spec.shape]
    scene = (
        f"Draw {_count_text(spec.count, rng)} {spec.size} {spec.fill} {many} "
        f"{_LAYOUT_TEXT[spec.layout]} on a {spec.background} background."
    )
    motion = _MOTION_TEXT[spec.motion].format(one=spec.shape, speed=spec.speed)
    interaction = _INTERACTION_TEXT[spec.interaction].format(one=spec.shape, many=many, accent=spec.accent)
    sentences = [rng.choice(_OPENINGS), scene, motion, interaction]
    if rng.random() < 0.5:
        sentences[2], sentences[3] = sentences[3], sentences[2]
    sentences.append(rng.choice(_CLOSINGS))
    return " ".join(sentences)
