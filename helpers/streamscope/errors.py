"""The exceptions streamscope raises on purpose, all rooted in :class:`StreamscopeError`.

Each says in its message what went wrong and what to do about it, in one line, so that
the command line can print it as it is, and a notebook shows that line alone. ``except
StreamscopeError`` catches them all; the classes that reject a bad value are also ``ValueError`` s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "BackendError",
    "LocalServerError",
    "RecordError",
    "RecordingError",
    "StreamFormatError",
    "StreamscopeError",
    "TokenizerUnavailable",
]

if TYPE_CHECKING:
    from .assemble import AssembleResult


class StreamscopeError(Exception):
    """Something streamscope was asked to do cannot be done; the message says why."""

    def _render_traceback_(self) -> list[str]:
        # IPython's hook: a notebook shows this one line, not the frames inside streamscope that led
        # here (the cause, if any, stays on __cause__ for %tb or traceback.print_exception).
        return [f"{type(self).__name__}: {self}"]


class BackendError(StreamscopeError, ValueError):
    """A backend setting (the backend, its API key, the replay speed) cannot be used as it is."""


class RecordingError(StreamscopeError, ValueError):
    """A recording is missing, unreadable, not in the recording format, or not what was asked for."""


class RecordError(StreamscopeError):
    """A live request could not be made or recorded."""


class StreamFormatError(StreamscopeError, ValueError):
    """The input is not a stream of OpenAI events. ``partial`` holds what was assembled before it."""

    def __init__(self, message: str, partial: AssembleResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


class TokenizerUnavailable(StreamscopeError, LookupError):
    """No tiktoken encoding can be loaded for this model or name without a download."""


class LocalServerError(StreamscopeError, RuntimeError):
    """The local server cannot run; the message names the command that fixes it, in one line."""
