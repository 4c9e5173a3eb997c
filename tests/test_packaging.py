"""``setup.cfg`` against the package: the Python floor, the dependencies, the
import paths."""

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "almea_pyg").rglob("*.py"))
SOURCE_IDS = [str(path.relative_to(ROOT)) for path in SOURCES]

SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def python_floor() -> tuple[int, int]:
    """``(major, minor)`` of ``python_requires = >=X.Y``."""
    spec = SETUP["options"]["python_requires"].strip()
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec).groups()
    return int(major), int(minor)


#: Import names of the distributions whose import name is not their own.
IMPORT_NAMES = {"pyyaml": "yaml", "faiss_cpu": "faiss"}


def requirements(text: str) -> set[str]:
    """Import names of a requirement list, one requirement a line (the
    distribution name, ``-`` as ``_``, or :data:`IMPORT_NAMES`'s)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    names = (re.match(r"[A-Za-z0-9_.-]+", line).group() for line in lines)
    names = (name.lower().replace("-", "_") for name in names)
    return {IMPORT_NAMES.get(name, name) for name in names}


FLOOR = python_floor()
INSTALL_REQUIRES = requirements(SETUP["options"]["install_requires"])
EXTRAS = {
    name: requirements(text) for name, text in SETUP["options.extras_require"].items()
}


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("path", SOURCES, ids=SOURCE_IDS)
def test_source_parses_at_the_python_floor(path):
    ast.parse(path.read_text(encoding="utf-8"), feature_version=FLOOR)


#: Keyword arguments of calls that Python 3.10 added.
KEYWORDS_SINCE_3_10 = {
    "zip": {"strict"},
    "dataclass": {"kw_only", "slots", "match_args"},
    "field": {"kw_only"},
    "bisect": {"key"},
    "bisect_left": {"key"},
    "bisect_right": {"key"},
    "insort": {"key"},
    "insort_left": {"key"},
    "insort_right": {"key"},
}


def needs_python_3_10(module: ast.Module) -> list[str]:
    """What in ``module`` fails below Python 3.10 although it parses.

    ``X | Y`` of types evaluated at run time (annotations without ``from __future__
    import annotations``, ``isinstance``/``issubclass`` arguments, aliases such as
    ``Foo = int | None``) and the keyword arguments of :data:`KEYWORDS_SINCE_3_10`.
    """
    future = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in module.body
    )
    annotations = []
    type_args = []
    found = []
    for node in ast.walk(module):
        if isinstance(node, ast.arg) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in ("isinstance", "issubclass") and len(node.args) == 2:
                type_args.append(node.args[1])
            for keyword in node.keywords:
                if keyword.arg in KEYWORDS_SINCE_3_10.get(name, ()):
                    found.append(f"line {node.lineno}: {name}({keyword.arg}=...)")
    in_annotation = {id(sub) for node in annotations for sub in ast.walk(node)}
    in_type_arg = {id(sub) for node in type_args for sub in ast.walk(node)}
    for node in ast.walk(module):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)):
            continue
        if id(node) in in_annotation:
            evaluated = not future
        else:
            sides = (node.left, node.right)
            has_none = any(
                isinstance(side, ast.Constant) and side.value is None for side in sides
            )
            evaluated = has_none or id(node) in in_type_arg
        if evaluated:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.skipif(FLOOR >= (3, 10), reason="python_requires is 3.10 or newer")
@pytest.mark.parametrize("path", SOURCES, ids=SOURCE_IDS)
def test_nothing_needs_a_python_above_the_floor(path):
    assert needs_python_3_10(tree(path)) == []


def test_needs_python_3_10_finds_evaluated_unions_and_new_keywords():
    source = """
from typing import Optional
Alias = int | None
def f(x: int | None, y: Optional[int] = None) -> "int | None":
    isinstance(x, int | str)
    return list(zip(x, y, strict=True)), x | y
"""
    lines = [line.split(":")[0] for line in needs_python_3_10(ast.parse(source))]
    assert sorted(lines) == ["line 3", "line 4", "line 5", "line 6"]
    assert needs_python_3_10(ast.parse("from __future__ import annotations\n" + source))


def third_party_imports() -> tuple[set[str], set[str]]:
    """Third-party top-level modules imported by ``almea_pyg``: those imported when a
    module is, and those imported only inside functions (lazily)."""
    at_import, lazily = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                names = [child.module]
            else:
                names = []
            for name in names:
                top = name.split(".")[0]
                if top not in {"almea_pyg", *sys.stdlib_module_names}:
                    (lazily if in_function else at_import).add(top)
            function = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            visit(child, in_function or isinstance(child, function))

    for path in SOURCES:
        visit(tree(path), False)
    return at_import, lazily - at_import


def test_imports_are_declared():
    at_import, lazily = third_party_imports()
    assert {"torch", "torch_geometric"} <= at_import
    assert at_import <= INSTALL_REQUIRES
    optional = set().union(*EXTRAS.values())
    assert lazily <= INSTALL_REQUIRES | optional


def test_requirements_are_imported():
    at_import, lazily = third_party_imports()
    assert INSTALL_REQUIRES <= at_import | lazily


def run_python(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_importing_a_submodule_path_keeps_ds3_a_function():
    run_python(
        """
import importlib
import torch
import almea_pyg
try:
    importlib.import_module("almea_pyg.selection.ds3")
except ModuleNotFoundError:
    pass
from almea_pyg.select import ds3
assert callable(ds3), ds3
ds3(torch.rand(6, 6))
"""
    )


def _subpackage_imports() -> dict[str, set[str]]:
    """``{subpackage: subpackages it imports}`` over every import in the package,
    those inside functions included (a lazy import is a dependency too)."""
    package = ROOT / "almea_pyg"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts == ("__init__",):
            continue
        node = parts[0]
        graph.setdefault(node, set())
        for item in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(item, ast.ImportFrom) and item.module:
                names = [item.module]
            elif isinstance(item, ast.Import):
                names = [alias.name for alias in item.names]
            for name in names:
                dotted = name.split(".")
                if dotted[0] == "almea_pyg" and len(dotted) > 1 and dotted[1] != node:
                    graph[node].add(dotted[1])
    return graph


def test_imports_between_subpackages_flow_one_way():
    graph = _subpackage_imports()
    assert {"active", "train", "pipeline", "select", "data"} <= set(graph)
    state: dict[str, str] = {}

    def visit(path: list[str]) -> None:
        node = path[-1]
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt) :] + [nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit([node])


def test_the_library_needs_no_scipy():
    at_import, lazily = third_party_imports()
    assert "scipy" not in at_import | lazily  # the t-test is computed in stats.py
