"""Stream a recorded request through a real client library, as its docs show it; print what arrived when.

Run by tests/clients/test_clients.py and benchmarks/clients.py in .venv-clients (the client
libraries' own environment, tests/clients/requirements.txt), never in ./.venv:

    .venv-clients/bin/python tests/clients/drive.py CLIENT BASE_URL REQUEST_JSON [RUNS]

CLIENT is a name in CLIENTS; BASE_URL the replay server's (``.../v1``); REQUEST_JSON the
recording's request body, from which the model, the prompt and the temperature are taken
(the library then spells the request its own way). Each text piece the library yields is
printed as a JSON line ``{"t": s, "text": "..."}``, ``t`` in seconds on the monotonic clock
from just before the library was asked (its imports and setup done: each client first yields
``READY``); a last line ``{"end": s}`` when its stream ended. RUNS (default 1): the same
request again, each run timed from its own start (benchmarks/clients.py reports the warm one).
Nothing else goes to stdout; the libraries' warnings go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

API_KEY = "unused-by-the-replay-server"
READY = ""  # what a client yields first, once imported and set up: the clock starts after it


def _prompt(body: dict[str, Any]) -> str:
    if "input" in body:
        return body["input"]
    (message,) = body["messages"]
    return message["content"]


def langchain(base_url: str, body: dict[str, Any]) -> Iterator[str]:
    from langchain_openai import ChatOpenAI

    model, temperature = body["model"], body["temperature"]
    chat = ChatOpenAI(model=model, temperature=temperature, base_url=base_url, api_key=API_KEY)
    yield READY
    for chunk in chat.stream(_prompt(body)):
        yield chunk.content


def litellm(base_url: str, body: dict[str, Any]) -> Iterator[str]:
    import litellm

    yield READY
    stream = litellm.completion(
        model="openai/" + body["model"],  # openai/: any OpenAI-compatible server at api_base
        api_base=base_url,
        api_key=API_KEY,
        messages=body["messages"],
        temperature=body["temperature"],
        stream=True,
    )
    for chunk in stream:
        yield chunk.choices[0].delta.content or ""


async def pydantic_ai(base_url: str, body: dict[str, Any]) -> AsyncIterator[str]:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(body["model"], provider=OpenAIProvider(base_url=base_url, api_key=API_KEY))
    agent = Agent(model, model_settings={"temperature": body["temperature"]})
    yield READY
    async with agent.run_stream(_prompt(body)) as result:
        async for delta in result.stream_text(delta=True):
            yield delta


def llm(base_url: str, body: dict[str, Any]) -> Iterator[str]:
    # llm's Python API; OPENAI_BASE_URL points its OpenAI models at another server. LLM_USER_PATH
    # keeps its keys file and logs out of the user's home.
    os.environ.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=API_KEY, LLM_USER_PATH=tempfile.mkdtemp())
    import llm

    model = llm.get_model(body["model"])
    yield READY
    yield from model.prompt(_prompt(body), temperature=body["temperature"])


async def openai_agents(base_url: str, body: dict[str, Any]) -> AsyncIterator[str]:
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI
    from openai.types.responses import ResponseTextDeltaEvent

    set_tracing_disabled(True)  # its traces go to OpenAI's servers
    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY)
    # Responses, the SDK's default model, for a Responses recording; its Chat Completions model otherwise.
    kind = OpenAIResponsesModel if "input" in body else OpenAIChatCompletionsModel
    model = kind(body["model"], openai_client=client)
    agent = Agent(name="counter", model=model, model_settings=ModelSettings(temperature=body["temperature"]))
    yield READY
    result = Runner.run_streamed(agent, input=_prompt(body))
    async for event in result.stream_events():
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            yield event.data.delta


def curl(base_url: str, body: dict[str, Any]) -> Iterator[str]:
    # -N: no output buffering, so each event arrives when the server sends it.
    path = "/responses" if "input" in body else "/chat/completions"
    command = ["curl", "-sS", "-N", base_url + path, "-H", "content-type: application/json"]
    command += ["-d", json.dumps(body)]
    yield READY  # the clock then includes starting curl (a few milliseconds)
    yield from _pieces_of(subprocess.Popen(command, stdout=subprocess.PIPE), _sse_text)


def _sse_text(line: str) -> str:
    """The text in one SSE line of a chat or Responses stream ('' for any other line)."""
    if not line.startswith("data: ") or line.strip() == "data: [DONE]":
        return ""
    payload = json.loads(line[len("data: ") :])
    if payload.get("type") == "response.output_text.delta":
        return payload["delta"]
    choices = payload.get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or ""


def _pieces_of(process: subprocess.Popen[bytes], text_of: Callable[[str], str]) -> Iterator[str]:
    """What a child process writes, line by line as it arrives, through ``text_of``."""
    assert process.stdout is not None
    for line in process.stdout:
        yield text_of(line.decode())
    if process.wait() != 0:
        raise SystemExit(f"{process.args[0]} exited with {process.returncode}")


CLIENTS: dict[str, Callable[[str, dict[str, Any]], Iterator[str] | AsyncIterator[str]]] = {
    "langchain": langchain,
    "litellm": litellm,
    "pydantic-ai": pydantic_ai,
    "llm": llm,
    "openai-agents": openai_agents,
    "curl": curl,
}  # and the Vercel AI SDK, under Node: tests/clients/node/stream.mjs


def _emit(start: float, text: str) -> None:
    if text:
        print(json.dumps({"t": time.monotonic() - start, "text": text}), flush=True)


async def _drain(pieces: AsyncIterator[str]) -> None:
    await anext(pieces)  # imports and setup, off the clock
    start = time.monotonic()
    async for text in pieces:
        _emit(start, text)
    _emit_end(start)


def _emit_end(start: float) -> None:
    print(json.dumps({"end": time.monotonic() - start}), flush=True)


def main() -> None:
    name, base_url, request, *runs = sys.argv[1:]
    for _ in range(int(runs[0]) if runs else 1):
        pieces = CLIENTS[name](base_url, json.loads(request))
        if isinstance(pieces, AsyncIterator):
            asyncio.run(_drain(pieces))
            continue
        next(pieces)  # imports and setup, off the clock
        start = time.monotonic()
        for text in pieces:
            _emit(start, text)
        _emit_end(start)


if __name__ == "__main__":
    main()
