"""The package's shape: folders in layers, no import cycles, no oversized modules, no name
shadowing the stdlib.

Imports are read from the source with ``ast``, including imports inside functions (a lazy
import hides a cycle, it does not remove it). Imports under ``if TYPE_CHECKING:`` are left out:
they never run.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import django_sendfleet

PACKAGE = Path(django_sendfleet.__file__).parent
NAME = "django_sendfleet"
#: "About 400 lines": a module past this has more than one concept in it.
MAX_MODULE_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    }


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _under_type_checking(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # "from . import x" imports the module x when there is one, else a name of base.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != NAME:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


#: The package's units (a folder, or a module of the top level), bottom layer first: a unit
#: imports only units of lower layers (docs/internals.md says why each stands where it does).
#: The package's own ``__init__`` (``__version__``, binding the error table) is the package
#: itself, imported before any of its modules, and stands outside the layers.
LAYERS: list[set[str]] = [
    {"exceptions", "signals", "tracking", "db"},
    {"credentials", "message", "outcome", "error_spec"},
    {"conf", "models", "error_table"},
    {"api", "ratelimit", "reputation", "records", "reporting"},
    {"sending", "erasure"},
    {"webhooks"},
    {"queued", "sandbox", "urls"},
    {"backends", "tasks", "admin"},
    {"checks"},
    {"management", "apps"},
]


def unit_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if unit_of(module):
            units.setdefault(unit_of(module), set()).update(
                unit_of(target) for target in targets if unit_of(target) != unit_of(module)
            )
    return units


def layer_of(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def test_every_unit_of_the_package_stands_on_a_layer():
    placed = set().union(*LAYERS)
    assert set(unit_graph(import_graph())) - placed == set()


def test_units_import_only_units_of_lower_layers():
    upward_or_level = {
        f"{unit} -> {target}"
        for unit, targets in unit_graph(import_graph()).items()
        for target in targets
        if layer_of(target) >= layer_of(unit)
    }
    assert upward_or_level == set()


def test_the_layer_check_sees_an_upward_import():
    graph = {f"{NAME}.records.send_log": {f"{NAME}.webhooks.events"}}
    assert unit_graph(graph) == {"records": {"webhooks"}}
    assert layer_of("webhooks") > layer_of("records")


def test_no_two_units_import_each_other_through_others():
    assert find_cycle(unit_graph(import_graph())) is None


def test_no_module_is_over_about_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in package_modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_module_shadows_the_standard_library():
    stdlib = set(sys.stdlib_module_names)
    shadowing = {name for name in package_modules() if name.rpartition(".")[2] in stdlib}
    assert shadowing == set()


TESTS = Path(__file__).resolve().parent
#: Test folders that mirror no folder of the package: shared helpers, Django's own mail tests.
TEST_FOLDERS_OF_THEIR_OWN = {"support", "django_mail", "__pycache__"}


def test_the_tests_are_in_folders_named_after_the_package():
    units = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    folders = {path.name for path in TESTS.iterdir() if path.is_dir()}
    assert folders - TEST_FOLDERS_OF_THEIR_OWN - units == set()


def test_no_test_module_imports_another_test_module_or_the_conftest():
    offenders = set()
    for path in TESTS.rglob("*.py"):
        if "django_mail" in path.parts:
            continue  # Django's own tests, loaded as Django lays them out
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            parts = {part for name in names for part in name.split(".")}
            if any(part == "conftest" or part.startswith("test_") for part in parts):
                offenders.add(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert offenders == set()
