"""The package's import graph follows the data path: no cycles, and the leaf modules stay leaves."""
import ast
from pathlib import Path

import streamdream

ROOT = Path(streamdream.__file__).parent


def _imports() -> dict[str, set[str]]:
    """module -> streamdream modules it imports (at any depth in the file, lazy imports included)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("streamdream",) + path.relative_to(ROOT).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                for alias in node.names:  # `from . import x` may name a module
                    candidate = f"{target}.{alias.name}"
                    found.add(candidate if (ROOT.parent / (candidate.replace(".", "/") + ".py")).exists() else target)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m.startswith("streamdream") and m != name}
    return graph


def test_no_import_cycle_between_modules():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(module, trail):
        state[module] = 1
        for nxt in graph.get(module, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [module, nxt]))
            if nxt not in state:
                visit(nxt, trail + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_dreaming_does_not_import_the_stream_package():
    graph = _imports()
    for module, targets in graph.items():
        if module.startswith("streamdream.dreaming"):
            assert not {t for t in targets if t.startswith("streamdream.stream")}, module


def test_leaf_modules_import_only_errors():
    graph = _imports()
    for leaf in ("streamdream.windows", "streamdream.params", "streamdream.audio.mix"):
        assert graph[leaf] <= {"streamdream.errors"}, (leaf, graph[leaf])
    assert graph["streamdream.errors"] == set()
