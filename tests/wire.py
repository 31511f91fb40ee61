"""Reading a replay server's answer as the bytes that came over the wire, up to where it broke."""

from __future__ import annotations

import httpx2
from streamscope.replay import ReplayServer

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
