"""The shape of the package, checked: folders in the order of the flow (an image goes down
:data:`LAYERS`, and no module imports a later step), no import circle, small modules and functions, no
reaching into another module's private names.

These are the rules of the design card; a change that breaks one fails here with the place named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "deepcut"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _named(node: ast.AST, package: str) -> set[str]:
    """The ``deepcut`` modules (and ``module.name`` pairs) one import statement names."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.startswith("deepcut"):
            return {target} | {f"{target}.{a.name}" for a in node.names}
    elif isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.startswith("deepcut")}
    return set()


def imports_of(path: Path) -> set[str]:
    """The ``deepcut`` modules a module imports at import time (not inside functions or TYPE_CHECKING)."""
    package, found = _package_of(path), set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ([node] if not isinstance(node, ast.If) else node.body):
            found |= _named(sub, package)
    known = {module_name(p) for p in modules()}
    return {m for m in found if m in known and m != module_name(path)}


def test_no_module_is_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize("path", [*modules(), ROOT / "app.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_over_the_limit(path):
    tree = ast.parse(path.read_text())
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_app_is_thin():
    assert len((ROOT / "app.py").read_text().splitlines()) <= 250


def test_imports_have_no_cycle():
    """No circle of imports, counting every import: inside functions and under TYPE_CHECKING too."""
    known = {module_name(p) for p in modules()}
    # ``from . import sibling`` names the package too; a module is inside its own package anyway
    graph = {module_name(p): {m for m in all_imports_of(p) if m in known and not module_name(p).startswith(m + ".")}
             - {module_name(p)} for p in modules()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                # a package importing its own submodules is not a cycle of logic
                cycle = stack[stack.index(n):] + [n]
                if not all(c.startswith(n + ".") or c == n for c in cycle):
                    raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


#: The steps of the flow, lowest first: a module may import its own step and the steps before it, never
#: a later one. An image goes down them: backbone -> features -> graph -> clustering -> stages ->
#: segmentation; render draws what those make, tasks combine them, lessons explain them; the facade sits
#: on top, the dataset tools and the front ends above it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("deepcut.errors",),
    ("deepcut.utils",),
    ("deepcut.config",),
    ("deepcut.backbones",),
    ("deepcut.features",),
    ("deepcut.graph",),
    ("deepcut.clustering",),
    ("deepcut.stages",),
    ("deepcut.segmentation",),
    ("deepcut.render",),
    ("deepcut.tasks",),
    ("deepcut.lessons",),
    ("deepcut.predictor", "deepcut.model_cache", "deepcut"),
    ("deepcut.labeling", "deepcut.evaluation"),
    ("deepcut.cli", "deepcut.demo"),
    ("deepcut.__main__",),
)
#: The imports allowed to point up, each with its reason. render/teaching.py draws the lessons' records
#: and names their types for the type checker only (under TYPE_CHECKING: nothing runs up the steps).
UPWARD = {("deepcut.render.teaching", "deepcut.lessons.records")}


def layer_of(module: str) -> int:
    """The step of ``module``: the one whose longest prefix names it."""
    best, index = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, index = len(p), i
    assert index >= 0, f"{module} is in no step of LAYERS"
    return index


def test_every_module_has_a_step():
    for p in modules():
        layer_of(module_name(p))
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        "utils", "backbones", "features", "graph", "clustering", "stages", "segmentation", "render", "tasks",
        "lessons", "labeling", "evaluation", "cli", "demo"}


def test_no_module_imports_a_later_step():
    """Every import counts (inside functions and under TYPE_CHECKING too), except those in :data:`UPWARD`."""
    known = {module_name(p) for p in modules()}
    bad = []
    for p in modules():
        m = module_name(p)
        for n in sorted(all_imports_of(p) & known):
            if layer_of(n) > layer_of(m) and (m, n) not in UPWARD:
                bad.append(f"{m} (step {layer_of(m)}) imports {n} (step {layer_of(n)})")
    assert not bad, "imports that climb the flow:\n" + "\n".join(bad)


def test_upward_imports_are_for_the_type_checker_only():
    for m, n in UPWARD:
        path = ROOT / (m.replace(".", "/") + ".py")
        assert n not in imports_of(path), f"{m} imports {n} at run time"
        assert n in all_imports_of(path), f"{m} no longer imports {n}: drop it from UPWARD"


def test_no_private_names_are_used_across_modules():
    """``other_module._name`` / ``obj._method()`` on another module's objects: only ``self._x`` and
    ``cls._x`` inside a class, and a module's own private names, are allowed."""
    bad = []
    for path in [*modules(), ROOT / "app.py"]:
        tree = ast.parse(path.read_text())
        outside = {a.asname or a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for a in node.names if not a.name.startswith("deepcut")}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and "deepcut" in (node.module or "deepcut"):
                bad += [f"{path.name}: imports {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__") and node.level + bool(node.module)]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in outside):
                    continue  # our own object, or a third-party module's type (e.g. argparse._SubParsersAction)
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, "private names used from outside their owner:\n" + "\n".join(bad)


