"""The recording format: one JSON file per HTTP exchange with an OpenAI-compatible API.

A recording holds what a client sent and what came back, with enough detail to
replay the exchange at its original pace and to say where it came from::

    {
      "streamscope_recording": 1,
      "name": "seed-chat-count-to-100-stream",
      "provenance": {
        "source": "...",            # who/what produced it, in words
        "server": "api.openai.com", # the server that answered
        "model": "gpt-3.5-turbo-0301",
        "date": "2023-03-03",       # when the exchange happened
        "method": "transcribed",    # "recorded" (by streamscope) or "transcribed" (from a publication)
        "timing_resolution_s": 0.01,
        "per_chunk_timing": true,   # false: the source kept no arrival times (every t is 0)
        "notes": "..."              # what was rebuilt, and how
      },
      "request": {"method": "POST", "path": "/v1/chat/completions", "body": {...}},
      "response": {
        "status": 200,
        "headers": {"content-type": "text/event-stream"},   # scrubbed of secrets
        "events": [                                          # streamed responses
          {"t": 0.1, "raw": "data: {...}\\n\\n"},
          ...
        ]
        # or, for a non-streamed response:
        # "elapsed": 3.03, "body": {...}
      }
    }

A response that ended early (no ``[DONE]`` or finish reason, an error mid-stream, or a
connection that broke) keeps everything that arrived and says so in
``response.incomplete``: ``{"reason": "...", "t": 1.23, "dropped": true}``, where ``t``
is when it ended and ``dropped`` says the connection broke before the response's end
(the replay server then breaks it at the same point).

A stream transcribed from a source that kept no per-chunk timing (a test suite's cassette
stores the body, not when each event came) says ``"per_chunk_timing": false``: its events
are in order, every ``t`` is 0, and the replay server sends them at once, without delays
of its own invention; charts of it show the order of events, never time.

``t`` is the arrival offset, in seconds, of the end of that event measured from the
moment the request was sent; ``raw`` is the event's SSE text exactly as received
(including its terminating blank line). Files are written with a fixed key order
and one event per line, so a diff between two recordings reads line by line. What each field
must hold is checked when a file is read (``recording_schema``): a file that breaks it is a
RecordingError naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecordingError
from .matching import match_key
from .recording_schema import FORMAT_VERSION, first_problem

__all__ = [
    "FORMAT_VERSION",
    "RECORDINGS_DIR",
    "Event",
    "Incomplete",
    "Recording",
    "event_bytes",
    "iter_recordings",
    "load_folder",
    "load_recording",
    "read_file",
    "without_duplicates",
]

RECORDINGS_DIR = Path(__file__).parent / "recordings"


_PROVENANCE_KEYS = (
    "source",
    "server",
    "model",
    "date",
    "method",
    "timing_resolution_s",
    "per_chunk_timing",
    "notes",
)


@dataclass(frozen=True)
class Event:
    """One SSE event: when its last byte arrived and its raw text."""

    t: float
    raw: str


def event_bytes(events: Iterable[Event] | None) -> list[bytes]:
    """Each event's text as the bytes that went over the wire."""
    return [event.raw.encode() for event in events or ()]


@dataclass(frozen=True)
class Incomplete:
    """How a response that ended early ended."""

    reason: str  # why it is incomplete, in words
    t: float  # when it ended, in seconds from the moment the request was sent
    dropped: bool  # the connection broke before the response's end, rather than closing after it


