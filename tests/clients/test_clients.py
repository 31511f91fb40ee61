"""Real client libraries stream recordings through the replay server, each as its docs show it.

Each client streams a recording's request unmodified (tests/clients/drive.py spells it the
library's way; the Vercel AI SDK runs under Node, tests/clients/node/stream.mjs) at the
recorded pace. The checks: the text is exactly the recorded text, and the pace is kept,
judged by what cannot flake on a busy machine: the text came in many pieces, the first one
well before the end, and the end no earlier than the recording's last event (the server
cannot send early; the client's clock starts before the request leaves). How close to the
recorded times the text arrives is measured by benchmarks/clients.py, not asserted here.

The clients live in their own environments: .venv-clients (tests/clients/requirements.txt)
and tests/clients/node/node_modules (package-lock.json), built by `make clients`; where one is
absent, its tests skip and say how to build it.
"""

from __future__ import annotations

import pytest
from client_runs import CASES, missing, recorded_text, stream
from streamscope.recording import load_recording
from streamscope.replay import ReplayServer


@pytest.fixture(scope="module")
def server():
    with ReplayServer(speed=1) as srv:
        yield srv


@pytest.mark.parametrize(("client", "name"), CASES, ids=[f"{c}-{n.split('-')[0]}" for c, n in CASES])
def test_a_client_streams_the_recording_at_its_pace(server: ReplayServer, client: str, name: str) -> None:
    if (reason := missing(client)) is not None:
        pytest.skip(reason)
    recording = load_recording(name)
    recorded = recorded_text(recording)
    ((pieces, end),) = stream(client, server.base_url, recording)
    assert "".join(p["text"] for p in pieces) == recorded.text
    # pydantic-ai's stream_text gathers what arrived in each 0.1 s (its debounce_by default): 20 pieces here.
    assert len(pieces) >= 10
    assert pieces[0]["t"] < end / 2
    assert end >= recorded.end_s
    line = next(line for line in reversed(server.sent) if line["recording"] == name)
    assert line["state"] == "complete"
