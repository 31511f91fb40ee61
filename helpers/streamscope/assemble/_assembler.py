"""The `Assembler`: one stream's events in, its final object out (see the package docstring)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..chunks import DONE, fields, plain
from ..errors import StreamFormatError
from ._choices import ChoicesAccumulator
from ._responses import ResponsesAccumulator


class AssembleResult(NamedTuple):
    """The assembled object and whether the stream that built it arrived in full."""

    object: dict[str, Any]
    complete: bool
    reason: str | None = None  # why the stream is incomplete
    error: dict[str, Any] | None = None  # the error the stream carried, as the API sent it
    # e.g. deltas that do not add up to a Responses final value, fields of the wrong type skipped
    warnings: tuple[str, ...] = ()


def error_message(error: dict[str, Any]) -> str:
    message = error.get("message") or error.get("code") or json.dumps(error, default=repr)
    return " ".join(str(message).split())


def json_type(value: Any) -> str:
    """What a value is, in JSON's words, for a message."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "an object" if isinstance(value, dict) else f"a {type(value).__name__}"


class Skipped:
    """The fields of the wrong type an accumulator skipped, counted by field and type.

    Bounded by the number of distinct (field, type) pairs, not by the stream's length:
    a hostile stream repeating one bad field a million times costs one entry.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}

    def __call__(self, field: str, value: Any, expected: str) -> None:
        key = (field, json_type(value), expected)
        self.counts[key] = self.counts.get(key, 0) + 1

    def warnings(self) -> list[str]:
        return [
            f"skipped {field}: {got} where {expected} belongs" + (f" ({n} times)" if n > 1 else "")
            for (field, got, expected), n in self.counts.items()
        ]


class Assembler:
    """Accumulates the events of one stream into its final object.

    ``require_done``: a chat or completions stream counts as complete only once the
    ``"[DONE]"`` marker has been fed (true for raw SSE; the SDK's iterators swallow it).
    """

    def __init__(self, *, require_done: bool = False) -> None:
        self._accumulator: ChoicesAccumulator | ResponsesAccumulator | None = None
        self._require_done = require_done
        self._done = False
        self._error: dict[str, Any] | None = None
        self._skipped = Skipped()

    def feed(self, event: Any) -> None:
        """Add one event: a dict, an SDK model, or the string ``"[DONE]"``.

        Anything else raises `StreamFormatError`. A field of the wrong type inside an
        event (a ``delta`` that is a string, an ``index`` that is a list, ...) is
        skipped and counted in the result's ``warnings``; the rest is assembled.
        """
        if type(event) is dict:
            data = event
        elif isinstance(event, str):
            if not event.startswith(DONE):
                raise StreamFormatError(f"expected an event or {DONE!r}, got the string {event[:40]!r}")
            self._done = True
            return
        elif hasattr(event, "__dict__") and not isinstance(event, type):  # an SDK model
            data = fields(event)
        else:
            raise StreamFormatError(f"expected an event (a JSON object), got {json_type(event)}")
        error = data.get("error")
        if error and "type" not in data:  # a chat/completions stream reports errors as {"error": {...}}
            self._error = plain(error) if isinstance(error, dict) else {"message": _text_of(error)}
            if "choices" not in data:
                return
            # OpenRouter's error chunk is a chunk too (its usage, a choice): assembled as one.
        accumulator = self._accumulator
        if accumulator is None:
            accumulator = self._accumulator = _accumulator_for(data, self._skipped)
        accumulator.feed(data)

    def snapshot(self) -> dict[str, Any]:
        """The object so far, in OpenAI's final shape (``{}`` before the first event)."""
        return self._accumulator.snapshot() if self._accumulator is not None else {}

    def result(self) -> AssembleResult:
        accumulator = self._accumulator
        error = self._error
        warnings = self._skipped.warnings()
        if isinstance(accumulator, ResponsesAccumulator):  # its errors come as events of their own
            error = error or accumulator.error
            warnings = accumulator.warnings + warnings
        if error is not None:
            reason: str | None = "the stream carried an error: " + error_message(error)
        elif accumulator is None:
            reason = "no event arrived"
        elif isinstance(accumulator, ResponsesAccumulator):
            reason = accumulator.incomplete_reason()
        else:
            reason = accumulator.incomplete_reason(self._done, self._require_done)
        return AssembleResult(self.snapshot(), reason is None, reason, error, tuple(warnings))


def _text_of(value: Any) -> str:
    return json.dumps(value, default=repr) if isinstance(value, (list, dict)) else str(value)


def _accumulator_for(event: dict[str, Any], skipped: Skipped) -> ChoicesAccumulator | ResponsesAccumulator:
    if isinstance(event.get("type"), str):
        return ResponsesAccumulator(skipped)
    if "choices" in event or str(event.get("object", "")).startswith(("chat.completion", "text_completion")):
        return ChoicesAccumulator(skipped)
    keys = ", ".join(sorted(str(key)[:40] for key in event)[:8])
    raise StreamFormatError(f"not a chat, completions or Responses stream event (its keys: {keys})")


def assemble_events(events: Iterable[Any], *, require_done: bool = False) -> AssembleResult:
    """Assemble an iterable of events; if iterating it raises, return what arrived, marked."""
    assembler = Assembler(require_done=require_done)
    iterator = iter(events)
    while True:
        try:
            event = next(iterator)
        except StopIteration:
            return assembler.result()
        except Exception as exc:  # the stream broke (connection, in-band error): keep what arrived
            return _broken(assembler.result(), exc)
        assembler.feed(event)


def _broken(result: AssembleResult, exc: Exception) -> AssembleResult:
    body = getattr(exc, "body", None)  # openai.APIError keeps the error object the server sent
    if isinstance(body, dict):
        reason = "the stream carried an error: " + error_message(body)
        return result._replace(complete=False, reason=reason, error=body)
    return result._replace(complete=False, reason=f"the stream broke: {type(exc).__name__}: {exc}")
