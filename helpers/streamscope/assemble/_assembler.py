"""The `Assembler`: one stream's events in, its final object out (see the package docstring)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from ._choices import ChoicesAccumulator
from ._objects import fields, plain
from ._responses import ResponsesAccumulator

DONE = "[DONE]"


class AssembleResult(NamedTuple):
    """The assembled object and whether the stream that built it arrived in full.

    (A NamedTuple rather than a dataclass: ``dataclasses`` imports ``inspect``, about
    10 ms of the ``assemble`` command's startup.)
    """

    object: dict[str, Any]
    complete: bool
    reason: str | None = None  # why the stream is incomplete
    error: dict[str, Any] | None = None  # the error the stream carried, as the API sent it
    warnings: tuple[str, ...] = ()  # e.g. deltas that do not add up to a Responses final value


class StreamFormatError(ValueError):
    """The input is not a stream of OpenAI events. ``partial`` holds what was assembled before it."""

    def __init__(self, message: str, partial: AssembleResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


def error_message(error: dict[str, Any]) -> str:
    message = error.get("message") or error.get("code") or json.dumps(error)
    return " ".join(str(message).split())


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

    def feed(self, event: Any) -> None:
        """Add one event: a dict, an SDK model, or the string ``"[DONE]"``."""
        if type(event) is dict:
            data = event
        elif isinstance(event, str):
            if not event.startswith(DONE):
                raise StreamFormatError(f"expected an event or {DONE!r}, got the string {event[:40]!r}")
            self._done = True
            return
        else:
            data = fields(event)
        error = data.get("error")
        if error and "type" not in data:  # a chat/completions stream reports errors as {"error": {...}}
            self._error = plain(error) if isinstance(error, dict) else {"message": str(error)}
            if "choices" not in data:
                return
            # OpenRouter's error chunk is a chunk too (its usage, a choice): assembled as one.
        accumulator = self._accumulator
        if accumulator is None:
            accumulator = self._accumulator = _accumulator_for(data)
        accumulator.feed(data)

    def snapshot(self) -> dict[str, Any]:
        """The object so far, in OpenAI's final shape (``{}`` before the first event)."""
        return self._accumulator.snapshot() if self._accumulator is not None else {}

    def result(self) -> AssembleResult:
        accumulator = self._accumulator
        error = self._error
        warnings: tuple[str, ...] = ()
        if isinstance(accumulator, ResponsesAccumulator):  # its errors come as events of their own
            error = error or accumulator.error
            warnings = tuple(accumulator.warnings)
        if error is not None:
            reason: str | None = "the stream carried an error: " + error_message(error)
        elif accumulator is None:
            reason = "no event arrived"
        elif isinstance(accumulator, ResponsesAccumulator):
            reason = accumulator.incomplete_reason()
        else:
            reason = accumulator.incomplete_reason(self._done, self._require_done)
        return AssembleResult(self.snapshot(), reason is None, reason, error, warnings)


def _accumulator_for(event: dict[str, Any]) -> ChoicesAccumulator | ResponsesAccumulator:
    if isinstance(event.get("type"), str):
        return ResponsesAccumulator()
    if "choices" in event or str(event.get("object", "")).startswith(("chat.completion", "text_completion")):
        return ChoicesAccumulator()
    keys = ", ".join(sorted(event)[:8])
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
