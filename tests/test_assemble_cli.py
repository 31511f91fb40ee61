"""``python -m streamscope assemble PATH``: exit codes, stdout and stderr as the CLI contract says.

0 complete; 3 ended early (partial object printed, one-line reason on stderr); 4 an
error event (partial object printed, the API's message on stderr); 2 not an SSE stream
of JSON events (one line on stderr, nothing on stdout, no traceback). Most cases run
the CLI in-process; a few run it as a real process (stdin, startup imports).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamscope.assemble import assemble_sse
from streamscope.cli import main

ERROR_STREAM = "j__vercel-responses-insufficient-quota-reframed"
CHAT_STREAM = "c__oaipy-gpt4o-parallel-weather-stock"


@pytest.fixture
def chat_stream(corpus_dir: Path) -> Path:
    return corpus_dir / f"{CHAT_STREAM}.sse"


def run(capsysbinary: pytest.CaptureFixture[bytes], path: Path | str) -> tuple[int, bytes, str]:
    code = main(["assemble", str(path)])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_every_corpus_stream(
    corpus_stream: str, corpus_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = corpus_dir / f"{corpus_stream}.sse"
    code, out, err = run(capsysbinary, path)
    assert json.loads(out) == assemble_sse(path.read_bytes()).object
    if corpus_stream == ERROR_STREAM:
        assert code == 4
        assert err.count("\n") == 1
        assert "You exceeded your current quota, please check your plan and billing details." in err
    else:
        assert (code, err) == (0, "")


def write(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "body.sse"
    path.write_bytes(body)
    return path


@pytest.mark.parametrize(
    "reframe",
    [
        lambda raw: raw.replace(b"\n", b"\r\n"),
        lambda raw: raw.replace(b"\n", b"\r"),
        lambda raw: b"\xef\xbb\xbf: comment\n" + raw.replace(b"\n\n", b"\n: keep-alive\nid: 1\n\n"),
    ],
    ids=["crlf", "cr", "bom-comments-ids"],
)
def test_legal_variants_print_the_same_object(
    reframe, chat_stream: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    raw = chat_stream.read_bytes()
    code, out, err = run(capsysbinary, write(tmp_path, reframe(raw)))
    assert (code, err) == (0, "")
    assert json.loads(out) == assemble_sse(raw).object


def test_truncated_stream_exits_3_with_the_partial_object(
    chat_stream: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    raw = chat_stream.read_bytes()
    code, out, err = run(capsysbinary, write(tmp_path, raw[: len(raw) // 2]))
    assert code == 3
    assert json.loads(out)["choices"][0]["message"]["tool_calls"]
    assert err.count("\n") == 1
    assert "the stream ended early" in err


def test_injected_error_event_exits_4_with_its_message(
    chat_stream: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    raw = chat_stream.read_bytes()
    cut = raw.index(b"\n\n", len(raw) // 2) + 2
    message = "The server had an error while processing your request."
    error = f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n".encode()
    code, out, err = run(capsysbinary, write(tmp_path, raw[:cut] + error))
    assert code == 4
    assert json.loads(out)["object"] == "chat.completion"
    assert err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}\n',
        b"<html><body>502 Bad Gateway</body></html>\n",
        b"data: not json\n\n",
        bytes(range(256)),
    ],
    ids=["empty", "json-body", "html", "not-json", "binary"],
)
def test_input_that_is_not_a_stream_exits_2(
    body: bytes, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = run(capsysbinary, write(tmp_path, body))
    assert (code, out) == (2, b"")
    assert err.count("\n") == 1
    assert err.startswith("streamscope assemble: not an SSE stream of JSON events")


def test_missing_file_exits_2(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, err = run(capsysbinary, tmp_path / "nope.sse")
    assert (code, out) == (2, b"")
    assert err.startswith("streamscope assemble: cannot read")


# --- as a real process ----------------------------------------------------------------


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamscope", *args], input=stdin, capture_output=True, timeout=60
    )


def test_stdin_as_a_process(chat_stream: Path) -> None:
    raw = chat_stream.read_bytes()
    done = cli("assemble", "-", stdin=raw)
    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout) == assemble_sse(raw).object


def test_bad_input_as_a_process_has_no_traceback() -> None:
    done = cli("assemble", "-", stdin=b"data: {broken\n\ndata: {}\n\n")
    assert (done.returncode, done.stdout) == (2, b"")
    assert b"Traceback" not in done.stderr
    assert done.stderr.count(b"\n") == 1


HEAVY = ("openai", "pydantic", "httpx", "httpx2", "plotly", "jupyter", "jupyterlab", "ipywidgets", "IPython")


def test_assemble_starts_without_heavy_imports(chat_stream: Path) -> None:
    path = chat_stream
    code = (
        "import sys\n"
        "from streamscope.cli import main\n"
        f"code = main(['assemble', {str(path)!r}])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(code, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, text=True)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
