"""Every notebook, run in JupyterLab in a real browser, the way a user (or Binder) meets it.

nbval checks what the kernel sends; this checks what the page shows: no error output, no widget that
fails to render, and, for notebooks with a live chart, a chart and a text that grow in place while the
stream arrives rather than appearing at the end; and, for a race chart (several streams, one line each,
class `streamscope-race-chart`), lines that grow together.

A notebook has a live chart when, once its cells have run, the page holds an element with class
`streamscope-live` (what streamscope.charts displays). Notebooks without one are checked for errors only.
A widget shown as plain text (a front end without the widget manager) fails too: the committed
notebook's saved widget outputs (nbval's reference) say what their plain-text form looks like.

Screenshots, mid-stream and at the end, go to screenshots/ (git-ignored). With
STREAMSCOPE_UPDATE_SCREENSHOTS=1 the pair for the README's notebook is also written to docs/images/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from lab_server import LabServer
from notebook_page import RECORD_INTERVAL_MS, NotebookRun, open_notebook, run_all_cells, screenshot_around
from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = REPO_ROOT / "screenshots"
README_IMAGES = REPO_ROOT / "docs" / "images"
README_NOTEBOOK = "01_streaming_chat_completions"
RUN_TIMEOUT_S = 120.0
# "Updates while the stream arrives": at least this many distinct partial states shown while cells
# were still running, before the element's final state.
MIN_PARTIAL_STATES = 3
# Candidate mid-stream screenshots are taken at most this often (each one costs the page some time).
SCREENSHOT_EVERY_S = 0.4
LIVE_CHART = ".jp-Notebook .streamscope-live-chart"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.browser


class MidstreamShots:
    """Screenshots of a chart while it grows; the one nearest half its final size is kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.shots: list[tuple[int, int, bytes]] = []  # (chart id, points, png)
        self.last_shot_at = 0.0
        self.last_points: dict[int, int] = {}

    def on_poll(self, snapshot: dict[str, Any]) -> None:
        growing = [
            (index, element_id, points)
            for index, (element_id, points, running) in enumerate(snapshot["charts"])
            if running and points > 0 and points != self.last_points.get(element_id)
        ]
        self.last_points.update({element_id: points for element_id, points, _ in snapshot["charts"]})
        if growing and snapshot["t"] - self.last_shot_at >= SCREENSHOT_EVERY_S:
            index, element_id, points = growing[-1]
            self.shots.append((element_id, points, screenshot_around(self.page, LIVE_CHART, index)))
            self.last_shot_at = snapshot["t"]

    def best(self, final_points: dict[int, int]) -> bytes | None:
        partial = [
            (abs(points - final_points[element_id] / 2), png)
            for element_id, points, png in self.shots
            if 0 < points < final_points.get(element_id, 0)
        ]
        return min(partial, key=lambda shot: shot[0])[1] if partial else None


def growth_failures(run: NotebookRun, kind: str, label: str) -> list[str]:
    failures = []
    for number, growth in enumerate(run.growth(kind).values(), start=1):
        shown = [value for value in growth.while_running if value >= 0]  # -1: no plotly graph yet
        partial = [value for value in shown if 0 < value < growth.final]
        if growth.final < 0:
            failures.append(f"{label} {number} was never drawn")
        elif growth.final == 0 or len(partial) < MIN_PARTIAL_STATES:
            when = f"{growth.first_shown_s:.1f} s" if growth.first_shown_s is not None else "never"
            done = f"{growth.cells_done_s:.1f} s" if growth.cells_done_s is not None else "the end"
            failures.append(
                f"{label} {number} did not grow while the stream arrived: while cells ran the page showed "
                f"{shown or 'nothing'}, then {growth.final} at the end (needs >= {MIN_PARTIAL_STATES} "
                f"partial states; the page recorded its state every {RECORD_INTERVAL_MS} ms). After Run All "
                f"it first showed something at {when}; the last cell had run at {done}"
            )
    return failures


