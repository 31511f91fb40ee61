"""Large recording files read away from the replay server's loop: parsed in a process, unpacked in a thread.

``json.loads`` of a 50 MB recording, and the schema's check of its events, take about a second,
and the parse holds the GIL throughout: run in the loop, or in a thread, it stalls every stream
for that long. So a file over ``INLINE_READ_BYTES`` is read, parsed and checked in a process of
its own (spawned on first need, at a lower priority, like the body worker), which sends it back
packed: its events' texts as bytes and their times as arrays, so that unpickling
it here is a copy of buffers, not the building of a million objects while the GIL is held (and
sent in pieces of about 1 MB: a copy of 50 MB at once, page faults included, holds the GIL
for tens of milliseconds).
The recording's events are then rebuilt from the pack in Python (``RecordingIndex`` does this in
a thread of its own, the switch interval lowered, so that the loop gets the GIL back within half
a millisecond). A non-streamed recording comes back as it is: its body is one JSON value.

The recording a new reading replaces (its events, their texts and laid-out bytes: about 800,000
objects for 50 MB) is freed in pieces too (``index._free_in_pieces``): freed at once it held the
GIL for 20-45 ms. What still holds it at once: the collector's full passes while the new events
are built, which ``RecordingIndex`` holds off only in a process that froze its objects
(``serve``).
"""

from __future__ import annotations

import itertools
import threading
from array import array
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path

from ..recording import Event, Recording, read_file
from .worker import worker_pool

__all__ = ["INLINE_READ_BYTES", "LargeFileReader"]

# A file this small is read where it is asked for: parsing it holds the GIL for about 2 ms at most.
INLINE_READ_BYTES = 256 * 1024


# Events per piece sent back: about 1 MB, which this process unpickles (a copy, the GIL held) in
# well under a millisecond. One bytes object of 50 MB took 44-90 ms to unpickle here (load 7).
PIECE_EVENTS = 4096


@dataclass(frozen=True)
class _Packed:
    """A streamed recording as the reading process first sends it: all but its events."""

    recording: Recording  # without its events
    pieces: int  # how many pieces its events come in (``piece``)


@dataclass(frozen=True)
class _Piece:
    """Some of a recording's events, as two buffers and an array."""

    times: array  # each event's t
    texts: bytes  # each event's raw text, UTF-8, one after another
    ends: array  # where each event's text ends in ``texts``

    def events(self) -> list[Event]:
        starts = itertools.chain((0,), self.ends)
        spans = zip(self.times, starts, self.ends, strict=False)  # starts has one more
        return [Event(t, self.texts[a:b].decode()) for t, a, b in spans]


class LargeFileReader:
    """Reads recording files, the large ones in a process of its own (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def read(self, path: Path) -> Recording | str:
        """The recording in ``path``, or why it cannot be used (``recording.read_file``, elsewhere)."""
        try:
            size = path.stat().st_size
        except OSError:
            size = 0  # read_file says why it cannot be read
        if size <= INLINE_READ_BYTES:
            return read_file(path)
        with self._lock:
            if self._pool is None:
                self._pool = worker_pool()
            pool = self._pool
        try:
            outcome = pool.submit(read_packed, str(path)).result()
            if isinstance(outcome, str | Recording):
                return outcome
            events: list[Event] = []
            for k in range(outcome.pieces):
                events += pool.submit(piece, k).result().events()
        except (BrokenProcessPool, RuntimeError) as exc:  # it died (out of memory?), or the server stops
            self._stop(pool)
            why = type(exc).__name__
            return f"{path}: the process reading it stopped ({why}); it is read again when it changes"
        return replace(outcome.recording, events=events)

    def _stop(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the reading process, if one runs."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# In the reading process: the pieces of the recording it read last, until the last is fetched.
_pieces: list[_Piece] = []


def read_packed(path: str) -> _Packed | Recording | str:
    """In the reading process: the recording in ``path`` (packed if streamed), or why it cannot be used."""
    global _pieces
    outcome = read_file(Path(path))
    if isinstance(outcome, str) or outcome.events is None:
        return outcome
    events = outcome.events
    _pieces = [_packed_events(events[i : i + PIECE_EVENTS]) for i in range(0, len(events), PIECE_EVENTS)]
    return _Packed(recording=replace(outcome, events=[]), pieces=len(_pieces))


def piece(k: int) -> _Piece:
    """In the reading process: piece ``k`` of the recording read last."""
    global _pieces
    found = _pieces[k]
    if k == len(_pieces) - 1:
        _pieces = []
    return found


def _packed_events(events: list[Event]) -> _Piece:
    texts = [event.raw.encode() for event in events]
    return _Piece(
        times=array("d", (event.t for event in events)),
        texts=b"".join(texts),
        ends=array("q", itertools.accumulate(map(len, texts))),
    )
