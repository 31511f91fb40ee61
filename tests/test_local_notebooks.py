"""Every notebook, executed end to end against the ``local`` backend: a real model on this CPU.

No output is compared (the model's text and timing are whatever they are today). What must
hold: no cell errors or writes to stderr; every live chart redrew at least 3 times while
its stream arrived; every latency metric of every chart, under every convention, is finite
and positive. Skipped, with the command that fixes it, where the optional extra or the
models are missing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from streamscope.backends import local

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MIN_CHART_STATES = 3

# Run in the notebook's kernel after its last cell: what each live chart drew and measured.
_REPORT_CELL = """
import gc, json
from streamscope.charts import LiveChart
from streamscope.timing import CONVENTIONS

_fields = ("time_to_first_chunk", "ttft", "tpot", "e2el", "tokens_per_s", "output_tokens")
print(json.dumps([
    {
        "title": chart.title,
        "part": chart.view.part.noun,
        "updates": chart.updates,
        "metrics": {
            name: {f: getattr(chart.timeline.metrics(name), f) for f in _fields} for name in CONVENTIONS
        },
    }
    for chart in gc.get_objects()
    if isinstance(chart, LiveChart)
]))
"""


pytestmark = pytest.mark.skipif(local.unavailable() is not None, reason=str(local.unavailable()))


def _problems(cell: nbformat.NotebookNode) -> list[str]:
    found = []
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            found.append(f"{output.ename}: {output.evalue}")
        elif output.output_type == "stream" and output.name == "stderr":
            found.append(f"stderr: {output.text.strip()}")
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_live_on_the_local_model(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSCOPE_BACKEND", "local")
    monkeypatch.delenv("STREAMSCOPE_MODEL", raising=False)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(_REPORT_CELL))
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": ROOT}},
    ).execute()

    problems = [
        f"cell {index}: {problem}"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for problem in _problems(cell)
    ]
    assert not problems, "\n".join(problems)
    first_code_cell = next(cell for cell in notebook.cells if cell.cell_type == "code")
    banner = "".join(output.get("text", "") for output in first_code_cell.outputs)
    assert "llama-server" in banner and "on this CPU" in banner and "live" in banner, banner

    charts = json.loads(notebook.cells[-1].outputs[0].text)
    for chart in charts:
        assert chart["updates"] >= MIN_CHART_STATES, f"{chart['title']}: drew {chart['updates']} states"
        conventions = chart["metrics"]
        if chart["part"] != "content":
            # A chart of tool-call arguments draws a stream with no content, so no content tokens:
            # only vLLM's convention (first token = first chunk with a choice) has a first token, and
            # the timings are what is defined.
            vllm = chart["metrics"]["vllm"]
            conventions = {"vllm": {f: vllm[f] for f in ("time_to_first_chunk", "ttft", "e2el")}}
        for convention, figures in conventions.items():
            bad = {
                name: value
                for name, value in figures.items()
                if not (isinstance(value, int | float) and math.isfinite(value) and value > 0)
            }
            assert not bad, f"{chart['title']}, {convention}: not finite and positive: {bad}"
