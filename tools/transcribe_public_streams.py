"""Transcribe real streams from public test suites' cassettes into recordings (no per-chunk timing).

Test suites record real API exchanges as cassettes: the request and the whole response
body, but not when each event arrived. Each stream below is read from its repository at a
pinned commit (``git show COMMIT:PATH`` in a clone or mirror of it), its body split into its
SSE events exactly as stored (nothing edited), and saved as a recording with
``per_chunk_timing: false`` (every ``t`` is 0), the repository, path, interaction, commit,
licence and its notice, model and date (from the stream's own ``created``/``created_at``).
Only ``content-type`` is kept of the response headers (the others name the recording's
account or describe its connection).

    python tools/transcribe_public_streams.py --pydantic-ai GIT_DIR --dd-trace-py GIT_DIR \
        --openai-python GIT_DIR [--out DIR]

openai-python's files store a response body without its request: the request body is the one the
installed SDK sends for the test's ``client.chat.completions.stream(...)`` call, and says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx2
import openai
import pydantic
import yaml
from streamscope.recording import RECORDINGS_DIR, Event, Recording

PYDANTIC_AI = ("pydantic/pydantic-ai", "4fda38988f2939fa6ea9cdefcf120693e10ef491", "MIT", "LICENSE")
OPENAI_PYTHON = ("openai/openai-python", "e43b422412a9e96c9cc5192c61fffbe2d7e04836", "Apache-2.0", "LICENSE")
DD_TRACE_PY = (
    "DataDog/dd-trace-py",
    "3bb9ecda22830e3303b18b0ffa5abe7586aef6a7",
    "Apache-2.0 OR BSD-3-Clause",
    "LICENSE.BSD3",
)


@dataclass(frozen=True)
class Source:
    name: str  # the recording's name
    repo: tuple[str, str, str, str]  # owner/name, commit, licence, licence file
    path: str
    interaction: int  # which exchange of the cassette (vcr); 0 for a one-exchange JSON cassette
    server: str
    model: str
    what: str  # what the stream shows, for the notes
    request: dict[str, Any] | None = None  # a raw body file stores no request: the one its test made


SOURCES = (
    Source(
        "openai-python-gpt-4o-chat-json-schema-refusal-stream",
        OPENAI_PYTHON,
        ".inline-snapshot/external/173417d553406f034f643e5db3f8d591fb691ebac56f5ae39a22cc7d455c5353.bin",
        0,
        "api.openai.com",
        "gpt-4o-2024-08-06",
        "A refusal under a JSON schema (response_format=Location, 'How do I make anthrax?'): the text "
        "arrives in delta.refusal, content stays null. The body was recorded from the live API for the "
        "test test_parse_pydantic_model_refusal of tests/lib/chat/test_completions_streaming.py; the "
        "file stores no request, so the request body is the one the installed SDK sends for that test's "
        "client.chat.completions.stream(...) call.",
        {"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "How do I make anthrax?"}]},
    ),
    Source(
        "openai-python-gpt-4o-chat-json-schema-length-stream",
        OPENAI_PYTHON,
        ".inline-snapshot/external/4cc50a6135d254573a502310e6af1246f55edb6ad95fa24059f160996b68866d.bin",
        0,
        "api.openai.com",
        "gpt-4o-2024-08-06",
        "A JSON-schema answer cut by max_tokens=1: one content token ('{\"'), finish_reason length, "
        "then the usage chunk. The body was recorded from the live API for the test "
        "test_parse_max_tokens_reached (which expects LengthFinishReasonError); the file stores no "
        "request, so the request body is the one the installed SDK sends for that test's call.",
        {
            "model": "gpt-4o-2024-08-06",
            "messages": [{"role": "user", "content": "What's the weather like in SF?"}],
            "max_tokens": 1,
        },
    ),
    Source(
        "pydantic-ai-o3-mini-responses-reasoning-summary-stream",
        PYDANTIC_AI,
        "tests/models/cassettes/test_openai_responses/test_openai_responses_thinking_part_iter.yaml",
        0,
        "api.openai.com",
        "o3-mini",
        "A reasoning item whose summary streams as response.reasoning_summary_text.delta events, "
        "then the message (output_text.delta); usage.output_tokens_details.reasoning_tokens in "
        "response.completed.",
    ),
    Source(
        "pydantic-ai-gpt-4o-responses-background-stream",
        PYDANTIC_AI,
        "tests/models/cassettes/test_openai_responses/test_background_mode_streaming_starting_after_vcr.yaml",
        0,
        "api.openai.com",
        "gpt-4o-2024-08-06",
        "A background response (background: true) streamed: response.queued after response.created, "
        "every event numbered (sequence_number 0-16). The cassette's next exchange is the real "
        "GET /v1/responses/{id}?starting_after=0&stream=true, which sent events 1-16 again.",
    ),
    Source(
        "pydantic-ai-gpt-5.5-responses-encrypted-reasoning-stream",
        PYDANTIC_AI,
        "tests/models/cassettes/test_openai_responses/test_openai_responses_phase_streamed_on_part_start.yaml",
        0,
        "api.openai.com",
        "gpt-5.5",
        "A reasoning item with no text at all (encrypted_content only, no summary asked for), then a "
        "message and a function call with argument deltas, in one response.",
    ),
    Source(
        "pydantic-ai-deepseek-responses-reasoning-text-stream",
        PYDANTIC_AI,
        "tests/models/cassettes/test_deepseek_responses/test_deepseek_responses[text_stream].yaml",
        0,
        "api.deepseek.com",
        "deepseek-v4-flash",
        "DeepSeek's Responses API: the reasoning item streams as response.reasoning_text.delta "
        "(the reasoning itself, not a summary), then the message.",
    ),
    Source(
        "pydantic-ai-groq-gpt-oss-chat-reasoning-stream",
        PYDANTIC_AI,
        "tests/models/cassettes/test_groq/test_tool_use_failed_error_streaming.yaml",
        1,
        "api.groq.com",
        "openai/gpt-oss-120b",
        "Groq's chat dialect: reasoning as delta.reasoning with delta.channel 'analysis'; the tool "
        "call arrives whole; usage both in x_groq.usage and top-level.",
    ),
    Source(
        "pydantic-ai-openrouter-claude-chat-reasoning-stream",
        PYDANTIC_AI,
        "tests/models/cassettes/test_openrouter/test_openrouter_streaming_reasoning.yaml",
        0,
        "openrouter.ai",
        "anthropic/claude-sonnet-4.5",
        "OpenRouter's chat dialect: delta.reasoning plus delta.reasoning_details[] (with a signature), "
        "keep-alive comments, usage on a trailing chunk.",
    ),
    Source(
        "ddtrace-deepseek-chat-reasoning-content-stream",
        DD_TRACE_PY,
        "tests/contrib/openai/cassettes/v1/deepseek_streamed_reasoning_content.yaml",
        0,
        "api.deepseek.com",
        "deepseek-v4-pro",
        "DeepSeek's chat dialect: delta.reasoning_content (content null) before the content; usage "
        "with completion_tokens_details.reasoning_tokens on the finish chunk.",
    ),
    Source(
        "ddtrace-mistral-magistral-chat-thinking-stream",
        DD_TRACE_PY,
        "tests/cassettes/mistral/mistral_v1_chat_completions_post_ccfa08da.json",
        0,
        "api.mistral.ai",
        "magistral-medium-latest",
        "Mistral's chat dialect: thinking arrives as typed parts of a delta.content list "
        "([{type: thinking, thinking: [{type: text, text}]}]) between plain string content deltas.",
    ),
)


def _sdk_request_body(**stream_kwargs: Any) -> dict[str, Any]:
    """The body the installed openai SDK sends for ``client.chat.completions.stream(**stream_kwargs)``."""
    sent: list[bytes] = []

    def refuse(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.content)
        return httpx2.Response(400, json={"error": {"message": "captured"}})

    transport = httpx2.Client(transport=httpx2.MockTransport(refuse))
    client = openai.OpenAI(
        api_key="unused", base_url="http://capture/v1", max_retries=0, http_client=transport
    )
    try:
        with client.chat.completions.stream(**stream_kwargs) as stream:
            stream.until_done()
    except openai.BadRequestError:
        pass
    return json.loads(sent[0])


# The response format of openai-python's tests/lib/chat/test_completions_streaming.py (a docstring
# would become the schema's description, and the request body would differ from the test's).
class Location(pydantic.BaseModel):
    city: str
    temperature: float
    units: Literal["c", "f"]


def _git_show(git_dir: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _api_path(url: str) -> str:
    """The API path a recorded URL asked for (servers mount the API under their own prefixes)."""
    path = urllib.parse.urlsplit(url).path
    for endpoint in ("/chat/completions", "/responses"):
        if path.endswith(endpoint):
            return "/v1" + endpoint
    raise ValueError(f"not a chat or Responses URL: {url}")


def _exchange(text: str, source: Source) -> tuple[dict[str, Any], str, str, str, int]:
    """The request's API path and body, the response body, its content type and status, from a cassette."""
    if source.path.endswith(".bin"):  # openai-python's inline snapshots: the body alone, as it came
        request = _sdk_request_body(**source.request, response_format=Location)
        return "/v1/chat/completions", request, text, "text/event-stream; charset=utf-8", 200
    if source.path.endswith(".json"):  # dd-trace-py's JSON cassettes: one exchange
        data = json.loads(text)
        request, response = data["request"], data["response"]
        content_type = next(v for k, v in response["headers"].items() if k.lower() == "content-type")
        status = int(response["status"]["code"])
        return _api_path(request["url"]), json.loads(request["body"]), response["body"], content_type, status
    exchange = yaml.safe_load(text)["interactions"][source.interaction]
    request, response = exchange["request"], exchange["response"]
    body = request.get("parsed_body")
    if body is None:
        body = json.loads(request["body"])
    headers = {k.lower(): v for k, v in response["headers"].items()}
    content_type = headers["content-type"][0]
    status = int(response["status"]["code"])
    return _api_path(request["uri"]), body, response["body"]["string"], content_type, status


