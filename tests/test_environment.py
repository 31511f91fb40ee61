"""The pinned set lives in pyproject.toml; the conda and Binder environments must list it exactly."""

import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


# The local backend's extra builds llama.cpp from source (8-11 min on 2 cores): `make local`
# installs it on request; the conda and Binder environments leave it out.
NOT_IN_ENVIRONMENTS = frozenset({"local"})


def _pyproject_pins(leave_out: frozenset[str] = frozenset()) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name not in leave_out:
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
    expected = _pyproject_pins(leave_out=NOT_IN_ENVIRONMENTS)
    assert pins == expected, (
        f"{env_file} drifted from pyproject.toml: "
        f"missing {sorted(expected - pins)}, extra {sorted(pins - expected)}"
    )
    # repo2docker defaults to Python 3.10 unless the environment pins it.
    assert "python=3.11" in conda
