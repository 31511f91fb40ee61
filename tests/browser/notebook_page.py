"""Drive one notebook in JupyterLab like a user does, and record what the page shows while it runs.

The DOM hooks come from streamscope.charts: a live view is an element with class `streamscope-live`, holding
a plotly FigureWidget with class `streamscope-live-chart` and a text widget with class
`streamscope-live-text`. snapshot.js reads them; problems.js lists what a user would see as broken.

Two observers: Python polls the page (to know when the run is over and to take screenshots), and a timer
inside the page records every state change. The in-page record is the one the growth checks use: when
the browser is busy (a 2-core machine), a poll from Python can wait a second for an answer, while the
page's own timer still sees each state the page reached.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab_server import LabServer
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

POLL_INTERVAL_S = 0.1
RECORD_INTERVAL_MS = 50
KERNEL_READY_TIMEOUT_S = 60.0
# After the last cell, widget views that are still loading get this long to appear (then they count
# as broken): on a busy machine plotly.js can take seconds to load.
SETTLE_TIMEOUT_S = 30.0

# The page-side probes, each one JavaScript arrow function (see the comments in the files).
SNAPSHOT_JS = (Path(__file__).parent / "snapshot.js").read_text()
PROBLEMS_JS = (Path(__file__).parent / "problems.js").read_text()

START_RECORDER_JS = f"""() => {{
  const snapshot = {SNAPSHOT_JS};
  const record = (window.__streamscopeRecord = [snapshot()]);  // the first state: just before Run All
  let last = '';
  window.__streamscopeRecorder = setInterval(() => {{
    const state = snapshot();
    const key = JSON.stringify([state.prompts, state.charts, state.texts, state.races]);
    if (key !== last) record.push(state);
    last = key;
  }}, {RECORD_INTERVAL_MS});
}}"""
STOP_RECORDER_JS = "() => { clearInterval(window.__streamscopeRecorder); return window.__streamscopeRecord; }"

# The plain-text outputs that start like one of the given texts (a widget's text/plain: what JupyterLab
# shows instead of the widget when it has no widget manager).
PLAIN_TEXT_WIDGETS_JS = """(texts) =>
  [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output[data-mime-type="text/plain"]')]
    .map((out) => out.textContent.trim())
    .filter((text) => texts.some((widget) => text.startsWith(widget)))"""

# Every live view holds a drawn chart and its text, and no widget is still loading.
SETTLED_JS = """() =>
  [...document.querySelectorAll('.jp-Notebook .streamscope-live')].every((box) =>
    box.querySelector('.streamscope-live-chart .main-svg') && box.querySelector('.streamscope-live-text'))
  && ![...document.querySelectorAll('.jp-OutputArea-output, .jp-OutputArea-output *')]
    .some((el) => el.childElementCount === 0 && el.textContent.startsWith('Loading widget'))
"""


def finished(snapshot: dict[str, Any]) -> bool:
    """No cell is running or queued, and the kernel is idle (Run All leaves the cells after an error
    unrun; problems.js reports them)."""
    return snapshot["kernel"] == "idle" and not any("*" in prompt for prompt in snapshot["prompts"])


def started(snapshot: dict[str, Any]) -> bool:
    """A cell is queued, running, or has run since the outputs were cleared."""
    return any(prompt.strip("[]: ") for prompt in snapshot["prompts"])


@dataclass
class Growth:
    """What the page showed of one chart (points) or text (characters); seconds are from Run All."""

    while_running: list[int] = field(default_factory=list)  # distinct values while cells ran, in order
    final: int = 0
    first_shown_s: float | None = None  # first non-empty state
    cells_done_s: float | None = None  # first state seen after the last cell had run


@dataclass
class NotebookRun:
    seconds: float = 0.0
    states: list[dict[str, Any]] = field(default_factory=list)  # recorded in the page, in order
    problems: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def growth(self, kind: str) -> dict[int, Growth]:
        """For each chart or text element, by page id, in the order the page showed them."""
        start = self.states[0]["t"] if self.states else 0.0
        series: dict[int, Growth] = {}
        for state in self.states:
            for element_id, value, running in state[kind]:
                growth = series.setdefault(element_id, Growth())
                if running and (not growth.while_running or growth.while_running[-1] != value):
                    growth.while_running.append(value)
                if value > 0 and growth.first_shown_s is None:
                    growth.first_shown_s = state["t"] - start
                if not running and growth.cells_done_s is None:
                    growth.cells_done_s = state["t"] - start
                growth.final = value
        return series

    def race_growth(self) -> dict[int, RaceGrowth]:
        """For each race chart (several lines), by page id: its lines' lengths over the run."""
        series: dict[int, RaceGrowth] = {}
        for state in self.states:
            for element_id, lengths, running in state.get("races", []):
                growth = series.setdefault(element_id, RaceGrowth())
                if running and (not growth.while_running or growth.while_running[-1] != lengths):
                    growth.while_running.append(lengths)
                growth.final = lengths
        return series


@dataclass
class RaceGrowth:
    """What the page showed of one race chart: the length of each of its lines, per recorded state."""

    while_running: list[list[int]] = field(default_factory=list)  # distinct states while cells ran
    final: list[int] = field(default_factory=list)

    def together(self) -> list[list[int]]:
        """The states, while cells ran, in which two lines or more were part-drawn at once."""
        return [
            lengths
            for lengths in self.while_running
            if len(lengths) == len(self.final)
            and sum(0 < n < final for n, final in zip(lengths, self.final, strict=True)) >= 2
        ]


def open_notebook(page: Page, lab: LabServer, notebook_path: str) -> None:
    """Open the notebook and wait until its kernel is started, connected to this page, and idle."""
    # `reset` starts from an empty workspace: no tab restored from the previous notebook.
    page.goto(lab.page_url(f"lab/tree/{notebook_path}") + "&reset")
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
                f"no idle kernel connected to {notebook_path} after {KERNEL_READY_TIMEOUT_S:.0f} s; "
                f"JupyterLab's log ends with:\n{lab.log_tail()}"
            )
        page.wait_for_timeout(250)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=10_000)


