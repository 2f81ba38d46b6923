"""The packages' layers: ``template`` (chain, transport, configuration) knows nothing of the
subnet's logic, ``commons`` (protocol, scoring, clients) nothing of the processes in ``dojo``.
Within ``dojo`` the packages import each other one way (no cycle); in particular the export
reads the validator's database and the validator never imports the export, and the local
network's modules go ``net`` → ``view`` → ``state``.

Every import statement counts, including those inside functions, so that a lazy import
cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"template": ("commons", "dojo"), "commons": ("dojo",)}
# Within dojo: a module (file, or every file under a folder) and the modules it must not import.
ONE_WAY = {
    "dojo/validator": ("dojo.export",),
    "dojo/localnet/__init__.py": ("dojo.localnet",),
    "dojo/localnet/view.py": ("dojo.localnet.net",),
    "dojo/localnet/state.py": ("dojo.localnet.net", "dojo.localnet.view"),
    # The platform by role: http (routes) over services over storage; the modules at the
    # package's top, which every layer uses, import none of the three. Security's HTTP side
    # (CSRF, headers, body caps) is the routes' alone; credentials are every layer's.
    "dojo/platform/storage": ("dojo.platform.services", "dojo.platform.http", "dojo.platform.security"),
    "dojo/platform/services": ("dojo.platform.http", "dojo.platform.security"),
    # SQLite's group commit is handed its lock and connections by the Database, which
    # builds it: it names no Database, not even for its types.
    "dojo/platform/storage/groupcommit.py": ("dojo.platform.storage.db",),
    **{
        f"dojo/platform/{name}.py": ("dojo.platform.storage", "dojo.platform.services", "dojo.platform.http")
        for name in ("credentials", "errors", "schemas", "security", "settings")
    },
}


def _names(path: Path) -> list[tuple[int, str]]:
    """What each import statement of ``path`` names: the module, and for ``from m import n``
    also ``m.n`` (which is a module when ``n`` is a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _names(path)
        if module.split(".", 1)[0] in FORBIDDEN[package]
    ]
    assert offending == []


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _module(path: Path, base: Path) -> str:
    """The dotted name of the module at ``path`` in the tree rooted at ``base``."""
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_graph(folder: Path) -> dict[str, set[str]]:
    """Which of the packages of ``dojo`` in ``folder`` (``dojo.validator``, ``dojo.localnet``,
    ``dojo.simulate``, …) import which others."""
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        package = ".".join(_module(path, folder.parent).split(".")[:2])
        for _, name in _names(path):
            other = ".".join(name.split(".")[:2])
            if name.startswith("dojo.") and other != package:
                graph.setdefault(package, set()).add(other)
    return graph


def _module_graph(folder: Path) -> dict[str, set[str]]:
    """Which modules of the package in ``folder`` import which others of it."""
    modules = sorted((_module(path, ROOT) for path in folder.rglob("*.py")), key=len, reverse=True)
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        here = _module(path, ROOT)
        for _, name in _names(path):
            other = next((m for m in modules if _within(name, m)), None)
            if other is not None and other != here:
                graph.setdefault(here, set()).add(other)
    return graph


@pytest.mark.parametrize("where", sorted(ONE_WAY))
def test_dojo_modules_import_one_way(where: str) -> None:
    target = ROOT / where
    files = [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    assert all(path.is_file() for path in files) and files, f"no modules at {where}"
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in files
        for line, name in _names(path)
        if any(_within(name, module) for module in ONE_WAY[where])
    ]
    assert offending == []


def test_dojo_packages_import_each_other_one_way() -> None:
    assert _cycles(_package_graph(ROOT / "dojo")) == []


def test_the_local_network_modules_import_one_way() -> None:
    graph = _module_graph(ROOT / "dojo" / "localnet")
    assert {"dojo.localnet.net", "dojo.localnet.view"} <= set(graph)
    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    package = tmp_path / "dojo"
    (package / "validator").mkdir(parents=True)
    (package / "export").mkdir()
    (package / "validator" / "neuron.py").write_text("def f():\n    from dojo.export import run\n")
    (package / "export" / "_reader.py").write_text("from dojo.validator import models\n")
    assert _cycles(_package_graph(package)) == [["dojo.export", "dojo.validator"]]


def test_the_check_sees_an_offending_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dojo.platform.http import app\n    import commons.scoring\n")
    assert _names(module) == [
        (2, "dojo.platform.http"),
        (2, "dojo.platform.http.app"),
        (3, "commons.scoring"),
    ]
