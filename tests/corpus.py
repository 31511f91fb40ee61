"""The read-only files of ``../shared`` that tests read: the seed and the two conformance corpora.

``conftest.py`` turns them into fixtures that skip where ``../shared`` is absent; test modules
that need a path or a stream's events at collection time import them from here.
``STREAMSCOPE_SHARED`` names another folder in its place (``.ci/run`` points it at an empty one to
prove that every test needing ``../shared`` skips without it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from streamscope.assemble import Assembler
from streamscope.sse import SSEDecoder

SHARED = Path(os.environ.get("STREAMSCOPE_SHARED") or Path(__file__).resolve().parents[2] / "shared")
SEED = SHARED / "seed" / "how_to_stream_completions.txt"
CORPUS = SHARED / "conformance" / "openai-streams"
COMPAT = SHARED / "conformance" / "compat-streams"
NO_CORPUS = f"the conformance corpus ({CORPUS}) is not here"
NO_COMPAT = f"the compat corpus ({COMPAT}) is not here"
CORPUS_STREAMS = sorted(CORPUS.glob("*.sse"))
COMPAT_STREAMS = sorted(COMPAT.glob("*.sse"))


def read_stream(folder: Path, name: str, missing: str) -> bytes:
    """The raw body of stream ``name`` in ``folder``; without it the test skips, saying ``missing``."""
    path = folder / f"{name}.sse"
    if not path.exists():
        pytest.skip(missing)
    return path.read_bytes()


def payloads(raw: bytes) -> list[Any]:
    """Each event's data, parsed (``"[DONE]"`` kept as the string)."""
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.close()
    return [e.data if e.data.startswith("[DONE]") else json.loads(e.data) for e in events]


def kind(raw: bytes) -> str:
    """``"chat"``, ``"text"`` (legacy completions) or ``"responses"``, from a stream's first event."""
    first = next(p for p in payloads(raw) if isinstance(p, dict))
    if "type" in first:
        return "responses"
    return "text" if first.get("object") == "text_completion" else "chat"


def sdk_objects(raw: bytes) -> list[Any]:
    """The stream's events as the SDK's own models, as iterating a ``stream=True`` call yields them."""
    from openai._models import construct_type
    from openai.types import Completion
    from openai.types.chat import ChatCompletionChunk
    from openai.types.responses import ResponseStreamEvent

    type_ = {"chat": ChatCompletionChunk, "text": Completion, "responses": ResponseStreamEvent}[kind(raw)]
    return [construct_type(type_=type_, value=p) for p in payloads(raw) if isinstance(p, dict)]


def assembled_both_ways(raw: bytes) -> tuple[Assembler, Assembler]:
    """Assemblers fed the stream's JSON events and, separately, the same events as SDK models."""
    from_json, from_models = Assembler(), Assembler()
    for payload in payloads(raw):
        from_json.feed(payload)
    for model in sdk_objects(raw):
        from_models.feed(model)
    return from_json, from_models
