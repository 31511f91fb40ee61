"""RecordingIndex: the recordings a replay server answers from, and which one answers a request."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import RecordingError
from ..matching import ApiPath, api_path, differing_fields, form_key, request_form, unread_fields
from ..recording import RECORDINGS_DIR, FileCache, Recording, event_bytes, load_folder, without_duplicates
from .contract import USAGE_NOT_RECORDED
from .resume import Resumable, resumable

__all__ = [
    "CLOSEST_NAMED",
    "Closest",
    "Match",
    "RecordingIndex",
]


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
        if source is None or isinstance(source, str | Path):
            self.directory: Path | None = Path(source) if source is not None else RECORDINGS_DIR
            if not self.directory.is_dir():
                raise RecordingError(f"recordings folder {self.directory} does not exist")
            self._refresh()
        else:
            self.directory = None
            recordings, problems = without_duplicates((rec.name, rec) for rec in source)
            self._use(self._index(recordings, {k: f"{k}: {v}" for k, v in problems.items()}))

    def _index(
        self, recordings: list[Recording], problems: dict[str, str]
    ) -> tuple[dict[str, _Entry], dict[str, str]]:
        """The entries for ``recordings`` by match key, and ``problems`` with those that cannot be sent.

        A recording made in code is checked against the schema here (one read from a file was,
        when read); one answered before keeps its laid-out events.
        """
        laid_out = {id(entry.recording): entry for entry in self._entries.values()}
        entries: dict[str, _Entry] = {}
        for rec in recordings:
            try:
                entries[rec.match_key()] = laid_out.get(id(rec)) or _Entry.of(rec.check())
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

    def _refresh(self) -> None:
        if self.directory is None:
            return
        signature = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(OSError):  # removed since the listing
                signature.append((path.name, (s := path.stat()).st_mtime_ns, s.st_size))
        with self._lock:
            if tuple(signature) == self._signature:
                return
            # Only the files that changed since the last reading are read again.
            self._use(self._index(*load_folder(self.directory, cache=self._files)))
            self._signature = tuple(signature)

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
        self._refresh()
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
