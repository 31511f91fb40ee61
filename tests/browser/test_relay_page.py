"""Notebook 08 in JupyterLab: the relay's page runs in its iframe, its text grows while the reply streams,
the page's paint times reach the kernel (the hop chart is drawn from them), and its Stop button stops the
upstream request.

The page is another origin (the relay's port), so the notebook's DOM cannot see into it; Playwright reads
each frame itself, polling from Python while the cells run.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from lab_server import LabServer
from notebook_page import open_notebook, run_all_cells
from playwright.sync_api import Browser, Frame
from playwright.sync_api import Error as PlaywrightError

NOTEBOOK = "notebooks/08_streaming_to_a_web_page.ipynb"
RUN_TIMEOUT_S = 180.0
MIN_STEPS = 3

pytestmark = pytest.mark.browser


def relay_frames(frames: list[Frame]) -> list[Frame]:
    """The relay's pages, in the order the notebook showed them (the main one, then the one that stops)."""
    return [frame for frame in frames if "autostart=1" in frame.url]


def frame_state(frame: Frame) -> tuple[int, str] | None:
    try:
        return frame.evaluate("() => [document.getElementById('text').textContent.length, "
                              "document.getElementById('status').textContent]")  # fmt: skip
    except PlaywrightError:  # the frame is loading, or went away
        return None


def test_the_relay_page_streams_reports_and_stops_in_jupyterlab(
    browser: Browser, jupyter_lab: LabServer
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        open_notebook(page, jupyter_lab, NOTEBOOK)
        lengths: dict[str, list[int]] = {}  # per frame URL: the text lengths seen, in order

        def on_poll(_: dict[str, Any]) -> None:
            for frame in relay_frames(page.frames):
                if frame.url not in lengths:  # a frame out of sight gets no animation frames: show it
                    with contextlib.suppress(PlaywrightError):
                        frame.frame_element().scroll_into_view_if_needed(timeout=2000)
                state = frame_state(frame)
                if state is not None and (not lengths.get(frame.url) or lengths[frame.url][-1] != state[0]):
                    lengths.setdefault(frame.url, []).append(state[0])

        run = run_all_cells(page, RUN_TIMEOUT_S, on_poll, [])
        assert not run.problems, "\n".join(run.problems)
        frames = relay_frames(page.frames)
        assert len(frames) == 2, (
            f"expected the main page and the stopping page, got {[f.url for f in frames]}"
        )
        main, stopping = frames

        grown = [n for n in lengths.get(main.url, []) if n > 0]
        final = frame_state(main)
        assert final is not None and final[1].startswith("done: 303 events"), final
        partial = [n for n in grown if n < final[0]]
        assert len(partial) >= MIN_STEPS, f"the page's text went {grown} (final {final[0]} characters)"

        deadline = time.monotonic() + 10
        while (stop := frame_state(stopping)) is None or not stop[1].startswith("stopped"):
            assert time.monotonic() < deadline, f"the stopping page says {stop}"
            page.wait_for_timeout(200)
        assert stop[1] == "stopped after 40 events"

        outputs = page.locator(".jp-OutputArea-output").all_text_contents()
        text = "\n".join(outputs)
        assert "paint times from: page painted" in text, "the kernel did not get the page's paint times"
        assert "page painted" in text and "replay server: client disconnected" in text
        assert "left open in the relay: tasks [] connections {'busy': 0" in text
        charts = page.locator(".jp-OutputArea-output img")
        assert charts.count() >= 2, "the hop charts were not drawn"
    finally:
        page.close()
