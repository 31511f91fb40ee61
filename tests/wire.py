"""Reading a replay server's answer as the bytes that came over the wire, up to where it broke, and its
line in the sent log."""

from __future__ import annotations

import time

import httpx2
import openai
from streamscope.replay import REQUEST_ID_HEADER, ReplayServer

CHAT = "/chat/completions"


def raw_until_broken(server: ReplayServer, body: dict, **headers: str) -> tuple[bytes, Exception | None]:
    received, broke = b"", None
    with httpx2.stream("POST", server.base_url + CHAT, json=body, headers=headers) as response:
        try:
            for piece in response.iter_raw():
                received += piece
        except httpx2.HTTPError as exc:
            broke = exc
    return received, broke


def sent_line(server: ReplayServer, response: httpx2.Response | openai.Stream) -> dict:
    """The sent log's line for a response, once the server has finished with it."""
    request = int(
        response.response.headers[REQUEST_ID_HEADER]
        if isinstance(response, openai.Stream)
        else response.headers[REQUEST_ID_HEADER]
    )
    deadline = time.monotonic() + 30
    while True:
        log = httpx2.get(server.base_url.removesuffix("/v1") + "/streamscope/sent").json()["data"]
        (line,) = [line for line in log if line["request"] == request]
        if line["state"] != "sending" or time.monotonic() > deadline:
            return line
        time.sleep(0.01)
