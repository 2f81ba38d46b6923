"""The ``procedural`` backend: offline, deterministic interactive canvas scenes.

Every completion is the same scene engine (one canvas, one animation loop, one table each
of outlines, placements, movements and behaviours) configured by a small ``scene`` object.
Completions of one task therefore have the same structure and nearly the same size
whatever their deviation; what differs is values, and those are written in forms that
differ from the instruction's words and from completion to completion:

- colours named in the instruction appear as a slightly shifted shade, written as hex,
  ``rgb()`` or ``hsl()``;
- counts appear as arithmetic (``3 * 4 + 1``), sizes as a fraction of the window,
  speeds as seconds per cycle;
- shapes, layouts, motions and interactions appear as an index into tables whose order
  is shuffled for every completion, so an index means nothing without running the code.
"""

from __future__ import annotations

import colorsys
import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from commons.protocol import CodeFile
from dojo.synthetic.backend import GeneratedCompletion, Instruction, TaskBudget
from dojo.synthetic.spec import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    SIZES,
    SPEEDS,
    SceneSpec,
    describe,
    deviate,
    sample_spec,
)

MODEL_LABEL = "dojo-procedural-1"

# One JavaScript function per layout: (index, count, width, height) -> [x, y].
_PLACEMENTS = {
    "grid": """function (i, n, w, h) {
    const cols = Math.ceil(Math.sqrt(n * w / h));
    const rows = Math.ceil(n / cols);
    return [w * ((i % cols) + 0.5) / cols, h * (Math.floor(i / cols) + 0.5) / rows];
  }""",
    "ring": """function (i, n, w, h) {
    const angle = 2 * Math.PI * i / n - Math.PI / 2;
    const reach = 0.36 * Math.min(w, h);
    return [w / 2 + reach * Math.cos(angle), h / 2 + reach * Math.sin(angle)];
  }""",
    "row": """function (i, n, w, h) {
    return [w * (i + 0.5) / n, h / 2];
  }""",
    "spiral": """function (i, n, w, h) {
    const angle = i * 2.39996;
    const reach = 0.42 * Math.min(w, h) * Math.sqrt((i + 0.5) / n);
    return [w / 2 + reach * Math.cos(angle), h / 2 + reach * Math.sin(angle)];
  }""",
    "scatter": """function (i, n, w, h) {
    return [w * (0.1 + 0.8 * noise(2 * i + 1)), h * (0.1 + 0.8 * noise(2 * i + 2))];
  }""",
    "wave": """function (i, n, w, h) {
    const x = w * (i + 0.5) / n;
    return [x, h / 2 + 0.25 * h * Math.sin(2 * Math.PI * x / w)];
  }""",
}

# One function per motion: (seconds, phase, radius) -> [dx, dy, scale, angle, alpha].
_MOVEMENTS = {
    "spin": """function (t, p, r) {
    return [0, 0, 1, 2 * Math.PI * t / scene.period, 1];
  }""",
    "pulse": """function (t, p, r) {
    return [0, 0, 1 + 0.35 * Math.sin(2 * Math.PI * (t / scene.period + p)), 0, 1];
  }""",
    "orbit": """function (t, p, r) {
    const angle = 2 * Math.PI * (t / scene.period + p);
    return [1.2 * r * Math.cos(angle), 1.2 * r * Math.sin(angle), 1, 0, 1];
  }""",
    "bounce": """function (t, p, r) {
    return [0, -1.6 * r * Math.abs(Math.sin(Math.PI * (t / scene.period + p))), 1, 0, 1];
  }""",
    "sway": """function (t, p, r) {
    return [2 * r * Math.sin(2 * Math.PI * (t / scene.period + p)), 0, 1, 0, 1];
  }""",
    "fade": """function (t, p, r) {
    return [0, 0, 1, 0, 0.55 + 0.45 * Math.cos(2 * Math.PI * (t / scene.period + p))];
  }""",
}

