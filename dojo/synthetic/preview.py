"""Tools for looking at generated tasks: JSONL samples and a side-by-side preview page.

- :func:`write_samples` generates ``n`` tasks in-process and writes one JSON task a line.
- :func:`write_preview` writes a static page: the instruction, and every completion
  rendered in its own frame, side by side; each completion's files are written beside it.
- :func:`bundle_html` turns a multi-file completion into one HTML document (linked
  stylesheets and scripts inlined) for an ``<iframe srcdoc>``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from commons.protocol import CodeFile, Content, DialogueContent, ImageContent
from commons.synthetic_api import SyntheticTask
from dojo.synthetic.backend import Backend
from dojo.synthetic.pipeline import PipelineOptions, SyntheticPipeline
from dojo.synthetic.store import SyntheticStore

_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']([^\"']+)[\"'][^>]*>", re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b([^>]*)\bsrc\s*=\s*[\"']([^\"']+)[\"']([^>]*)>\s*</script>", re.IGNORECASE)


def bundle_html(files: Sequence[CodeFile], entry: str = "index.html") -> str:
    """The entry document with the completion's own CSS and JS files inlined."""
    by_name = {f.filename: f.content for f in files}
    page = by_name.get(entry) or next((f.content for f in files if f.filename.endswith(".html")), "")

    def local(reference: str) -> str | None:
        return by_name.get(str(PurePosixPath(reference.removeprefix("./"))))

    def link(match: re.Match[str]) -> str:
        css = local(match.group(1))
        if css is None or "stylesheet" not in match.group(0).lower():
            return match.group(0)
        return f"<style>\n{css}</style>"

    def script(match: re.Match[str]) -> str:
        js = local(match.group(2))
        if js is None:
            return match.group(0)
        # "</script" inside the code would end the inline element early.
        code = js.replace("</script", "<\\/script")
        return f"<script{match.group(1)}{match.group(3)}>\n{code}</script>"

    return _SCRIPT.sub(script, _LINK.sub(link, page))


async def generate_tasks(
    n: int,
    *,
    seed: int | str | None,
    backend: Backend | None = None,
    options: PipelineOptions | None = None,
    kind: str | None = None,
) -> list[SyntheticTask]:
    """``n`` tasks of ``kind``, or of kinds drawn from ``options.mix``."""
    if backend is None:
        from dojo.synthetic.procedural import ProceduralBackend

        backend = ProceduralBackend()
    pipeline = SyntheticPipeline(backend, SyntheticStore(), seed=seed, options=options)
    try:
        return [await pipeline.generate_task(kind) for _ in range(n)]
    finally:
        await pipeline.aclose()


async def write_samples(
    n: int,
    out: Path,
    *,
    seed: int | str | None = None,
    backend: Backend | None = None,
    options: PipelineOptions | None = None,
) -> int:
    tasks = await generate_tasks(n, seed=seed, backend=backend, options=options)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for task in tasks:
            handle.write(task.model_dump_json() + "\n")
    return len(tasks)


def read_samples(path: Path) -> list[SyntheticTask]:
    return [SyntheticTask.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


def _content_card(n: int, content: Content, rank: int, model: str, cid: str) -> str:
    """A text, dialogue or image completion as a card of the preview page."""
    if isinstance(content, ImageContent):
        body = (
            f'<img src="data:{content.media_type};base64,{content.data}" alt="Completion {n}" '
            f'style="width:100%;height:auto">'
        )
    elif isinstance(content, DialogueContent):
        body = "".join(
            f"<p><b>{html.escape(t.role)}</b>: {html.escape(t.message)}</p>" for t in content.turns
        )
    else:
        body = f"<pre style='white-space:pre-wrap'>{html.escape(getattr(content, 'text', ''))}</pre>"
    return f"""<section>
  <h2>Completion {n}</h2>
  {body}
  <details><summary>ground truth</summary>rank {rank} · {html.escape(model)} · <code>{html.escape(cid)}</code></details>
</section>"""


def write_preview(task: SyntheticTask, out_dir: Path) -> Path:
    """``out_dir/index.html`` showing ``task``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cards = []
    for n, response in enumerate(task.responses, start=1):
        content = response.completion.content
        if content is not None:
            cards.append(
                _content_card(n, content, task.ground_truth[response.cid], response.model, response.cid)
            )
            continue
        folder = out_dir / f"completion-{n}"
        for file in response.completion.files or []:
            target = folder / PurePosixPath(file.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8")
        document = bundle_html(response.completion.files or [])
        cards.append(
            f"""<section>
  <h2>Completion {n}</h2>
  <iframe sandbox="allow-scripts" srcdoc="{html.escape(document, quote=True)}"></iframe>
  <p><a href="completion-{n}/index.html">open alone</a> · files: {", ".join(html.escape(f.filename) for f in response.completion.files or [])}</p>
  <details><summary>ground truth</summary>rank {task.ground_truth[response.cid]} · {html.escape(response.model)} · <code>{html.escape(response.cid)}</code></details>
</section>"""
        )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Synthetic task preview</title>
<style>
  body {{ font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem; background: #f4f4f6; color: #222; }}
  .prompt {{ max-width: 70rem; background: #fff; padding: 1rem 1.25rem; border-radius: 8px; }}
  .grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: 1rem; margin-top: 1rem; }}
  section {{ background: #fff; border-radius: 8px; padding: .75rem; }}
  iframe {{ width: 100%; height: 20rem; border: 1px solid #ccc; border-radius: 4px; background: #000; }}
  h2 {{ font-size: 1rem; margin: 0 0 .5rem; }}
</style>
</head>
<body>
<h1>Synthetic task</h1>
<div class="prompt">{html.escape(task.prompt)}</div>
<div class="grid">
{chr(10).join(cards)}
</div>
</body>
</html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
