"""The package's rooms import in the order data flows, and no module imports itself back round a circle.

Read from the code's own imports (``ast``), those inside functions included: a function-local
import is still a dependency, and every past violation was one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ML = Path(__file__).resolve().parents[2] / "ml"

# base first; a module may import from its own room and from rooms earlier in this list, never later
LAYERS = [
    ("ml.columns", "ml.errors", "ml.config", "ml.hardware"),
    ("ml.data",),
    ("ml.quality",),
    ("ml.text",),
    ("ml.eval",),
    ("ml.models",),
    ("ml.synth.llm",),
    ("ml.synth",),
    ("ml.tracking",),
    ("ml.serve",),
    ("ml.pipeline",),
    ("ml.cli", "ml.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ML.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of ``ml`` (not a name defined inside one)."""
    path = ML.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports(path: Path) -> set[str]:
    """Every ``ml`` module ``path`` imports, at any depth (``from ml.x import y`` -> ``ml.x.y`` or ``ml.x``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ml")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module_name(path).split(".")
                package = package if path.name == "__init__.py" else package[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "ml":
                found.update(f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base for a in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(ML.rglob("*.py"))}
GRAPH = {name: {i for i in imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    best, rank = None, -1
    for index, rooms in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and len(room) > rank:
                best, rank = index, len(room)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its room to LAYERS")
    return best


def test_every_module_is_in_a_layer():
    for name in MODULES:
        if name != "ml":
            layer_of(name)


def test_no_module_imports_a_later_layer():
    upward = [
        f"{src} -> {dst}"
        for src, dsts in GRAPH.items()
        if src != "ml"
        for dst in sorted(dsts)
        if layer_of(dst) > layer_of(src)
    ]
    assert upward == []


def test_lower_layers_never_import_synthesis():
    lower = ("ml.data", "ml.quality", "ml.text", "ml.eval", "ml.models")
    offenders = [
        f"{src} -> {dst}"
        for src, dsts in GRAPH.items()
        if src.startswith(lower)
        for dst in dsts
        if dst.startswith("ml.synth")
    ]
    assert offenders == []


def test_no_import_circle():
    """Depth-first search for a back edge over the module graph."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_the_checker_sees_function_local_and_relative_imports(tmp_path):
    """The parser finds an import hidden in a function body (the kind every past violation was)."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from ml.synth.llm.base import Prompt\n    import ml.data.lake\n")
    assert imports(source) == {"ml.synth.llm.base", "ml.data.lake"}
