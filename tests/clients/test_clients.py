"""Real client libraries stream recordings through the replay server, each as its docs show it.

Each client streams a recording's request unmodified (tests/clients/drive.py spells it the
library's way; the Vercel AI SDK runs under Node, tests/clients/node/stream.mjs) at the
recorded pace. The checks: the text is exactly the recorded text, and the pace is kept,
judged by what a busy machine only delays: the text came in pieces, the first before the
server had sent its last event (a client held up for the whole recording, 3-4 s, would fail
this), and the end no earlier than the recording's last event (the server cannot send early;
the client's clock starts before the request leaves). How close to the recorded times the
text arrives is measured by benchmarks/clients.py, not asserted here.

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
    line = server.sent_line()
    assert line is not None
    assert (line["recording"], line["state"]) == (name, "complete")
    # The pace: the client's clock starts before its request arrives, so a time on it below the
    # server's last write (timed from the request's arrival) is before that write. Text came before
    # the server had finished sending, and the end no sooner than the recording's (nothing is sent early).
    assert pieces[0]["t"] < line["last_write_s"]
    assert len(pieces) >= 2  # in pieces; pydantic-ai gathers what arrives in each 0.1 s (debounce_by)
    assert end >= recorded.end_s
