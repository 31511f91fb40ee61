"""The core path (notebooks 01-03) within its reading budget, as tools/course_budget.py counts it; every
notebook's request cells name their model and prompt themselves."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("course_budget", ROOT / "tools" / "course_budget.py")
budget = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = budget  # dataclasses look their module up there
_spec.loader.exec_module(budget)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CORE = [p for p in NOTEBOOKS if p.name.startswith(budget.CORE_PATH)]
# A request cell names its model and prompt itself, as the reader's own program would.
HELPER_CALLS = ("streamscope.model(", "streamscope.prompt(")


def test_the_core_path_is_three_notebooks():
    assert [p.name[:3] for p in CORE] == ["01_", "02_", "03_"]


def test_the_core_path_is_within_its_budget():
    counts = [budget.count(path) for path in CORE]
    assert sum(c.words for c in counts) <= budget.BUDGET_WORDS
    assert sum(c.minutes for c in counts) <= budget.BUDGET_MINUTES
    assert max(c.longest_code_cell for c in counts) <= budget.BUDGET_LINES_PER_CELL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_cell_asks_a_helper_for_its_model_or_prompt(path):
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        assert not any(call in source for call in HELPER_CALLS), source


def test_the_counts_follow_the_rules_in_the_docstring(tmp_path):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": ["Two words.\n", "```bash\nmake lab\n\n```\n", "*one*"]},
            {"cell_type": "code", "source": ["x = 1\n", "\n", "print(x)"]},
        ]
    }
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook))
    counts = budget.count(path)
    assert (counts.words, counts.code_lines, counts.longest_code_cell) == (3, 3, 2)
    assert counts.minutes == pytest.approx(3 / 200 + 3 * 3.5 / 60)
