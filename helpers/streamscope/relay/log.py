"""What the relay did per request: when each event came from upstream, went on, and was painted.

Every time is the kernel's ``time.monotonic()``, in seconds. The relay's thread writes a record while it
relays; the notebook reads it (lists only grow, and an append is atomic, so no lock is needed to read).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..sse import ServerSentEvent

# Where a request's paint times come from: the page's performance.now() in the animation frame after its
# text changed (on the kernel's clock); the moment it set its text, where it never painted (a frame out
# of sight gets no animation frames); or a client in the kernel, where no page ran.
PAINTED = "page painted"
NOT_PAINTED = "page set its text (no paint: out of sight)"
KERNEL_CLIENT = "kernel client read (no page)"


@dataclass
class RelayedRequest:
    """One prompt relayed: the upstream response's headers, and per SSE event its data and its times."""

    id: int
    prompt: str
    started: float = 0.0  # when the relay sent the upstream request
    ended: float | None = None
    headers: Any = None  # the upstream response's headers (streamscope.sent_log_line(record) reads them)
    state: str = "relaying"  # then: complete, client disconnected, upstream failed
    error: dict[str, Any] | None = None
    data: list[str] = field(default_factory=list)  # each upstream event's data
    forwarded: list[float] = field(default_factory=list)  # when the relay passed on the piece that ended it
    heartbeats: list[float] = field(default_factory=list)
    painted: list[float | None] = field(default_factory=list)  # when the page painted it (kernel clock)
    painted_by: str | None = None  # PAINTED, NOT_PAINTED or KERNEL_CLIENT
    rtt_s: float | None = None  # the page's best clock round trip: the mapping's uncertainty

    def add(self, events: Sequence[ServerSentEvent], forwarded: float) -> None:
        for event in events:
            self.data.append(event.data)
            self.forwarded.append(forwarded)


class RelayLog:
    """The relayed requests, newest last; and when a page last asked for the kernel's clock."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.requests: list[RelayedRequest] = []
        self.page_seen: float | None = None

    def new(self, prompt: str) -> RelayedRequest:
        with self._lock:
            record = RelayedRequest(next(self._ids), prompt)
            self.requests.append(record)
        return record

    def get(self, request_id: int) -> RelayedRequest:
        record = next((r for r in self.requests if r.id == request_id), None)
        if record is None:
            raise ValueError(f"no relayed request {request_id!r}")
        return record

    def painted(
        self, request_id: Any, pairs: Any, rtt_s: Any, *, shown: Any = None, by: str = PAINTED
    ) -> RelayedRequest:
        """Note when each event was painted; ``pairs`` are ``[event index, kernel seconds]``.

        A page out of sight paints nothing: then the times it set its text (``shown``) stand in, and say so.
        """
        record = self.get(int(request_id))
        if not pairs and shown:
            pairs, by = shown, NOT_PAINTED
        painted: list[float | None] = [None] * len(record.data)
        for index, t in pairs:
            if 0 <= int(index) < len(painted):
                painted[int(index)] = float(t)
        record.painted, record.rtt_s, record.painted_by = painted, None if rtt_s is None else float(rtt_s), by
        return record

    def saw_page(self) -> None:
        self.page_seen = time.monotonic()