def run_menu_command(page: Page, menu: str, command: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def run_all_cells(
    page: Page, timeout_s: float, on_poll: Callable[[dict[str, Any]], None], widget_texts: list[str]
) -> NotebookRun:
    """Clear old outputs, Run > Run All Cells, and watch the page until every cell has run.

    `on_poll` gets each snapshot Python takes while cells are running (for screenshots).
    `widget_texts` are the text/plain forms of the notebook's widgets: one shown as such is a problem.
    `widget_texts` are the text/plain forms of the notebook's widgets: one shown as such is a problem.
    """
    run = NotebookRun()
    page.on("console", lambda msg: msg.type == "error" and run.console_errors.append(msg.text))
    page.on("pageerror", lambda error: run.console_errors.append(f"uncaught: {error}"))
    run_menu_command(page, "Edit", "editmenu:clear-all")
    page.evaluate(START_RECORDER_JS)
    start = time.perf_counter()
    run_menu_command(page, "Run", "runmenu:run-all")
    while not started(snapshot := page.evaluate(SNAPSHOT_JS)) or not finished(snapshot):
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"cells still running after {timeout_s:.0f} s: {snapshot['prompts']}")
        on_poll(snapshot)
        page.wait_for_timeout(POLL_INTERVAL_S * 1000)
    run.seconds = time.perf_counter() - start
    # What is still missing after that is reported by problems.js.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(SETTLED_JS, timeout=SETTLE_TIMEOUT_S * 1000, polling=100)
    run.states = page.evaluate(STOP_RECORDER_JS)
    run.problems = page.evaluate(PROBLEMS_JS) + [
        f"a widget is shown as plain text (the page has no widget manager?): {text[:200]}"
        for text in page.evaluate(PLAIN_TEXT_WIDGETS_JS, widget_texts)
    ]
    return run


def screenshot_around(page: Page, selector: str, index: int = 0) -> bytes:
    """Scroll the index-th element matching `selector` (if any) to the middle of the view; take the window."""
    page.evaluate(
        "([selector, i]) => document.querySelectorAll(selector)[i]?.scrollIntoView({block: 'center'})",
        [selector, index],
    )
    return page.screenshot()
