"""Every notebook, run in JupyterLab in a real browser, the way a user (or Binder) meets it.

nbval checks what the kernel sends; this checks what the page shows: no error output, no widget that
fails to render, and, for notebooks with a live chart, a chart and a text that grow while the stream
arrives rather than appearing at the end.

A notebook has a live chart when, once its cells have run, the page holds an element with class
`streamscope-live` (what streamscope.live displays). Notebooks without one are checked for errors only.

Screenshots, mid-stream and at the end, go to screenshots/ (git-ignored). With
STREAMSCOPE_UPDATE_SCREENSHOTS=1 the pair for the README's notebook is also written to docs/images/.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from lab_server import LabServer
from notebook_page import (
    SAMPLE_INTERVAL_S,
    NotebookRun,
    Sample,
    open_notebook,
    run_all_cells,
    screenshot_around,
)
from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
SCREENSHOTS = REPO_ROOT / "screenshots"
README_IMAGES = REPO_ROOT / "docs" / "images"
README_NOTEBOOK = "01_streaming_chat_completions"
RUN_TIMEOUT_S = 120.0
# "Updates while the stream arrives": at least this many distinct partial states seen before the end.
MIN_PARTIAL_STATES = 3
# Candidate mid-stream screenshots are taken at most this often (each one costs sampling time).
SCREENSHOT_EVERY_S = 0.4

pytestmark = pytest.mark.browser


class MidstreamShots:
    """Screenshots of the growing chart during the run; the one nearest half the final chart is kept."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.shots: list[tuple[int, bytes]] = []
        self.last_shot_at = -SCREENSHOT_EVERY_S
        self.last_points: tuple[int, ...] = ()

    def on_sample(self, run: NotebookRun, sample: Sample) -> None:
        points = tuple(count for _, count in sample.snapshot["charts"])
        before = self.last_points + (0,) * (len(points) - len(self.last_points))
        changed = [i for i, count in enumerate(points) if count > 0 and count != before[i]]
        self.last_points = points
        if sample.finished or not changed or sample.seconds - self.last_shot_at < SCREENSHOT_EVERY_S:
            return
        growing = changed[-1]
        self.page.evaluate(
            "(i) => document.querySelectorAll('.jp-Notebook .streamscope-live-chart')[i]"
            ".scrollIntoView({block: 'center'})",
            growing,
        )
        self.shots.append((points[growing], self.page.screenshot()))
        self.last_shot_at = sample.seconds

    def best(self, final_points: int) -> tuple[int, bytes] | None:
        partial = [shot for shot in self.shots if 0 < shot[0] < final_points]
        return min(partial, key=lambda shot: abs(shot[0] - final_points / 2), default=None)


def growth_failures(run: NotebookRun, kind: str, label: str) -> list[str]:
    failures = []
    for number, values in enumerate(run.growth(kind).values(), start=1):
        final = values[-1]
        partial = [value for value in values if 0 < value < final]
        if final <= 0 or len(partial) < MIN_PARTIAL_STATES:
            failures.append(
                f"{label} {number} did not grow while the stream arrived: it showed {values} "
                f"(sampled every {SAMPLE_INTERVAL_S * 1000:.0f} ms; needs >= {MIN_PARTIAL_STATES} "
                f"partial states before the final {final})"
            )
    return failures


def save_screenshots(notebook: Path, page: Page, midstream: tuple[int, bytes] | None) -> list[Path]:
    SCREENSHOTS.mkdir(exist_ok=True)
    end = SCREENSHOTS / f"{notebook.stem}-end.png"
    screenshot_around(page, ".jp-Notebook .streamscope-live", end)
    saved = [end]
    if midstream is not None:
        saved.insert(0, SCREENSHOTS / f"{notebook.stem}-midstream.png")
        saved[0].write_bytes(midstream[1])
    if os.environ.get("STREAMSCOPE_UPDATE_SCREENSHOTS") == "1" and notebook.stem == README_NOTEBOOK:
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        for path in saved:
            (README_IMAGES / f"live-chart-{path.stem.rsplit('-', 1)[1]}.png").write_bytes(path.read_bytes())
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
        started = time.perf_counter()
        run = run_all_cells(page, RUN_TIMEOUT_S, shots.on_sample)
        has_live_chart = run.samples[-1].snapshot["live"] > 0
        final_points = max((count for _, count in run.samples[-1].snapshot["charts"]), default=0)
        midstream = shots.best(final_points) if has_live_chart else None
        saved = save_screenshots(notebook, page, midstream)
    finally:
        context.close()

    failures = list(run.problems)
    if has_live_chart:
        failures += growth_failures(run, "charts", "live chart")
        failures += growth_failures(run, "texts", "streamed text")
        if midstream is None:
            failures.append("no screenshot caught the chart part-way (no partial state while running)")
    if failures:
        context_lines = [f"  console: {line[:300]}" for line in run.console_errors[:8]]
        pytest.fail(
            f"notebooks/{notebook.name} in JupyterLab ({time.perf_counter() - started:.1f} s, "
            f"screenshots: {', '.join(str(p.relative_to(REPO_ROOT)) for p in saved)}):\n"
            + "\n".join(f"- {failure}" for failure in failures)
            + ("\nbrowser console errors:\n" + "\n".join(context_lines) if context_lines else ""),
            pytrace=False,
        )