@dataclass
class Recording:
    """One request and the response it got, streamed or not."""

    name: str
    provenance: dict[str, Any]
    request: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] | None = None
    body: Any = None
    elapsed: float | None = None
    incomplete: Incomplete | None = None

    @property
    def streamed(self) -> bool:
        return self.events is not None

    @property
    def timed(self) -> bool:
        """Whether the events carry their arrival times (False: only their order is known)."""
        return self.provenance.get("per_chunk_timing") is not False

    @property
    def path(self) -> str:
        return self.request["path"]

    @property
    def label(self) -> str:
        """A one-line provenance label, shown beside every figure drawn from it."""
        p = self.provenance
        verb = "recorded from" if p.get("method") == "recorded" else "transcribed from"
        where = p.get("source") if p.get("method") != "recorded" else p.get("server")
        ended = ", ended early" if self.incomplete else ""
        untimed = "" if self.timed else ", no per-chunk timing"
        return f"{self.name}: {p.get('model', '?')}, {verb} {where}, {p.get('date', '?')}{untimed}{ended}"

    def match_key(self) -> str:
        """This recording's request as ``matching.match_key`` spells it: equal keys, the same request."""
        return match_key(self.path, self.request.get("body") or {})

    def sse_bytes(self) -> bytes:
        """The whole streamed response body, as the server sent it."""
        if self.events is None:
            raise RecordingError(f"{self.name} is not a streamed response")
        return b"".join(event_bytes(self.events))

    # --- serialisation ---------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        response: dict[str, Any] = {"status": self.status, "headers": dict(self.headers)}
        if self.incomplete is not None:
            i = self.incomplete
            response["incomplete"] = {"reason": i.reason, "t": i.t, "dropped": i.dropped}
        if self.events is not None:
            response["events"] = [{"t": e.t, "raw": e.raw} for e in self.events]
        else:
            response["elapsed"] = self.elapsed
            response["body"] = self.body
        provenance = {k: self.provenance[k] for k in _PROVENANCE_KEYS if k in self.provenance}
        provenance.update({k: v for k, v in self.provenance.items() if k not in provenance})
        return {
            "streamscope_recording": FORMAT_VERSION,
            "name": self.name,
            "provenance": provenance,
            "request": self.request,
            "response": response,
        }

    def dumps(self) -> str:
        """Serialise with a fixed key order and one SSE event per line."""
        data = self.to_dict()
        events = data["response"].pop("events", None)
        text = json.dumps(data, indent=2, ensure_ascii=False)
        if events is None:
            return text + "\n"
        lines = ",\n".join(
            "      " + json.dumps(e, ensure_ascii=False, separators=(", ", ": ")) for e in events
        )
        # The response object is last in the file, so its closing braces end the text.
        head, tail = text.rsplit("\n  }\n}", 1)
        assert tail == ""
        return f'{head},\n    "events": [\n{lines}\n    ]\n  }}\n}}\n'

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.dumps(), encoding="utf-8")
        return path

    def check(self) -> Recording:
        """This recording, if the replay server can serve it as it is; else RecordingError naming why."""
        problem = first_problem(self.to_dict())
        if problem is not None:
            raise RecordingError(f"{self.name}: {problem}")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Recording:
        """The recording ``data`` holds; RecordingError naming ``source`` and the first field that
        breaks the schema (``recording_schema``)."""
        problem = first_problem(data)
        if problem is not None:
            raise RecordingError(f"{source}: {problem}")
        response = data["response"]
        events = response.get("events")
        ended = response.get("incomplete")
        return cls(
            name=data["name"],
            provenance=dict(data["provenance"]),
            request=dict(data["request"]),
            status=response.get("status", 200),
            headers=dict(response.get("headers", {})),
            events=None if events is None else [Event(float(e["t"]), e["raw"]) for e in events],
            body=response.get("body"),
            elapsed=response.get("elapsed"),
            incomplete=None
            if ended is None
            else Incomplete(ended["reason"], float(ended["t"]), ended["dropped"]),
        )

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingError(f"cannot read recording {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise RecordingError(f"{path}: not JSON ({exc})") from exc
        except RecursionError:
            raise RecordingError(f"{path}: JSON nested too deeply to read") from None
        except ValueError as exc:  # the only other one json.loads raises: an integer of over 4300 digits
            raise RecordingError(f"{path}: not readable JSON ({exc})") from exc
        return cls.from_dict(data, source=str(path))


def iter_recordings(directory: str | Path = RECORDINGS_DIR) -> Iterator[Recording]:
    for path in sorted(Path(directory).glob("*.json")):
        yield Recording.load(path)


# What reading one file gave, kept by ``load_folder``'s callers: its (mtime_ns, size) then, and the
# recording, or why it cannot be used.
FileCache = dict[str, tuple[tuple[int, int], "Recording | str"]]


def read_file(path: Path) -> Recording | str:
    """The recording in ``path``, or why it cannot be used."""
    try:
        return Recording.load(path)
    except RecordingError as exc:
        return str(exc)


def load_folder(
    directory: str | Path = RECORDINGS_DIR,
    *,
    cache: FileCache | None = None,
    read: Callable[[Path], Recording | str] = read_file,
) -> tuple[list[Recording], dict[str, str]]:
    """The usable recordings in a folder, and why each other ``*.json`` file there is skipped.

    Files are read in name order; a file is skipped (file name -> reason) when it is not a
    readable recording (half-written, say, or a field breaks ``recording_schema``), or when
    it has the name of, or answers the same request as, a file read before it. One bad file
    never hides the others. With a ``cache`` (updated in place), a file whose modification
    time and size are those of the last reading is not read again: a server that re-reads its
    folder when a file is saved reads only that file, however large the others are. ``read``
    reads one file (the replay server reads large ones in another process: ``replay.loading``).
    """
    loaded: list[tuple[str, Recording]] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for path in sorted(Path(directory).glob("*.json")):
        try:
            stat = path.stat()
        except OSError:  # removed since the listing
            continue
        state = (stat.st_mtime_ns, stat.st_size)
        known = cache.get(path.name) if cache is not None else None
        outcome = known[1] if known is not None and known[0] == state else read(path)
        if cache is not None:
            cache[path.name] = (state, outcome)
            seen.add(path.name)
        if isinstance(outcome, str):
            skipped[path.name] = outcome
        else:
            loaded.append((path.name, outcome))
    if cache is not None:
        for gone in set(cache) - seen:
            del cache[gone]
    recordings, duplicates = without_duplicates(loaded)
    skipped.update((name, f"{Path(directory) / name}: {why}") for name, why in duplicates.items())
    return recordings, skipped


def without_duplicates(named: Iterable[tuple[str, Recording]]) -> tuple[list[Recording], dict[str, str]]:
    """The one rule for duplicates: a recording with the name of, or answering the same request as,
    one before it is left out. Returns those kept, and why each other one (by its file name) was not.
    """
    kept: list[Recording] = []
    skipped: dict[str, str] = {}
    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    for file_name, rec in named:
        try:
            key = rec.match_key()
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            skipped[file_name] = f"not a usable recording ({type(exc).__name__}: {exc})"
            continue
        if rec.name in names:
            skipped[file_name] = f"has the name {rec.name!r}, as {names[rec.name]} has"
        elif key in keys:
            skipped[file_name] = f"answers the same request as {keys[key]}"
        else:
            names[rec.name] = keys[key] = file_name
            kept.append(rec)
    return kept, skipped


def load_recording(name: str, directory: str | Path = RECORDINGS_DIR) -> Recording:
    """Load a recording by name (its file stem) from the package's recordings."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(Path(directory).glob("*.json"))) or "none"
        raise RecordingError(f"no recording named {name!r}; recorded: {known}")
    return Recording.load(path)
