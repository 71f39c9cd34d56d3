"""The package's structure: layers import downward only, no import circle within a layer, no long
function bodies. Imports are read from the source with ``ast`` (module level, inside functions and
under ``TYPE_CHECKING`` alike: a circle hidden in a function is still a circle), as
``../shared/tools/structure.py`` reads them.

``LAYERS`` places every module, lowest layer first; every layer's rules are enforced, and a
module not placed in ``LAYERS`` fails ``test_every_module_has_a_layer``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "exprssl"
MAX_BODY = 60  # lines of a function body, docstring excluded

# (layer, top-level modules or subpackages of exprssl), lowest first: a module may import its own
# layer and the layers below it, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "data",
        (
            "errors",
            "utils",
            "text",
            "signals",
            "config_file",
            "options",
            "threads",
            "validation",
            "scale",
            "genes",
            "sample_ids",
            "readers",
            "datasets",
            "io",
            "store",
            "sources",
            "preprocessing",
        ),
    ),
    (
        "model",
        (
            "devices",
            "figures",
            "augment",
            "losses",
            "encoders",
            "methods",
            "training",
            "splits",
            "model_layout",
            "card",
            "hub",
            "outputs",
            "model_io",
            "model",
        ),
    ),
    ("evaluation", ("evaluation", "attributions")),
    ("report", ("report",)),
    ("cli", ("api", "flags", "overview", "cli")),
]
CHECKED = tuple(name for name, _ in LAYERS)


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = ["exprssl", *f.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known) -> set[str]:
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            root = ".".join(
                base[: len(base) - node.level + 1] + ([node.module] if node.module else [])
            )
        else:
            root = node.module or ""
        names = [root] + [f"{root}.{a.name}" for a in node.names]
    else:
        names = [a.name for a in node.names]
    # a module importing its own package's __init__ (``from . import register``) is no edge
    return {n for n in names if n in known and n != module and not module.startswith(n + ".")}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module] |= _targets(module, path, node, known)
    return graph


def _layer(module: str) -> str | None:
    """The layer of ``exprssl.<top>...`` (None: the package root, or a module not placed)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return next((name for name, tops in LAYERS if parts[1] in tops), None)


def _rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("layer", CHECKED)
def test_no_import_circle_within_the_layer(layer):
    graph = _graph()
    members = {m for m in graph if _layer(m) == layer}
    assert members, f"no module in layer {layer}"
    sub = {m: graph[m] & members for m in members}
    assert _circles(sub) == []


@pytest.mark.parametrize("layer", CHECKED)
def test_the_layer_imports_only_its_own_and_lower_layers(layer):
    graph = _graph()
    upward = []
    for module in sorted(m for m in graph if _layer(m) == layer):
        for target in sorted(graph[module]):
            target_layer = _layer(target)
            if target_layer is None or _rank(target_layer) > _rank(layer):
                upward.append(f"{module} -> {target} ({target_layer or 'not in LAYERS'})")
    assert upward == []


@pytest.mark.parametrize("layer", CHECKED)
def test_no_function_body_over_the_limit(layer):
    long = []
    for module, path in _modules().items():
        if _layer(module) != layer:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    body = body[1:]  # the docstring
                lines = body[-1].end_lineno - body[0].lineno + 1 if body else 0
                if lines > MAX_BODY:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """The rules can fail: a planted circle and a planted upward import are found."""
    graph = {"exprssl.io": {"exprssl.store"}, "exprssl.store": {"exprssl.io"}, "exprssl.x": set()}
    assert _circles(graph) == [["exprssl.io", "exprssl.store"]]
    assert _rank(_layer("exprssl.model")) > _rank(_layer("exprssl.readers.text"))
    assert _layer("exprssl.readers.text") == "data" and _layer("exprssl.nowhere") is None


def test_every_module_has_a_layer():
    unplaced = sorted({m.split(".")[1] for m in _graph() if "." in m and _layer(m) is None})
    assert unplaced == []
