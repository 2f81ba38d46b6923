"""The packages' layers: ``template`` (chain, transport, configuration) knows nothing of the
subnet's logic, ``commons`` (protocol, scoring, clients) nothing of the processes in ``dojo``.

Every import statement counts, including those inside functions, so that a lazy import
cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"template": ("commons", "dojo"), "commons": ("dojo",)}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path)
        if module.split(".", 1)[0] in FORBIDDEN[package]
    ]
    assert offending == []


def test_the_check_sees_an_offending_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dojo.platform import app\n    import commons.scoring\n")
    assert _imports(module) == [(2, "dojo.platform"), (3, "commons.scoring")]
