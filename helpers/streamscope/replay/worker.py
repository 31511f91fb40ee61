"""Request bodies too costly for the replay server's loop, read and matched in a process of its own.

The loop paces every stream. A body that takes milliseconds to parse, or to compare with every
recording (the 404's "closest recording" hint), would hold every stream that long, and a thread
would not help: json's parser, and the comparison, hold the GIL. So the loop reads a body itself
only when it is small and simple (:func:`cheap`: a fraction of a millisecond), and only to find
the recording that answers it. Any other body, and any request that no recording answers, goes
to one worker process (spawned on first need), which holds a copy of the recordings' requests
(not their events) and sends back the name of the recording that answers, or the error to send.
The worker reads bodies one at a time; beyond ``MAX_WAITING`` bodies waiting for it, a request
is answered 503 at once, so a flood of large bodies holds neither the loop nor memory. A worker
that dies is replaced (``BodyWorker``); the large recording files of a folder are read in a
worker process of the same kind (``replay.loading``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..recording import Recording
    from .index import RecordingIndex

__all__ = ["INLINE_BODY_BYTES", "INLINE_BODY_TOKENS", "MAX_WAITING", "BodyWorker", "cheap", "worker_pool"]

# A body the loop reads itself: parsing and matching one this size and this simple takes about
# 0.1 ms (tokens counts the commas, colons and brackets, an upper bound on its JSON values).
INLINE_BODY_BYTES = 64 * 1024
INLINE_BODY_TOKENS = 2000
MAX_WAITING = 8

# The name of the recording that answers, with the note its answer carries (index.Match); or the
# (status, body, headers) of the error the worker made.
Outcome = tuple[str, str | None] | tuple[int, bytes, list[tuple[str, str]]]


def cheap(raw: bytes) -> bool:
    """Whether the loop can parse and match ``raw`` in a fraction of a millisecond."""
    if len(raw) > INLINE_BODY_BYTES:
        return False
    return raw.count(b",") + raw.count(b":") + raw.count(b"[") + raw.count(b"{") <= INLINE_BODY_TOKENS


class BodyWorker:
    """The worker process that reads and matches bodies for one RecordingIndex.

    A worker that dies (killed, out of memory) is replaced: found dead before a body is sent to it,
    by a new one that reads that body; dead while reading a body, by a new one for the next body
    (this one's request gets a 500: the body may be what killed it).
    """

    def __init__(self, index: RecordingIndex) -> None:
        self._index = index
        self._pool: ProcessPoolExecutor | None = None
        self._version_sent: int | None = None
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many bodies are in the worker or waiting for it (a folder's reading included)."""
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._waiting >= MAX_WAITING

    async def outcome(self, path: str, raw: bytes) -> Outcome:
        """The worker's answer to ``POST path`` with body ``raw``."""
        self._waiting += 1
        try:
            # A large recording being read off the loop: the body is matched against what it holds.
            await self._index.current()
            try:
                pool, future = self._submit(path, raw)
            except BrokenProcessPool:  # it died while idle: not this body's doing
                pool, future = self._submit(path, raw)
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:  # it died reading this body: the next call starts another
                self._stop(pool)
                raise
        finally:
            self._waiting -= 1

    def _submit(self, path: str, raw: bytes) -> tuple[ProcessPoolExecutor, Future[Outcome]]:
        version, recordings, problems = self._index.requests()
        if self._pool is None:
            self._pool, self._version_sent = worker_pool(), None
        pool = self._pool
        catalog = None if version == self._version_sent else (recordings, problems)
        try:
            future = pool.submit(_in_worker, catalog, path, raw)
        except BrokenProcessPool:
            self._stop(pool)
            raise
        # The worker runs calls in order, so a catalog sent now is there for every later call.
        self._version_sent = version
        return pool, future

    def _stop(self, pool: ProcessPoolExecutor) -> None:
        """Drop a dead worker's pool (never waiting: this runs in the loop), unless already replaced."""
        if self._pool is pool:
            self._pool, self._version_sent = None, None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker, once it has finished the body it is reading."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool, self._version_sent = None, None


def worker_pool() -> ProcessPoolExecutor:
    """A pool of one worker process, spawned (fork is unsafe in a threaded kernel) when first used."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    )


def _start_worker(server_pid: int) -> None:
    """In a worker process, first: a lower priority (on a machine of few cores its work must not take the
    server's turn), and an end as soon as the server's process is gone. A server ended by a signal
    cannot always stop its worker, which would live on, holding the server's stdout and stderr open."""
    os.nice(10)

    def watch() -> None:
        while os.getppid() == server_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="streamscope-worker-watch", daemon=True).start()


# The worker process's copy of the recordings' requests.
_worker_index: RecordingIndex | None = None


def _in_worker(catalog: tuple[list[Recording], dict[str, str]] | None, path: str, raw: bytes) -> Outcome:
    """In the worker: the recording that answers, or the error to send (``app.match_body``)."""
    global _worker_index
    from starlette.responses import Response

    from .app import match_body
    from .index import RecordingIndex

    if catalog is not None:
        recordings, problems = catalog
        _worker_index = RecordingIndex(recordings)
        _worker_index.problems = problems
    assert _worker_index is not None, "the first call to a worker carries the recordings"
    result = match_body(_worker_index, path, raw, hint=True)
    if isinstance(result, Response):
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in result.raw_headers
            if k != b"content-length"
        ]
        return result.status_code, bytes(result.body), headers
    assert result is not None, "with the hint, every request gets a match or an error"
    return result.entry.recording.name, result.note
