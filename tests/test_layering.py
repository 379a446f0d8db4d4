"""The package's layers: no import circle among gqn modules, the network (gqn.model) apart from run management
(gqn.runs), and the data side (gqn.data, gqn.renderer, gqn.converters) free of Chainer and of both.

The import graph is read from the source (every import statement, also those inside functions), so it
needs nothing installed and imports nothing.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gqn"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """The modules a file imports: gqn modules by full name (``from gqn.x import y`` is gqn.x.y when that is
    a module, else gqn.x), anything else by its top-level name."""
    names = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in known else base)
    return {name if name.split(".")[0] == "gqn" else name.split(".")[0] for name in names}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(path, set(found)) for name, path in found.items()}


def reachable(graph, start: str) -> set[str]:
    """Every module ``start`` imports, directly or through gqn modules."""
    seen, todo = set(), [start]
    while todo:
        for name in graph.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_graph_sees_the_packages(graph):
    assert {"gqn.cli", "gqn.data", "gqn.model.gqn", "gqn.runs.train", "gqn.renderer.stream"} <= set(graph)
    assert "gqn.runs.run" in graph["gqn.runs.train"] and "chainer" in graph["gqn.model.gqn"]


def test_no_import_circle(graph):
    """Depth-first search over gqn modules; a module met again while still on the path closes a circle."""
    state, path = {}, []

    def visit(name):
        state[name] = "open"
        path.append(name)
        for other in sorted(graph[name] & set(graph)):
            if state.get(other) == "open":
                circle = path[path.index(other):] + [other]
                pytest.fail("import circle: " + " -> ".join(circle))
            if other not in state:
                visit(other)
        path.pop()
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_the_network_does_not_import_runs_or_the_renderer(graph):
    for name in (n for n in graph if in_package(n, "gqn.model")):
        bad = {m for m in reachable(graph, name) if in_package(m, "gqn.runs") or in_package(m, "gqn.renderer")}
        assert not bad, f"{name} imports {sorted(bad)}"


@pytest.mark.parametrize("package", ["gqn.renderer", "gqn.converters", "gqn.data"])
def test_the_data_side_imports_no_chainer_and_no_model(graph, package):
    for name in (n for n in graph if in_package(n, package)):
        bad = {m for m in reachable(graph, name)
               if m in ("chainer", "chainermn", "cupy") or in_package(m, "gqn.model") or in_package(m, "gqn.runs")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_runs_reach_the_renderer_through_its_one_door(graph):
    """gqn.runs renders (online training, evaluation's orbits) and uses the pose helpers through exactly one
    renderer module, the door ``gqn.renderer.stream``; nothing in gqn.runs imports another."""
    used = {m for name in graph if in_package(name, "gqn.runs") for m in graph[name] if in_package(m, "gqn.renderer")}
    assert used == {"gqn.renderer.stream"}


def test_the_cli_builds_no_renderer_internals():
    """The CLI hands options to the door (``render_config``, ``ShardOutput``) and to `gqn render`'s job; it
    constructs no RenderConfig and no SceneStream itself."""
    source = (PACKAGE / "cli.py").read_text()
    assert "RenderConfig(" not in source and "SceneStream(" not in source