# One entry per interaction, each with the same five fields.
_BEHAVIOURS = {
    "toggle": """{
    grow: 1,
    down: function (x, y) {
      const item = pick(x, y);
      if (item) {
        item.hot = !item.hot;
      }
    },
    move: null,
    up: null,
    key: null,
  }""",
    "hover": """{
    grow: 1.35,
    down: null,
    move: function (x, y) {
      const item = pick(x, y);
      items.forEach(function (other) {
        other.hot = other === item;
      });
    },
    up: null,
    key: null,
  }""",
    "drag": """{
    grow: 1,
    down: function (x, y) {
      held = pick(x, y);
      if (held) {
        held.hot = true;
      }
    },
    move: function (x, y) {
      if (held) {
        held.fx = x / width;
        held.fy = y / height;
      }
    },
    up: function () {
      if (held) {
        held.hot = false;
      }
      held = null;
    },
    key: null,
  }""",
    "pause": """{
    grow: 1,
    down: null,
    move: null,
    up: null,
    key: function (key) {
      if (key === ' ') {
        paused = !paused;
        items.forEach(function (item) {
          item.hot = paused;
        });
      }
    },
  }""",
    "add": """{
    grow: 1,
    down: function (x, y) {
      if (!pick(x, y)) {
        items.push(spawn(items.length, x / width, y / height, true));
      }
    },
    move: null,
    up: null,
    key: null,
  }""",
    "nearest": """{
    grow: 1,
    down: null,
    move: function (x, y) {
      let best = null;
      let gap = Infinity;
      items.forEach(function (item) {
        const d = Math.hypot(x - item.px, y - item.py);
        if (d < gap) {
          gap = d;
          best = item;
        }
      });
      items.forEach(function (item) {
        item.hot = item === best;
      });
    },
    up: null,
    key: null,
  }""",
}

_ENGINE = """'use strict';

// Everything the scene shows is set here.
const scene = {
@SCENE@
};

// Outlines: [points, inner radius (fraction of outer), rotation]; a regular polygon is a star
// whose inner points lie on its edges.
const outlines = [
@OUTLINES@
];

// Where item i of n sits in a w x h window.
const placements = [
@PLACEMENTS@
];

// How an item moves: [dx, dy, scale, angle, alpha] at time t (seconds) for phase p.
const movements = [
@MOVEMENTS@
];

// What the pointer and keyboard do.
const behaviours = [
@BEHAVIOURS@
];

const canvas = document.getElementById('@CANVAS@');
const ctx = canvas.getContext('2d');
const items = [];
let width = 0;
let height = 0;
let clock = 0;
let last = null;
let paused = false;
let held = null;

// A repeatable pseudo-random number in [0, 1) for k, so positions survive a reload.
function noise(k) {
  const s = Math.sin(k * 12.9898 + scene.seed * 78.233) * 43758.5453;
  return s - Math.floor(s);
}

function spawn(slot, fx, fy, hot) {
  return { slot: slot, fx: fx, fy: fy, hot: hot, px: 0, py: 0, pr: 0 };
}

function resize() {
  const ratio = window.devicePixelRatio || 1;
  width = window.innerWidth;
  height = window.innerHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = width + 'px';
  canvas.style.height = height + 'px';
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
}

function trace(radius) {
  const outline = outlines[scene.outline];
  ctx.beginPath();
  for (let k = 0; k < 2 * outline[0]; k += 1) {
    const angle = outline[2] + Math.PI * k / outline[0];
    const reach = k % 2 === 0 ? radius : radius * outline[1];
    ctx.lineTo(reach * Math.cos(angle), reach * Math.sin(angle));
  }
  ctx.closePath();
}

function draw() {
  const mode = behaviours[scene.behaviour];
  const radius = scene.radius * Math.min(width, height);
  ctx.fillStyle = scene.backdrop;
  ctx.fillRect(0, 0, width, height);
  items.forEach(function (item, index) {
    const home = item.fx === null
      ? placements[scene.placement](item.slot, scene.count, width, height)
      : [item.fx * width, item.fy * height];
    const pose = movements[scene.movement](clock / 1000, (index % scene.count) / scene.count, radius);
    item.px = home[0] + pose[0];
    item.py = home[1] + pose[1];
    item.pr = radius * pose[2] * (item.hot ? mode.grow : 1);
    ctx.save();
    ctx.globalAlpha = pose[4];
    ctx.translate(item.px, item.py);
    ctx.rotate(pose[3]);
    trace(item.pr);
    ctx.fillStyle = item.hot ? scene.accent : scene.fill;
    ctx.fill();
    ctx.restore();
  });
}

function frame(now) {
  if (last !== null && !paused) {
    clock += now - last;
  }
  last = now;
  draw();
  window.requestAnimationFrame(frame);
}

// The topmost item under (x, y), or null.
function pick(x, y) {
  for (let k = items.length - 1; k >= 0; k -= 1) {
    const item = items[k];
    if (Math.hypot(x - item.px, y - item.py) <= 1.2 * Math.max(item.pr, 6)) {
      return item;
    }
  }
  return null;
}

function handle(name) {
  return function (event) {
    const box = canvas.getBoundingClientRect();
    const act = behaviours[scene.behaviour][name];
    if (act) {
      act(event.clientX - box.left, event.clientY - box.top);
    }
  };
}

for (let i = 0; i < scene.count; i += 1) {
  items.push(spawn(i, null, null, false));
}
canvas.addEventListener('pointerdown', handle('down'));
canvas.addEventListener('pointermove', handle('move'));
window.addEventListener('pointerup', handle('up'));
window.addEventListener('keydown', function (event) {
  const act = behaviours[scene.behaviour].key;
  if (act) {
    if (event.key === ' ') {
      event.preventDefault();
    }
    act(event.key);
  }
});
window.addEventListener('resize', resize);
document.body.style.background = scene.backdrop;
resize();
window.requestAnimationFrame(frame);
"""

