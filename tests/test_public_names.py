"""The notebooks use only the package's public face: names in ``__all__`` of the modules they import."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


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
    import streamscope

    for name in streamscope.__all__:
        assert getattr(streamscope, name) is not None
