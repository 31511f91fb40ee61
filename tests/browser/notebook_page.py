"""Drive one notebook in JupyterLab like a user does, and watch what the page shows while it runs.

The DOM hooks come from streamscope.live: a live view is an element with class `streamscope-live`, holding
a plotly FigureWidget with class `streamscope-live-chart` and a text widget with class
`streamscope-live-text`. Each element gets a stable id the first time the page sees it, so that growth
is followed on the same element (updated in place) rather than on whatever element happens to be first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_server import LabServer
from playwright.sync_api import Page

SAMPLE_INTERVAL_S = 0.1
KERNEL_READY_TIMEOUT_S = 60.0

# The page-side probes, each one JavaScript arrow function (see the comments in the files).
SNAPSHOT_JS = (Path(__file__).parent / "snapshot.js").read_text()
PROBLEMS_JS = (Path(__file__).parent / "problems.js").read_text()


@dataclass
class Sample:
    seconds: float
    snapshot: dict[str, Any]

    @property
    def finished(self) -> bool:
        prompts = self.snapshot["prompts"]
        return (
            self.snapshot["kernel"] == "idle"
            and bool(prompts)
            and all(p.strip("[]:").isdigit() for p in prompts)
        )


@dataclass
class NotebookRun:
    samples: list[Sample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def growth(self, kind: str) -> dict[int, list[int]]:
        """For each chart or text element (by page id), the values seen, in order, without repeats."""
        series: dict[int, list[int]] = {}
        for sample in self.samples:
            for element_id, value in sample.snapshot[kind]:
                seen = series.setdefault(element_id, [])
                if not seen or seen[-1] != value:
                    seen.append(value)
        return series


def open_notebook(page: Page, lab: LabServer, notebook_path: str) -> None:
    """Open the notebook and wait until its kernel is started, connected to this page, and idle."""
    page.goto(lab.page_url(f"lab/tree/{notebook_path}"))
    deadline = time.monotonic() + KERNEL_READY_TIMEOUT_S
    # The page's indicator says "idle" once before any kernel exists, so ask the server first.
    while not any(
        session["path"] == notebook_path
        and session["kernel"]["connections"] > 0
        and session["kernel"]["execution_state"] == "idle"
        for session in lab.get_json("api/sessions")
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no idle kernel connected to {notebook_path} after {KERNEL_READY_TIMEOUT_S:.0f} s"
            )
        page.wait_for_timeout(250)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=10_000)


def run_menu_command(page: Page, menu: str, command: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def run_all_cells(
    page: Page, timeout_s: float, on_sample: Callable[[NotebookRun, Sample], None]
) -> NotebookRun:
    """Clear old outputs, Run > Run All Cells, and sample the page until every cell has run."""
    run = NotebookRun()
    page.on("console", lambda msg: msg.type == "error" and run.console_errors.append(msg.text))
    page.on("pageerror", lambda error: run.console_errors.append(f"uncaught: {error}"))
    run_menu_command(page, "Edit", "editmenu:clear-all")
    start = time.perf_counter()
    run_menu_command(page, "Run", "runmenu:run-all")
    while True:
        sample = Sample(time.perf_counter() - start, page.evaluate(SNAPSHOT_JS))
        run.samples.append(sample)
        on_sample(run, sample)
        if sample.finished:
            break
        if sample.seconds > timeout_s:
            raise TimeoutError(f"cells still running after {timeout_s:.0f} s: {sample.snapshot['prompts']}")
        page.wait_for_timeout(SAMPLE_INTERVAL_S * 1000)
    run.problems = page.evaluate(PROBLEMS_JS)
    return run


def screenshot_around(page: Page, selector: str, path: Path) -> None:
    """Scroll the first element matching `selector` to the middle of the view and save the window."""
    page.evaluate(
        "(selector) => document.querySelector(selector)?.scrollIntoView({block: 'center'})", selector
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path)
