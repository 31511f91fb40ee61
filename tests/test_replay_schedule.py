"""The replay server keeps its schedule: sends by absolute deadline, with TCP_NODELAY on every connection."""

from __future__ import annotations

import asyncio
import socket
import statistics

import openai
import pytest
from streamscope.replay import ReplayServer, sending
from streamscope.replay.server import _bind, _precise_loop

from tests.synthetic_recordings import CHAT_BODY, finished_line, synthetic_chat_recording

STEP_S, EXTRA_S = 0.02, 0.01  # events 20 ms apart; each wake-up made 10 ms late


def test_a_late_wake_up_is_not_carried_over_to_the_next_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write waits EXTRA_S past its due time; accumulated sleeps would make the last of the
    12 events 12 x 10 ms late, absolute deadlines keep each one about 10 ms late."""
    on_time = sending._sleep_until

    async def late(due: float) -> None:
        await on_time(due)
        await asyncio.sleep(EXTRA_S)

    monkeypatch.setattr(sending, "_sleep_until", late)
    offsets = [0.05 + STEP_S * i for i in range(12)]
    with ReplayServer(recordings=[synthetic_chat_recording(offsets=offsets)]) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="test")
        for _ in sdk.chat.completions.create(**CHAT_BODY):
            pass
        line = finished_line(server)
    assert line["due_s"] == pytest.approx(offsets)
    lags = [s - d for s, d in zip(line["sent_s"], line["due_s"], strict=True)]
    assert statistics.median(lags) >= EXTRA_S
    assert lags[-1] < 6 * EXTRA_S  # not 12 x EXTRA_S: the schedule is kept, not the gaps


def test_every_accepted_connection_has_tcp_nodelay() -> None:
    """The replay server's listening socket names IPPROTO_TCP, so asyncio sets TCP_NODELAY on each
    connection it accepts (without it, Nagle holds a chunk behind the one before until an ACK)."""
    listening = _bind("127.0.0.1", 0)
    port = listening.getsockname()[1]
    seen: list[int] = []

    class Note(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_three() -> None:
        server = await asyncio.get_running_loop().create_server(Note, sock=listening)
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        server.close()

    with asyncio.Runner(loop_factory=_precise_loop) as runner:
        runner.run(asyncio.wait_for(accept_three(), 10))
    assert len(seen) == 3 and all(seen)