_CSS = """html,
body {
  margin: 0;
  height: 100%;
  overflow: hidden;
}

canvas {
  display: block;
  cursor: pointer;
  touch-action: none;
}
"""

_TITLES = ("Scene", "Canvas scene", "Interactive scene", "Animation", "Visualisation", "Shapes")
_CANVAS_IDS = ("stage", "scene", "view", "board", "canvas", "art")
_JS_NAMES = ("main.js", "app.js", "scene.js", "script.js", "index.js")
_CSS_NAMES = ("style.css", "styles.css", "main.css", "app.css")


@dataclass(frozen=True)
class FileLayout:
    """How one task's completions are split into files (the same for all of them)."""

    kind: str  # "inline": one index.html; "script": html + js; "split": html + css + js
    js_name: str
    css_name: str


def _shade(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    # A nearby shade, not the colour's textbook value: looking up "coral" finds nothing.
    return tuple(max(0, min(255, c + rng.randint(-10, 10))) for c in rgb)  # type: ignore[return-value]


def _colour_literal(rgb: tuple[int, int, int], rng: random.Random) -> str:
    # Each form has one width whatever the colour (numbers padded with spaces, which CSS
    # allows), so a completion's length says nothing about which colour it draws.
    r, g, b = _shade(rgb, rng)
    form = rng.randrange(3)
    if form == 0:
        return f"'#{r:02x}{g:02x}{b:02x}'"
    if form == 1:
        return f"'rgb({r:3d}, {g:3d}, {b:3d})'"
    h, light, s = colorsys.rgb_to_hls(r / 255, g / 255, b / 255)
    return f"'hsl({round(h * 360) % 360:3d}, {round(s * 100):3d}%, {round(light * 100):3d}%)'"


def _count_expression(n: int, rng: random.Random) -> str:
    """``n`` as ``a * b + c`` or ``a * b - c`` with single digits: never its own digits,
    and always the same width."""
    return rng.choice(_count_forms(n))


@functools.cache
def _count_forms(n: int) -> tuple[str, ...]:
    forms: list[str] = []
    for a in range(2, 10):
        for b in range(2, 10):
            c = n - a * b
            if 1 <= c <= 9:
                forms.append(f"{a} * {b} + {c}")
            elif 1 <= -c <= 9:
                forms.append(f"{a} * {b} - {-c}")
    return tuple(forms)


def _index_table(entries: dict[str, str], chosen: str, rng: random.Random) -> tuple[str, int]:
    names = list(entries)
    rng.shuffle(names)
    # A blank line between entries: the obfuscator drops blank lines, and caches its work
    # by blocks of lines between them, so each entry is met again whatever the order.
    body = ",\n\n".join(f"  {entries[name]}" for name in names) + ","
    return body, names.index(chosen)


def render_scene(spec: SceneSpec, layout: FileLayout, rng: random.Random) -> list[CodeFile]:
    """The files of one completion drawing ``spec``; ``rng`` picks the value forms and table orders."""
    outlines = {name: f"[{p}, {inner}, {turn}]" for name, (p, inner, turn) in SHAPES.items()}
    outline_body, outline_index = _index_table(outlines, spec.shape, rng)
    placement_body, placement_index = _index_table(_PLACEMENTS, spec.layout, rng)
    movement_body, movement_index = _index_table(_MOVEMENTS, spec.motion, rng)
    behaviour_body, behaviour_index = _index_table(_BEHAVIOURS, spec.interaction, rng)
    entries = [
        ("count", _count_expression(spec.count, rng)),
        ("outline", str(outline_index)),
        ("radius", f"{rng.uniform(*SIZES[spec.size]):.3f}"),
        ("fill", _colour_literal(COLOURS[spec.fill], rng)),
        ("accent", _colour_literal(COLOURS[spec.accent], rng)),
        ("backdrop", _colour_literal(BACKGROUNDS[spec.background], rng)),
        ("placement", str(placement_index)),
        ("movement", str(movement_index)),
        ("period", f"{rng.uniform(*SPEEDS[spec.speed]):.2f}"),
        ("behaviour", str(behaviour_index)),
        ("seed", f"{rng.uniform(0.1, 0.99):.3f}"),
    ]
    rng.shuffle(entries)
    canvas_id = rng.choice(_CANVAS_IDS)
    script = (
        _ENGINE.replace("@SCENE@", "\n".join(f"  {key}: {value}," for key, value in entries))
        .replace("@OUTLINES@", outline_body)
        .replace("@PLACEMENTS@", placement_body)
        .replace("@MOVEMENTS@", movement_body)
        .replace("@BEHAVIOURS@", behaviour_body)
        .replace("@CANVAS@", canvas_id)
    )
    title = rng.choice(_TITLES)
    if layout.kind == "split":
        style_tag = f'  <link rel="stylesheet" href="{layout.css_name}">'
    else:
        style_tag = "  <style>\n" + _indent(_CSS, 4) + "  </style>"
    if layout.kind == "inline":
        script_tag = "  <script>\n" + _indent(script, 4) + "  </script>"
    else:
        script_tag = f'  <script src="{layout.js_name}"></script>'
    html = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"  <title>{title}</title>\n{style_tag}\n</head>\n<body>\n"
        f'  <canvas id="{canvas_id}"></canvas>\n{script_tag}\n</body>\n</html>\n'
    )
    files = [CodeFile(filename="index.html", content=html, language="html")]
    if layout.kind == "split":
        files.append(CodeFile(filename=layout.css_name, content=_CSS, language="css"))
    if layout.kind != "inline":
        files.append(CodeFile(filename=layout.js_name, content=script, language="javascript"))
    return files


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


