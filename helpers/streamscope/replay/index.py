"""RecordingIndex: the recordings a replay server answers from, and which one answers a request."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import RecordingError
from ..matching import ApiPath, api_path, differing_fields, form_key, request_form, unread_fields
from ..reader import SWITCH_INTERVAL
from ..recording import RECORDINGS_DIR, FileCache, Recording, event_bytes, load_folder, without_duplicates
from .contract import USAGE_NOT_RECORDED
from .loading import INLINE_READ_BYTES, LargeFileReader
from .resume import Resumable, resumable

__all__ = [
    "CLOSEST_NAMED",
    "Closest",
    "Match",
    "RecordingIndex",
]

_RELIST_S = 0.05  # how stale a request's view of files rewritten in place may be (RecordingIndex._refresh)


@dataclass(frozen=True)
class _Entry:
    """A recording with its events laid out for sending."""

    recording: Recording
    path: ApiPath  # its request's path, in full form
    form: dict[str, Any]  # its request's form (matching.request_form)
    offsets: tuple[float, ...]
    payloads: tuple[bytes, ...]
    resumable: Resumable | None = None  # a streamed Responses recording: its id and sequence numbers

    @classmethod
    def of(cls, recording: Recording) -> _Entry:
        body = recording.request.get("body") or {}
        path = api_path(recording.path)
        # A recording without per-chunk timing is sent at once: no delay of our invention.
        times = [e.t if recording.timed else 0.0 for e in recording.events or []]
        events = list(zip(times, event_bytes(recording.events), strict=True))
        if recording.events is None and recording.incomplete is not None:
            # A body cut short is sent as it arrived, as one event, before the connection breaks.
            text = recording.body if isinstance(recording.body, str) else json.dumps(recording.body)
            events = [(recording.elapsed or recording.incomplete.t, text.encode())]
        return cls(
            recording=recording,
            path=path,
            form=request_form(path, body),
            offsets=tuple(t for t, _ in events),
            payloads=tuple(raw for _, raw in events),
            resumable=resumable(recording),
        )

    def after(self, first: int) -> _Entry:
        """The events from index ``first`` on, at their recorded offsets from the event before it."""
        shift = self.offsets[first - 1] if first else 0.0
        return replace(
            self,
            offsets=tuple(max(t - shift, 0.0) for t in self.offsets[first:]),
            payloads=self.payloads[first:],
        )


_FREE_PIECE = 4096  # objects freed at once by _free_in_pieces: a fraction of a millisecond


def _free_in_pieces(retired: list[_Entry]) -> None:
    """Free the entries a reading replaced, a few thousand objects at a time.

    A large recording's entry holds about 800,000 objects (each event, its text, its laid-out bytes
    and offset). Freed at once, when the last reference goes, they held the GIL for 20-45 ms, and
    every stream waited that long. Taken apart in pieces, between which the loop gets the GIL back
    (the switch interval is lowered meanwhile: ``_read_in_thread``), they cost it a piece at most.
    An entry or recording still held elsewhere (a stream sending it, a caller of ``recordings()``)
    is left whole, to be freed when it is let go.
    """
    while retired:
        entry = retired.pop()
        recording = entry.recording
        # Held only here: the local name and getrefcount's own argument (and entry.recording).
        if sys.getrefcount(entry) > 2 or sys.getrefcount(recording) > 3:
            continue
        pieces = [list(entry.payloads), list(entry.offsets), recording.events or []]
        object.__setattr__(entry, "payloads", ())  # the entry is frozen, and no one else holds it
        object.__setattr__(entry, "offsets", ())
        recording.events = None
        del entry, recording
        for items in pieces:
            while items:
                del items[-_FREE_PIECE:]


def light(recording: Recording) -> Recording:
    """The part of a recording a body worker matches against: its request, without its response."""
    return replace(recording, headers={}, events=None, body=None, elapsed=None, incomplete=None)


def _report_on_stderr(problem: str) -> None:
    print(f"streamscope: skipping a recording file: {problem}", file=sys.stderr, flush=True)


class RecordingIndex:
    """The recordings a replay server answers from, found by ``match_key``.

    Given a folder, it reads the folder again whenever its files change, so a
    recording saved while the server runs is answered at once. A file that cannot
    be used (see ``recording.load_folder``) is skipped, kept in ``problems`` (file
    name -> reason) and passed to ``report`` once (default: a line on stderr).

    Changed files of more than ``loading.INLINE_READ_BYTES`` in all are read in a thread (the
    large ones parsed in another process: ``replay.loading``), then swapped in at once. The
    thread of the loop that serves from the index (``loop_thread``) never waits for them: until
    they are in, a request is answered from the recordings read before (a request none of them
    answers waits, without holding the loop: see ``current``). Any other thread waits.
    """

    def __init__(
        self,
        source: str | Path | Iterable[Recording] | None = None,
        *,
        report: Callable[[str], None] = _report_on_stderr,
    ) -> None:
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._files: FileCache = {}
        self._entries: dict[str, _Entry] = {}
        self.version = 0  # counts the changes to what is answered
        self._fields: frozenset[str] = frozenset()  # every field some recording's form has (_fields_of)
        self._report = report
        self.problems: dict[str, str] = {}
        self._reader = LargeFileReader()
        self._reading: Future[None] | None = None  # a reading of the folder in a thread, while it runs
        self.loop_thread: int | None = None  # the thread of the loop that serves from this index
        self._folder_mtime_ns, self._listed_at = -1, -math.inf  # of the last listing (_folder_changed)
        if source is None or isinstance(source, str | Path):
            self.directory: Path | None = Path(source) if source is not None else RECORDINGS_DIR
            if not self.directory.is_dir():
                raise RecordingError(f"recordings folder {self.directory} does not exist")
            self._read_here(self._listing())  # nothing is served yet: all of it here
        else:
            self.directory = None
            recordings, problems = without_duplicates((rec.name, rec) for rec in source)
            self._use(self._index(recordings, {k: f"{k}: {v}" for k, v in problems.items()}))

    def _index(
        self, recordings: list[Recording], problems: dict[str, str], *, checked: bool = False
    ) -> tuple[dict[str, _Entry], dict[str, str]]:
        """The entries for ``recordings`` by match key, and ``problems`` with those that cannot be sent.

        A recording made in code is checked against the schema here (``checked``: read from a
        file, it was, when read); one answered before keeps its laid-out events.
        """
        laid_out = {id(entry.recording): entry for entry in self._entries.values()}
        entries: dict[str, _Entry] = {}
        for rec in recordings:
            try:
                known = laid_out.get(id(rec))
                entries[rec.match_key()] = known or _Entry.of(rec if checked else rec.check())
            except RecordingError as exc:
                problems[rec.name] = str(exc)
        return entries, problems

    def _use(self, indexed: tuple[dict[str, _Entry], dict[str, str]]) -> None:
        """Answer from these entries now; report each problem not reported before."""
        entries, problems = indexed
        for name, problem in problems.items():
            if self.problems.get(name) != problem:
                self._report(problem)
        self._entries, self.problems = entries, problems
        self.version += 1
        self._fields = self._fields_of(entries)

    @staticmethod
    def _fields_of(entries: dict[str, _Entry]) -> frozenset[str]:
        # stream_options too, always: find() answers include_usage without a recording that has it.
        return frozenset(name for entry in entries.values() for name in entry.form) | {"stream_options"}

    def _folder_changed(self) -> bool:
        """Whether the folder's own mtime changed, or the last listing is older than ``_RELIST_S``."""
        assert self.directory is not None
        try:
            mtime_ns = os.stat(self.directory).st_mtime_ns
        except OSError:  # removed: the listing says so
            return True
        return mtime_ns != self._folder_mtime_ns or time.monotonic() - self._listed_at > _RELIST_S

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        """Each ``*.json`` file's name, mtime and size, as ``load_folder`` reads them (its glob skips
        hidden files). Checked on every request, so scandir's entries rather than a glob and a stat
        per path: 2.5 times faster (150 us for 47 files)."""
        assert self.directory is not None
        # Noted before the listing: a change made during it shows at the next request.
        with contextlib.suppress(OSError):
            self._folder_mtime_ns = os.stat(self.directory).st_mtime_ns
        self._listed_at = time.monotonic()
        signature = []
        with contextlib.suppress(OSError), os.scandir(self.directory) as entries:  # the folder removed: empty
            for entry in entries:
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    with contextlib.suppress(OSError):  # the file removed since the listing
                        signature.append((entry.name, (s := entry.stat()).st_mtime_ns, s.st_size))
        return tuple(sorted(signature))

    def _refresh(self, *, quick: bool = False) -> None:
        """Read what changed in the folder: here if little, else in a thread (see the class's docstring).

        ``quick`` (each request's ``find``) lists the folder's files only if the folder itself
        changed (a file added, removed or renamed) or ``_RELIST_S`` has passed since the last
        listing: with a thousand recordings a listing takes milliseconds, and a hundred requests
        arriving at once would start their streams that much later, one after another. A file
        rewritten in place is seen within ``_RELIST_S``, or at once by a request no recording read
        before answers (that one is matched again after a full listing: ``current``). While a
        reading runs in a thread, every call takes the full path, so another thread than the
        loop's still waits for it.
        """
        if self.directory is None:
            return
        if quick and self._reading is None and not self._folder_changed():
            return
        signature = self._listing()
        with self._lock:
            if signature == self._signature:
                return
            reading = self._reading
            if reading is None:
                if self._changed_bytes(signature) <= INLINE_READ_BYTES:
                    self._read_here(signature)
                    return
                reading = self._reading = Future()
                threading.Thread(
                    target=self._read_in_thread, args=(reading,), name="streamscope-recordings", daemon=True
                ).start()
        if threading.get_ident() != self.loop_thread:
            reading.exception()  # waits; a failure was reported

    def _read_here(self, signature: tuple[tuple[str, int, int], ...]) -> None:
        # Only the files that changed since the last reading are read again.
        assert self.directory is not None
        self._use(self._index(*load_folder(self.directory, cache=self._files), checked=True))
        self._signature = signature

    def _changed_bytes(self, signature: tuple[tuple[str, int, int], ...]) -> int:
        """How many bytes of files differ from those read before."""
        changed = 0
        for name, mtime_ns, size in signature:
            known = self._files.get(name)
            if known is None or known[0] != (mtime_ns, size):
                changed += size
        return changed

    def _read_in_thread(self, reading: Future[None]) -> None:
        """Read the folder, large files in another process, then swap the new entries in.

        The switch interval is lowered meanwhile (as a chart's reader does): the loop, woken while
        this thread builds the new entries, waits for the GIL half a millisecond at most.
        """
        assert self.directory is not None
        SWITCH_INTERVAL.lower()
        # Building a large recording's events sets off the collector's full passes, each holding the
        # GIL for tens of milliseconds. A process that keeps its long-lived objects out of the
        # collector (``serve`` freezes them at start) runs none meanwhile, and keeps the new
        # recordings out as well; elsewhere (a notebook's kernel) the collector is left alone.
        pausing = gc.get_freeze_count() > 0 and gc.isenabled()
        if pausing:
            gc.disable()
        try:
            signature = self._listing()
            files = dict(self._files)  # no other reading runs meanwhile: this one is kept when done
            read = load_folder(self.directory, cache=files, read=self._reader.read)
            indexed = self._index(*read, checked=True)
            with self._lock:
                replaced = self._entries  # held here, so that what it alone held is not freed yet
                self._files = files
                self._use(indexed)
                self._signature = signature
                self._reading = None
            reading.set_result(None)
            kept = {id(entry) for entry in indexed[0].values()}
            retired = [entry for entry in replaced.values() if id(entry) not in kept]
            del replaced
            _free_in_pieces(retired)
        except Exception as exc:  # the folder is read again on the next request
            with self._lock:
                self._reading = None
            self._report(f"{self.directory}: reading the folder failed ({type(exc).__name__}: {exc})")
            reading.set_exception(exc)
        finally:
            if pausing:
                gc.freeze()
                gc.enable()
            SWITCH_INTERVAL.restore()

    async def current(self) -> None:
        """Return, in the loop and without holding it, once the folder's changes made so far are read.

        The reading under way may have listed the folder before the latest change: the next one,
        started when it ends, has it. So two at most, however often a file is saved meanwhile.
        """
        for _ in range(2):
            self._refresh()
            reading = self._reading
            if reading is None:
                return
            await asyncio.wait([asyncio.wrap_future(reading)])

    def close(self) -> None:
        """Stop the process that reads large files, if one runs."""
        self._reader.close()

    def recordings(self) -> list[Recording]:
        """The recordings answered, by name."""
        return sorted((e.recording for e in self.entries()), key=lambda rec: rec.name)

    def entries(self) -> list[_Entry]:
        self._refresh()
        return list(self._entries.values())

    def named(self, name: str) -> _Entry | None:
        """The entry of the recording called ``name``, if it is still answered."""
        return next((e for e in self.entries() if e.recording.name == name), None)

    def requests(self) -> tuple[int, list[Recording], dict[str, str]]:
        """What a body worker matches against: the version, the recordings' requests, the problems."""
        self._refresh()
        with self._lock:
            return self.version, [light(e.recording) for e in self._entries.values()], dict(self.problems)

    def find(self, path: ApiPath, body: dict[str, Any]) -> Match | None:
        """The recording that answers ``body`` sent to ``path`` (the rule: ``matching.request_form``).

        A streamed request with ``stream_options.include_usage`` that no recording made with it
        answers is answered by the recording of the same request without it, with a note
        (``USAGE_NOT_RECORDED``): the recorded stream unchanged, as from a server that ignores
        the option. No usage chunk is made up.
        """
        self._refresh(quick=True)
        fields = self._fields
        if unread_fields(path, body, fields, limit=1):  # a field no recording has: nothing can match
            return None
        form = request_form(path, body, fields=fields)
        entry = self._entries.get(form_key(path, form))
        if entry is not None:
            return Match(entry)
        options = form.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            rest = {k: v for k, v in options.items() if k != "include_usage"}
            without = {k: v for k, v in form.items() if k != "stream_options"}
            if rest:
                without["stream_options"] = rest
            entry = self._entries.get(form_key(path, without))
            if entry is not None:
                return Match(entry, note=USAGE_NOT_RECORDED)
        return None

    def by_response_id(self, response_id: str) -> _Entry | None:
        """The streamed Responses recording whose response has this id."""
        return next(
            (e for e in self.entries() if e.resumable is not None and e.resumable.response_id == response_id),
            None,
        )

    def closest(self, path: ApiPath, body: dict[str, Any]) -> Closest | None:
        """The recording for the same path whose request differs from ``body`` in the fewest fields.

        Bounded work, whatever the body: only the fields that recordings have are formed and
        compared; of the others, the first few are named, their values not read (beyond a default check).
        """
        self._refresh()
        fields = self._fields
        unread = unread_fields(path, body, fields, limit=CLOSEST_NAMED + 1)  # one more says "and more"
        form = request_form(path, body, fields=fields)
        best: Closest | None = None
        compared = 0
        for entry in self._entries.values():
            if entry.path != path:
                continue
            compared += len(form.keys() | entry.form.keys())
            differing = differing_fields(form, entry.form)
            if best is None or len(differing) < len(best.differing):
                best = Closest(entry, differing)
        if best is not None:
            best.differing[:0] = unread
            best.compared = compared
        return best


CLOSEST_NAMED = 10  # differing fields a 404 names


@dataclass(frozen=True)
class Match:
    """The recording that answers a request, and what the answer must say about it (or None)."""

    entry: _Entry
    note: str | None = None


@dataclass
class Closest:
    """The recording nearest a request that none answers: the fields that differ, and the work it took."""

    entry: _Entry
    differing: list[str]
    compared: int = 0  # fields compared, over all the recordings for the path