def race_failures(run: NotebookRun) -> list[str]:
    """A race chart must show its streams growing together, not one after another or all at the end."""
    failures = []
    for number, race in enumerate(run.race_growth().values(), start=1):
        together = race.together()
        if len(together) < MIN_PARTIAL_STATES:
            failures.append(
                f"race chart {number} did not show its lines growing together: {len(together)} states "
                f"with two or more lines part-drawn while cells ran (needs >= {MIN_PARTIAL_STATES}); "
                f"final lengths {race.final}, states while running {race.while_running[:12]}"
            )
    return failures


def saved_widget_texts(notebook: Path) -> list[str]:
    """The first line of the text/plain form of each widget the saved notebook shows."""
    cells = json.loads(notebook.read_text())["cells"]
    lines = [
        "".join(output["data"].get("text/plain", "")).split("\n", 1)[0]
        for cell in cells
        for output in cell.get("outputs", [])
        if WIDGET_VIEW_MIME in output.get("data", {})
    ]
    return [line for line in lines if line.strip()]


def save_screenshots(notebook: Path, midstream: bytes | None, end: bytes) -> list[Path]:
    SCREENSHOTS.mkdir(exist_ok=True)
    shots = {"end": end} if midstream is None else {"midstream": midstream, "end": end}
    if midstream is None:
        (SCREENSHOTS / f"{notebook.stem}-midstream.png").unlink(missing_ok=True)  # not one from a past run
    saved = []
    for moment, png in shots.items():
        path = SCREENSHOTS / f"{notebook.stem}-{moment}.png"
        path.write_bytes(png)
        saved.append(path)
        if os.environ.get("STREAMSCOPE_UPDATE_SCREENSHOTS") == "1" and notebook.stem == README_NOTEBOOK:
            README_IMAGES.mkdir(parents=True, exist_ok=True)
            (README_IMAGES / f"live-chart-{moment}.png").write_bytes(png)
    return saved


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(browser: Browser, jupyter_lab: LabServer, notebook: Path) -> None:
    listed = {item["name"] for item in jupyter_lab.get_json("api/contents/notebooks")["content"]}
    assert notebook.name in listed, f"JupyterLab does not list notebooks/{notebook.name}: {sorted(listed)}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        open_notebook(page, jupyter_lab, f"notebooks/{notebook.name}")
        shots = MidstreamShots(page)
        run = run_all_cells(page, RUN_TIMEOUT_S, shots.on_poll, saved_widget_texts(notebook))
        final_points = {element_id: growth.final for element_id, growth in run.growth("charts").items()}
        midstream = shots.best(final_points)
        saved = save_screenshots(notebook, midstream, screenshot_around(page, LIVE_CHART))
        news_prompts = page.get_by_text("official Jupyter news").count()
    finally:
        context.close()
        jupyter_lab.shut_down_kernels()

    failures = list(run.problems)
    if news_prompts:
        failures.append("JupyterLab asks about Jupyter news (binder/lab-settings/overrides.json not applied)")
    if any(state["live"] for state in run.states):
        growth = growth_failures(run, "charts", "live chart") + growth_failures(run, "texts", "streamed text")
        growth += race_failures(run)
        failures += growth
        if midstream is None and not growth:
            failures.append("no screenshot caught a chart part-way (none taken while it was growing)")
    if failures:
        console = [f"  {line[:300]}" for line in run.console_errors[:8]]
        pytest.fail(
            f"notebooks/{notebook.name} in JupyterLab (cells ran in {run.seconds:.1f} s; screenshots: "
            f"{', '.join(str(path.relative_to(REPO_ROOT)) for path in saved)}):\n"
            + "\n".join(f"- {failure}" for failure in failures)
            + ("\nbrowser console errors:\n" + "\n".join(console) if console else ""),
            pytrace=False,
        )