def _events(body: str) -> list[Event]:
    """The body's SSE events, each with its terminating blank line, exactly as stored."""
    blocks = body.split("\n\n")
    events = [Event(0.0, block + "\n\n") for block in blocks[:-1] if block]
    if "".join(e.raw for e in events) != body:
        raise ValueError("the body is not a sequence of SSE events each ending in one blank line")
    return events


def _date(events: list[Event]) -> str:
    for event in events:
        for line in event.raw.splitlines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            stamp = data.get("created") or (data.get("response") or {}).get("created_at")
            if stamp:
                return datetime.datetime.fromtimestamp(stamp, datetime.UTC).date().isoformat()
    raise ValueError("no created or created_at in the stream")


def transcribe(source: Source, git_dir: Path) -> Recording:
    repo, commit, licence, licence_file = source.repo
    path, request_body, body, content_type, status = _exchange(
        _git_show(git_dir, commit, source.path), source
    )
    events = _events(body)
    notice = _git_show(git_dir, commit, licence_file).strip()
    where = f"exchange #{source.interaction} of " if source.path.endswith(".yaml") else ""
    kind = (
        "a test's recorded response body" if source.path.endswith(".bin") else f"{where}a test-suite cassette"
    )
    return Recording(
        name=source.name,
        provenance={
            "source": f"{repo} {source.path} ({kind}) at commit {commit}, {licence}",
            "server": source.server,
            "model": source.model,
            "date": _date(events),
            "method": "transcribed",
            "timing_resolution_s": None,
            "per_chunk_timing": False,
            "notes": (
                f"{source.what} The response body is the file's, split into its SSE events and not "
                "edited; the request body is the cassette's where it keeps one. The source keeps no "
                "arrival times: every event has t = 0; show its order, never its timing. Response headers "
                "other than content-type dropped. Transcribed by tools/transcribe_public_streams.py."
            ),
            "licence": licence,
            "licence_notice": notice,
        },
        request={"method": "POST", "path": path, "body": request_body},
        status=status,
        headers={"content-type": content_type},
        events=events,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pydantic-ai", type=Path, required=True, help="git dir of pydantic/pydantic-ai")
    parser.add_argument("--dd-trace-py", type=Path, required=True, help="git dir of DataDog/dd-trace-py")
    parser.add_argument("--openai-python", type=Path, required=True, help="git dir of openai/openai-python")
    parser.add_argument("--out", type=Path, default=RECORDINGS_DIR)
    args = parser.parse_args()
    dirs = {
        PYDANTIC_AI[0]: args.pydantic_ai,
        DD_TRACE_PY[0]: args.dd_trace_py,
        OPENAI_PYTHON[0]: args.openai_python,
    }
    for source in SOURCES:
        path = transcribe(source, dirs[source.repo[0]]).save(args.out / f"{source.name}.json")
        print(path)


if __name__ == "__main__":
    main()
