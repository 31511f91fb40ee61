"""The page's part played from the kernel, where no browser runs (nbval, a script): POST, read, note times.

``measure()`` waits for the page shown just before it; when no page asks for the kernel's clock in time
(no browser: nbval, nbconvert), it plays the page's part from the kernel, and the result says which.

It reads the relay's response as the page does (``POST /chat``, the body piece by piece, SSE frames
split as they complete) and notes, on the kernel's clock, when each upstream event was read: what the
page's paint times become when no page has reported. ``stop_after=N`` closes the response after N
upstream events, as the page's Stop button aborts its ``fetch()``.
"""

from __future__ import annotations

import time

import httpx2

from ..sse import SSEDecoder
from .app import RELAY_HEADER
from .log import KERNEL_CLIENT, RelayedRequest
from .server import Relay


def read_in_kernel(
    relay: Relay,
    prompt: str,
    *,
    stop_after: int | None = None,
    url: str | None = None,
    headers: dict[str, str] | None = None,
) -> RelayedRequest:
    """Relay ``prompt`` to a client in the kernel; the relayed request, its read times noted as its paints.

    ``url`` reaches the relay another way (through jupyter-server-proxy: ``JupyterProxy.url_for``);
    ``headers`` are sent too (the proxy's token; ``accept``, which the page sets to text/event-stream).
    """
    decoder, read = SSEDecoder(), []
    sent = {"accept": "text/event-stream", **(headers or {})}
    with (
        httpx2.Client(timeout=30) as http,
        http.stream("POST", (url or relay.url) + "chat", json={"prompt": prompt}, headers=sent) as response,
    ):
        request_id = int(response.headers[RELAY_HEADER])
        for piece in response.iter_bytes():
            now = time.monotonic()
            for event in decoder.feed(piece):
                if event.event == "message":  # the upstream's own events, not the relay's last one
                    read.append((len(read), now))
            if stop_after is not None and len(read) >= stop_after:
                break
    return relay.log.painted(request_id, read, None, by=KERNEL_CLIENT)


def measure(
    relay: Relay,
    prompt: str,
    *,
    stop_after: int | None = None,
    page_wait_s: float = 5.0,
    page_timeout_s: float = 60.0,
) -> RelayedRequest:
    """The request a page shown just before made and reported; else the same request read in the kernel."""
    since = time.monotonic()
    while time.monotonic() < since + page_wait_s:
        if relay.log.page_seen is not None and relay.log.page_seen >= since:
            break
        time.sleep(0.05)
    else:
        return read_in_kernel(relay, prompt, stop_after=stop_after)
    deadline = time.monotonic() + page_timeout_s
    while time.monotonic() < deadline:
        reported = [
            r for r in relay.log.requests if r.started >= since and r.painted_by not in (None, KERNEL_CLIENT)
        ]
        if reported:
            return reported[-1]
        time.sleep(0.05)
    raise TimeoutError(f"the page asked for the clock but reported no paint times in {page_timeout_s:g} s")
