"""Fixtures for the browser test: Debian's Chromium driven by Playwright, and a throwaway JupyterLab."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_server import LabServer, running_lab
from playwright.sync_api import Browser, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# This network is closed: without the background-networking flags Chromium keeps opening connections to
# Google's services that are refused. No sandbox, because CI runs as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs notebooks in JupyterLab in a real browser (Chromium)")


# Module scope, so both close right after the browser test's module: Playwright's sync API keeps an
# event loop running in this thread while it is open, and tests that run later call asyncio.run().
# ("package" scope would not do: without an __init__.py this folder is not a package, and the
# fixture would live until the end of the session.)
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    # A copy keeps the committed notebooks (nbval's reference outputs) out of reach of the browser run.
    served = tmp_path_factory.mktemp("lab-root")
    shutil.copytree(
        REPO_ROOT / "notebooks", served / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    with running_lab(served, tmp_path_factory.mktemp("jupyter-home")) as lab:
        yield lab
