"""The degeneracy package imports one way: no module cycle (an experiment imports its report,
never the reverse), and nothing in it imports the main command line."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "learnsyn" / "degeneracy"
PREFIX = "learnsyn.degeneracy"


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_modules(tree: ast.AST) -> set[str]:
    """Every module imported anywhere in the file (function bodies too), except under
    ``if TYPE_CHECKING:`` (annotations only, never run)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == PREFIX:  # from learnsyn.degeneracy import x
                found.update(f"{PREFIX}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        imports = _imported_modules(ast.parse(path.read_text()))
        graph[path.stem] = imports
    return graph


def test_no_import_cycle_inside_the_degeneracy_package():
    graph = _graph()
    edges = {
        name: {
            module.removeprefix(f"{PREFIX}.")
            for module in imports
            if module.startswith(f"{PREFIX}.") and module.removeprefix(f"{PREFIX}.") in graph
        }
        for name, imports in graph.items()
    }
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("experiment", ["deep_linear", "spectra", "synapse", "hessian"])
def test_an_experiment_imports_its_report_and_the_report_never_the_experiment(experiment):
    graph = _graph()
    assert f"{PREFIX}.{experiment}_report" in graph[experiment]
    assert f"{PREFIX}.{experiment}" not in graph[f"{experiment}_report"]


def test_nothing_in_the_degeneracy_package_imports_the_main_command_line():
    """Only the entry point ``python -m learnsyn.degeneracy`` (``__main__``) runs the command,
    which lives in ``learnsyn.cli.degeneracy``."""
    for name, imports in _graph().items():
        if name == "__main__":
            continue
        assert not any(
            module == "learnsyn.cli" or module.startswith("learnsyn.cli.") for module in imports
        ), name
