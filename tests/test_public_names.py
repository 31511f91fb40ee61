"""The package's public face: every name in a module's ``__all__`` is there, once, and the notebooks
use only such names."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
from pathlib import Path

import pytest
import streamscope

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(streamscope.__path__, "streamscope.")
    if not m.name.endswith("__main__")
)


def _code(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            # IPython's magics and shell escapes are not Python.
            lines += [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def _uses(notebook: Path) -> set[tuple[str, str]]:
    """(module, name) for each ``from streamscope... import name`` and each ``streamscope.name``."""
    used: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(_code(notebook))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "streamscope":
            used |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "streamscope":
            used.add(("streamscope", node.attr))
    return used


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebooks_import_only_public_names(notebook: Path) -> None:
    used = _uses(notebook)
    assert used, f"{notebook.name} uses nothing from streamscope"
    private = sorted(
        f"{module}.{name}" for module, name in used if name not in importlib.import_module(module).__all__
    )
    assert not private, f"{notebook.name} uses names outside __all__: {private}"


def test_every_public_name_of_the_package_resolves() -> None:
    for name in streamscope.__all__:
        assert getattr(streamscope, name) is not None


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_a_modules_all_is_there_once(name: str) -> None:
    # A package's face built from its submodules' (replay's) must not name a thing twice or name a lost one.
    module = importlib.import_module(name)
    names = list(getattr(module, "__all__", []))
    assert len(names) == len(set(names)), f"{name}.__all__ names some twice: {sorted(names)}"
    assert not [n for n in names if not hasattr(module, n)], f"{name}.__all__ names what it lacks"
