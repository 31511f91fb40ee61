"""The replay server's worker processes: bodies beyond the worker's queue, a worker that dies, and a
large recording file read off the loop while it is being saved.

The worker functions are replaced by stand-ins that hold until the test opens a gate
(``held_workers``): each test knows that a worker is busy, and which process it is, without
timing anything. No test here asserts a duration (benchmarks/replay.py measures the schedule).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import held_workers
import httpx2
import pytest
import streamscope.replay.loading
import streamscope.replay.worker
from streamscope.recording import Event, Recording
from streamscope.replay import RecordingIndex, ReplayServer
from streamscope.replay.worker import MAX_WAITING
from synthetic_recordings import CHAT_BODY, synthetic_chat_recording

CHAT = "/chat/completions"
JSON = {"content-type": "application/json"}
# Too many values to read in the loop: read in the worker, which answers 404 with its hint.
COSTLY = ('{"model":"gpt-test",' + ",".join(f'"k{i}":0' for i in range(5_000)) + "}").encode()


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder through which the held worker calls say they started and the test lets them go on."""
    folder = tmp_path / "gate"
    folder.mkdir()
    monkeypatch.setenv(held_workers.GATE_ENV, str(folder))  # inherited by the workers spawned next
    yield folder
    (folder / "open").touch()  # whatever the test's end, no worker stays held


@pytest.fixture
def held_bodies(monkeypatch: pytest.MonkeyPatch, gate: Path) -> Path:
    monkeypatch.setattr(streamscope.replay.worker, "_in_worker", held_workers.held_match)
    return gate


def waited_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.01)


def post(base_url: str, content: bytes) -> httpx2.Response:
    return httpx2.post(base_url + CHAT, content=content, headers=JSON, timeout=60)


def is_hint(answer: httpx2.Response) -> bool:
    return answer.status_code == 404 and "'test-count-to-5'" in answer.json()["error"]["message"]


def test_beyond_the_waiting_bodies_a_503_and_the_loop_answers(held_bodies: Path) -> None:
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        worker = srv._app.state.worker  # what the app reads to refuse (private, read only)
        with ThreadPoolExecutor(MAX_WAITING) as pool:
            waiting = [pool.submit(post, srv.base_url, COSTLY) for _ in range(MAX_WAITING)]
            held_workers.started(held_bodies)  # the first is in the worker, held
            waited_for(lambda: worker.busy)
            refused = post(srv.base_url, COSTLY)
            assert refused.status_code == 503
            error = refused.json()["error"]
            assert error["type"] == "server_error" and "send this one again later" in error["message"]
            assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200  # the loop answers
            (held_bodies / "open").touch()
            assert all(is_hint(answer.result(timeout=120)) for answer in waiting)
        assert is_hint(post(srv.base_url, COSTLY))  # room again


def test_a_worker_killed_reading_a_body_is_a_500_then_replaced(
    held_bodies: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(post, srv.base_url, COSTLY)
            (pid,) = held_workers.started(held_bodies)
            assert pid != os.getpid()
            os.kill(pid, signal.SIGKILL)
            killed = answer.result(timeout=60)
        assert killed.status_code == 500
        error = killed.json()["error"]
        assert error["type"] == "server_error" and "body reader stopped" in error["message"]
        (held_bodies / "open").touch()
        assert is_hint(post(srv.base_url, COSTLY))  # a new worker
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_a_worker_killed_while_idle_is_replaced(held_bodies: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (held_bodies / "open").touch()  # held calls only say which process they ran in
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        assert is_hint(post(srv.base_url, COSTLY))
        (pid,) = held_workers.started(held_bodies)
        os.kill(pid, signal.SIGKILL)
        # Found dead before the next body is sent, it is replaced for that body; found dead only
        # after (the pool learns of it in its own thread), that body's answer is the 500.
        first = post(srv.base_url, COSTLY)
        died_reading = first.status_code == 500 and first.json()["error"]["type"] == "server_error"
        assert is_hint(first) or died_reading
        assert is_hint(post(srv.base_url, COSTLY))
        assert len(held_workers.started(held_bodies, 2)) == 2  # a second process read them
    assert "Traceback" not in capfd.readouterr().err


def large_recording(name: str, body: dict, chunks: int = 4000) -> Recording:
    """A test-only stream of ``chunks`` chunks (about 230 bytes each in a file): over what the loop reads."""
    rec = synthetic_chat_recording(name=name, body=body)
    assert rec.events is not None
    texts = [rec.events[0].raw, *[rec.events[1].raw] * chunks, rec.events[-1].raw]
    return dataclasses.replace(rec, events=[Event(0.001 * i, text) for i, text in enumerate(texts)])


def test_a_large_recording_saved_while_serving_is_read_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: Path
) -> None:
    # Issue 16: a changed 50 MB recording was parsed in the loop, stalling every stream ~1 s.
    monkeypatch.setattr(streamscope.replay.loading, "read_packed", held_workers.held_read)
    folder = tmp_path / "recordings"
    folder.mkdir()
    synthetic_chat_recording().save(folder / "small.json")
    other = {**CHAT_BODY, "temperature": 0.5}
    big = large_recording("big", other)
    with ReplayServer(speed=0, recordings=folder) as srv:
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
        big.save(folder / "big.json")
        assert (folder / "big.json").stat().st_size > streamscope.replay.loading.INLINE_READ_BYTES
        # The first request after the save starts the reading; it and the next are answered from
        # the recordings read before, while big.json is held in the reading process.
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
        (pid,) = held_workers.started(gate)
        assert pid != os.getpid()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx2.post, srv.base_url + CHAT, json=other, timeout=60)
            waited_for(lambda: srv._app.state.worker.waiting == 1)  # it waits for the reading
            small = httpx2.post(srv.base_url + CHAT, json=CHAT_BODY)
            assert small.content == synthetic_chat_recording().sse_bytes()
            assert not pending.done()  # only big.json answers it
            (gate / "open").touch()
            answer = pending.result(timeout=60)
        assert answer.status_code == 200 and answer.content == big.sse_bytes()
        served = srv.recording("big")
        assert served is not None and served.events == big.events


def test_a_large_recording_replaced_is_freed_in_pieces_unless_still_held(tmp_path: Path) -> None:
    """Freed at once, a replaced 50 MB recording's objects held the GIL for 20-45 ms: the reading
    thread takes apart what only the old entry held, and leaves whole what someone still holds."""
    big = large_recording("big", CHAT_BODY)
    big.save(tmp_path / "big.json")
    index = RecordingIndex(tmp_path)
    (held,) = index.recordings()  # a caller keeps this one
    assert held.events is not None
    events = len(held.events)
    for later in (0.5, 0.7):  # rewritten in place twice: the first replaced entry is held, the second not
        moved = [dataclasses.replace(event, t=event.t + later) for event in big.events or []]
        rewritten = dataclasses.replace(big, events=moved)
        rewritten.save(tmp_path / "big.json")
        (current,) = index.recordings()  # another thread than the loop's: waits for the reading
        assert current.events is not None and current.events[0].t == later
        if later == 0.5:
            second = weakref.ref(current.events[0])
            del current
    assert len(held.events) == events  # still held here: left whole
    assert second() is None  # the entry only the index held: freed
