"""Where the tests find the read-only files of ``../shared`` (the seed and the conformance corpus).

Tests that need them ask for a fixture (``seed_path``, ``corpus_dir``, ``corpus_streams``) or
take a ``corpus_stream`` argument, which runs the test once per corpus stream (by name);
``@pytest.mark.corpus(kind=..., prefix=...)`` narrows that to one kind of stream ("chat",
"text" or "responses") or to names with a prefix. Where ``../shared`` is absent, those tests
are skipped, never failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import CORPUS, NO_CORPUS, SEED


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus(kind=None, prefix=''): which conformance streams a corpus_stream test runs on"
    )


def _kind(path: Path) -> str:
    first = path.read_text(encoding="utf-8").split("data: ", 1)[1].split("\n", 1)[0]
    event = json.loads(first)
    if "type" in event:
        return "responses"
    return "text" if event.get("object") == "text_completion" else "chat"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "corpus_stream" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("corpus")
    kind, prefix = (marker.kwargs.get("kind"), marker.kwargs.get("prefix", "")) if marker else (None, "")
    names = [
        p.stem for p in sorted(CORPUS.glob("*.sse")) if p.stem.startswith(prefix) and kind in (None, _kind(p))
    ]
    metafunc.parametrize(
        "corpus_stream", names or [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPUS))]
    )


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The 2023 Cookbook notebook's text, as the seed of this project."""
    if not SEED.exists():
        pytest.skip(f"the seed is not here ({SEED})")
    return SEED


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder of the conformance corpus: NAME.sse (raw bodies) and NAME.request.json."""
    if not CORPUS.is_dir():
        pytest.skip(NO_CORPUS)
    return CORPUS


@pytest.fixture(scope="session")
def corpus_streams(corpus_dir: Path) -> list[Path]:
    """The corpus's raw SSE bodies, in name order."""
    return sorted(corpus_dir.glob("*.sse"))
