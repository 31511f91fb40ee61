"""The recorder, against a loopback server (the replay server plays the live API), with a canary key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from streamscope.cli import main
from streamscope.errors import BackendError
from streamscope.recorder import SCRUBBED, record
from streamscope.recording import Recording
from streamscope.replay import ReplayServer
from streamscope.sse import EventSplitter
from synthetic_recordings import CHAT_BODY, PROMPT, synthetic_chat_recording, synthetic_completion_recording

CANARY = "sk-canary-5f1e0c9a7b3d4e2f"
LEAKY_HEADERS = {
    "content-type": "text/event-stream",
    "x-request-id": "req_test",
    "openai-organization": "org-secret",
    "openai-project": "proj_secret",
    "set-cookie": "__cf_bm=secret",
    "x-api-key-hint": "secret",
}


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> ReplayServer:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.delenv("STREAMSCOPE_BACKEND", raising=False)
    chat = synthetic_chat_recording()
    chat.headers = dict(LEAKY_HEADERS)
    # A server that echoes the key back: the recorder must not write it down.
    echo = synthetic_chat_recording("test-echo", body={**CHAT_BODY, "model": "gpt-echo"})
    echo.events = [*echo.events[:1], type(echo.events[0])(0.07, f'data: {{"echo": "{CANARY}"}}\n\n')]
    shorthand = synthetic_chat_recording("test-shorthand", body={**CHAT_BODY, "temperature": None})
    del shorthand.request["body"]["temperature"]
    recordings = [chat, echo, shorthand, synthetic_completion_recording()]
    with ReplayServer(speed=0, recordings=recordings) as server:
        yield server


def _assert_canary_nowhere(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path


def test_a_recorded_stream_replays_identically(live: ReplayServer, tmp_path: Path) -> None:
    original = synthetic_chat_recording()
    rec = record("/v1/chat/completions", CHAT_BODY, name="rec-chat", out_dir=tmp_path, backend=live.base_url)
    assert [e.raw for e in rec.events or []] == [e.raw for e in original.events or []]
    assert all(b.t >= a.t for a, b in zip(rec.events or [], (rec.events or [])[1:], strict=False))
    saved = Recording.load(tmp_path / "rec-chat.json")
    assert saved.to_dict() == rec.to_dict()
    assert saved.provenance["method"] == "recorded"
    assert saved.provenance["server"] == "127.0.0.1"
    assert saved.provenance["model"] == "gpt-test-0001"
    assert saved.provenance["timing_resolution_s"] == 1e-6
    assert saved.headers["content-type"] == "text/event-stream"
    assert saved.headers["x-request-id"] == "req_test"
    assert not set(saved.headers) & {"openai-organization", "openai-project", "set-cookie", "x-api-key-hint"}
    with ReplayServer(speed=0, recordings=tmp_path) as replay:
        again = httpx2.post(replay.base_url + "/chat/completions", json=CHAT_BODY)
    assert again.content == original.sse_bytes()
    _assert_canary_nowhere(tmp_path)


def test_the_key_is_scrubbed_from_what_the_server_sends_back(live: ReplayServer, tmp_path: Path) -> None:
    body = {**CHAT_BODY, "model": "gpt-echo"}
    rec = record("/v1/chat/completions", body, name="rec-echo", out_dir=tmp_path, backend=live.base_url)
    assert SCRUBBED in (rec.events or [])[-1].raw
    _assert_canary_nowhere(tmp_path)


def test_a_non_streamed_response_is_recorded_with_its_elapsed(live: ReplayServer, tmp_path: Path) -> None:
    original = synthetic_completion_recording()
    rec = record(
        "completions", original.request["body"], name="rec-single", out_dir=tmp_path, backend=live.base_url
    )
    assert rec.events is None
    assert rec.body == original.body
    assert rec.path == "/v1/completions"
    assert isinstance(rec.elapsed, float)
    assert rec.provenance["model"] == "gpt-test-0001"
    _assert_canary_nowhere(tmp_path)


def test_record_command_with_the_shorthand(live: ReplayServer, tmp_path: Path, capsys) -> None:
    argv = ["record", "--backend", live.base_url, "--model", "gpt-test", "--message", PROMPT]
    assert main([*argv, "--name", "rec-cli", "--out", str(tmp_path)]) == 0
    assert "recorded rec-cli: 12 events" in capsys.readouterr().out
    assert Recording.load(tmp_path / "rec-cli.json").request["body"]["messages"][0]["content"] == PROMPT
    _assert_canary_nowhere(tmp_path)


def test_record_command_names_what_answered_behind_a_loopback_url(live: ReplayServer, tmp_path: Path) -> None:
    argv = ["record", "--backend", live.base_url, "--model", "gpt-test", "--message", PROMPT, "--name", "rec"]
    proxy = ["--server", "a proxy 1.0 -> a model server", "--source", "a proxy", "--note", "Threads: 2."]
    assert main([*argv, *proxy, "--out", str(tmp_path)]) == 0
    rec = Recording.load(tmp_path / "rec.json")
    assert rec.provenance["server"] == "a proxy 1.0 -> a model server"
    assert rec.provenance["source"] == "a proxy"
    assert rec.provenance["notes"].endswith(" Threads: 2.")
    assert "recorded from a proxy 1.0 -> a model server" in rec.label


def test_record_command_adds_what_the_wire_does_not_show(live: ReplayServer, tmp_path: Path) -> None:
    server = {"server": "llama-cpp-python 0.3.36 on 127.0.0.1", "model_sha256": "b179c952", "threads": 1}
    (tmp_path / "server.json").write_text(json.dumps(server))
    argv = [
        "record",
        "--backend",
        live.base_url,
        "--model",
        "gpt-test",
        "--message",
        PROMPT,
        "--name",
        "rec-p",
    ]
    notes = "Repeats the tool call's name on every chunk."
    argv += ["--provenance", str(tmp_path / "server.json"), "--note", notes, "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    provenance = Recording.load(tmp_path / "out" / "rec-p.json").provenance
    assert {key: provenance[key] for key in server} == server
    assert provenance["method"] == "recorded"
    assert provenance["notes"].startswith("streamscope ") and provenance["notes"].endswith(notes)
    assert "perf_counter() (" in provenance["notes"]  # the clock and its resolution


def test_record_command_with_a_body_file_and_an_error(live: ReplayServer, tmp_path: Path, capsys) -> None:
    body_file = tmp_path / "body.json"
    body_file.write_text(json.dumps({**CHAT_BODY, "model": "never-recorded"}))
    argv = ["record", "--backend", live.base_url, "--body", str(body_file), "--name", "rec-404"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert Recording.load(tmp_path / "out" / "rec-404.json").status == 404
    _assert_canary_nowhere(tmp_path)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--name", "x"], "give --body FILE"),
        (["--name", "x", "--body", "missing.json"], "cannot read --body"),
        (
            ["--name", "x", "--model", "m", "--message", "hi", "--provenance", "missing.json"],
            "cannot read --provenance",
        ),
        (["--name", "x", "--model", "m", "--message", "hi", "--body", "-"], "not both"),
        (["--name", "../x", "--model", "m", "--message", "hi"], "recording name"),
        (["--name", "x", "--model", "m", "--message", "hi", "--backend", "replay"], "needs a live server"),
    ],
)
def test_record_command_bad_input_is_one_clear_line(capsys, extra: list[str], fragment: str) -> None:
    assert main(["record", *extra]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ReplayServer(recordings=[]) as gone:
        url = gone.base_url  # a loopback port that is closed once the block ends
    with pytest.raises(Exception, match="failed: ConnectError"):
        record("/v1/chat/completions", CHAT_BODY, name="x", out_dir=tmp_path, backend=url)
    with pytest.raises(BackendError):
        record("/v1/chat/completions", CHAT_BODY, name="x", out_dir=tmp_path, backend="replay")


def test_events_are_cut_at_blank_lines_whatever_the_reads() -> None:
    stream = b"data: a\n\ndata: b\r\n\r\n: comment\rdata: c\r\r"
    expected = [b"data: a\n\n", b"data: b\r\n\r\n", b": comment\rdata: c\r\r"]
    for size in (1, 2, 3, 5, len(stream)):
        splitter = EventSplitter()
        events = [e for i in range(0, len(stream), size) for e in splitter.feed(stream[i : i + size])]
        assert events == expected, size
        assert splitter.buffer == b""