class ProceduralBackend:
    """Instructions, variants and completions from the scene grammar; no network, no model.

    Everything it produces is a function of the ``rng`` it is handed, so a pipeline seeded
    the same way produces the same tasks.
    """

    name = "procedural"

    async def instruct(self, rng: random.Random, examples: Sequence[str], budget: TaskBudget) -> Instruction:
        spec = sample_spec(rng)
        layout = FileLayout(
            kind=rng.choice(("inline", "script", "split")),
            js_name=rng.choice(_JS_NAMES),
            css_name=rng.choice(_CSS_NAMES),
        )
        return Instruction(text=describe(spec, rng), payload=spec, style=layout)

    async def augment(
        self, original: Instruction, levels: int, rng: random.Random, budget: TaskBudget
    ) -> list[Instruction]:
        variants = deviate(original.payload, levels, rng)
        return [
            Instruction(text=describe(spec, rng), deviation=k, payload=spec, style=original.style)
            for k, spec in enumerate(variants, start=1)
        ]

    async def generate(
        self, instruction: Instruction, rng: random.Random, budget: TaskBudget, feedback: str | None = None
    ) -> GeneratedCompletion:
        return GeneratedCompletion(
            files=render_scene(instruction.payload, instruction.style, rng), model=MODEL_LABEL
        )

    async def aclose(self) -> None:
        return None
