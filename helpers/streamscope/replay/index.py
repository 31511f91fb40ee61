"""RecordingIndex: the recordings a replay server answers from, and which one answers a request."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecordingError
from ..recording import (
    RECORDINGS_DIR,
    Recording,
    api_path,
    event_bytes,
    load_folder,
    match_key,
    relevant_fields,
    without_duplicates,
)

__all__ = [
    "RecordingIndex",
]


@dataclass(frozen=True)
class _Entry:
    """A recording with its events laid out for sending."""

    recording: Recording
    relevant_body: dict[str, Any]
    offsets: tuple[float, ...]
    payloads: tuple[bytes, ...]

    @classmethod
    def of(cls, recording: Recording) -> _Entry:
        body = recording.request.get("body") or {}
        events = list(zip([e.t for e in recording.events or []], event_bytes(recording.events), strict=True))
        if recording.events is None and recording.incomplete is not None:
            # A body cut short is sent as it arrived, as one event, before the connection breaks.
            text = recording.body if isinstance(recording.body, str) else json.dumps(recording.body)
            events = [(recording.elapsed or recording.incomplete.t, text.encode())]
        return cls(
            recording=recording,
            relevant_body=relevant_fields(body),
            offsets=tuple(t for t, _ in events),
            payloads=tuple(raw for _, raw in events),
        )


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
        self._entries: dict[str, _Entry] = {}
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

    @staticmethod
    def _index(
        recordings: list[Recording], problems: dict[str, str]
    ) -> tuple[dict[str, _Entry], dict[str, str]]:
        """The entries for ``recordings`` by match key, and ``problems`` with those that cannot be sent."""
        entries: dict[str, _Entry] = {}
        for rec in recordings:
            try:
                entries[rec.match_key()] = _Entry.of(rec)
            except (ValueError, TypeError, AttributeError) as exc:
                problems[rec.name] = f"{rec.name}: cannot be replayed ({type(exc).__name__}: {exc})"
        return entries, problems

    def _use(self, indexed: tuple[dict[str, _Entry], dict[str, str]]) -> None:
        """Answer from these entries now; report each problem not reported before."""
        entries, problems = indexed
        for name, problem in problems.items():
            if self.problems.get(name) != problem:
                self._report(problem)
        self._entries, self.problems = entries, problems

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
            self._use(self._index(*load_folder(self.directory)))
            self._signature = tuple(signature)

    def recordings(self) -> list[Recording]:
        """The recordings answered, by name."""
        return sorted((e.recording for e in self.entries()), key=lambda rec: rec.name)

    def entries(self) -> list[_Entry]:
        self._refresh()
        return list(self._entries.values())

    def find(self, path: str, body: dict[str, Any]) -> _Entry | None:
        self._refresh()
        return self._entries.get(match_key(path, body))

    def closest(self, path: str, body: dict[str, Any]) -> tuple[_Entry, list[str]] | None:
        """The recording for the same path that differs from ``body`` in the fewest fields."""
        relevant = relevant_fields(body)
        best: tuple[_Entry, list[str]] | None = None
        for entry in self.entries():
            if api_path(entry.recording.path) != api_path(path):
                continue
            keys = sorted(set(relevant) | set(entry.relevant_body))
            differing = [k for k in keys if relevant.get(k, _MISSING) != entry.relevant_body.get(k, _MISSING)]
            if best is None or len(differing) < len(best[1]):
                best = (entry, differing)
        return best


_MISSING = object()