def test_backbones_hold_backbones_and_the_gnn_its_parameters():
    """``deepcut/backbones`` builds, loads and runs the ViTs; the per-image GNN owns its parameters (PyG
    is the tests' oracle, not a run-time dependency)."""
    names = {p.stem for p in (PACKAGE / "backbones").glob("*.py")} - {"__init__"}
    assert names <= {"base", "vit", "dinov2", "dinov3", "color", "precision", "tune", "registry", "hub",
                     "checkpoint", "arch", "specs", "openvino_engine", "positions"}, names
    for path in PACKAGE.rglob("*.py"):
        names = {a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)}
        assert not any(n.startswith("torch_geometric") for n in names), f"{path.relative_to(ROOT)} imports PyG"
    assert ".lin." not in (PACKAGE / "clustering" / "gnn.py").read_text(), "the GNN owns its parameters"


def all_imports_of(path: Path) -> set[str]:
    """Every ``deepcut`` module a module names in an import, anywhere (functions and TYPE_CHECKING too)."""
    package = _package_of(path)
    return set().union(*(_named(node, package) for node in ast.walk(ast.parse(path.read_text()))))


#: The front ends over the library: they may use the facade and the evaluation package.
FRONT_ENDS = ("deepcut.cli", "deepcut.demo", "deepcut.labeling", "deepcut.evaluation")


def _is(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_lower_modules_do_not_know_the_facade():
    """Only the front ends, the model cache and the package's own ``__init__`` name ``DeepCut``'s module:
    co-segmentation, video, discovery … take the :class:`FeatureStore` they work on."""
    allowed = (*FRONT_ENDS, "deepcut.predictor", "deepcut.model_cache")
    bad = {module_name(p) for p in modules()
           if module_name(p) != "deepcut" and not _is(module_name(p), allowed)
           and any(_is(m, ("deepcut.predictor",)) for m in all_imports_of(p))}
    assert not bad, f"these modules import deepcut.predictor: {sorted(bad)}"


def test_the_library_does_not_depend_on_its_evaluation():
    bad = {module_name(p) for p in modules()
           if not _is(module_name(p), ("deepcut.evaluation", "deepcut.cli", "deepcut.demo"))
           and any(_is(m, ("deepcut.evaluation",)) for m in all_imports_of(p))}
    assert not bad, f"these library modules import deepcut.evaluation: {sorted(bad)}"


def test_only_the_demo_imports_gradio():
    bad = {module_name(p) for p in modules() if not _is(module_name(p), ("deepcut.demo",))
           and any(isinstance(n, (ast.Import, ast.ImportFrom)) and "gradio" in ast.unparse(n).split()[1]
                   for n in ast.walk(ast.parse(p.read_text())))}
    assert not bad, f"gradio imported outside deepcut/demo: {sorted(bad)}"
