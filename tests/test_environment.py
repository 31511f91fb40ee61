"""The pinned set lives in pyproject.toml; the conda and Binder environments must list it exactly."""

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pins.update(extra)
    return pins


def _conda_pins(path: Path) -> tuple[set[str], list]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    conda = [d for d in deps if not isinstance(d, dict)]
    return set(pip), conda


def test_every_dependency_is_pinned():
    unpinned = [p for p in _pyproject_pins() if "==" not in p]
    assert not unpinned, f"unpinned dependencies in pyproject.toml: {unpinned}"


@pytest.mark.parametrize("env_file", ["environment.yml", "binder/environment.yml"])
def test_environment_matches_pyproject(env_file):
    pins, conda = _conda_pins(ROOT / env_file)
    expected = _pyproject_pins()
    assert pins == expected, (
        f"{env_file} drifted from pyproject.toml: "
        f"missing {sorted(expected - pins)}, extra {sorted(pins - expected)}"
    )
    # repo2docker defaults to Python 3.10 unless the environment pins it.
    assert "python=3.11" in conda


def test_every_package_the_helpers_import_is_declared():
    """A third-party module the package imports must come from a distribution pyproject.toml pins."""
    declared = {
        pin.split("==")[0].lower()
        for pin in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    imported: set[str] = set()
    for path in (ROOT / "helpers" / "streamscope").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"streamscope", "__future__"}
    distributions = packages_distributions()
    undeclared = {
        module: distributions.get(module)
        for module in third_party
        if not {d.lower() for d in distributions.get(module, [module])} & declared
    }
    assert not undeclared, f"imported but not pinned in pyproject.toml's dependencies: {undeclared}"
