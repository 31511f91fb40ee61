"""Resuming a Responses stream: which recorded events follow ``starting_after``.

The Responses API numbers every event of a stream (``sequence_number``). For a response
created with ``background: true``, a client that lost the connection asks for the rest with
``GET /v1/responses/{id}?stream=true&starting_after=N`` (the SDK:
``client.responses.retrieve(id, stream=True, starting_after=N)``): the events numbered after
N. This module finds, in a recording, the response id, the event numbered N and what follows
it; the replay server sends that. A request that cannot be resumed raises
:class:`ResumeError`, whose status and message the server returns in OpenAI's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..chunks import sse_payloads
from ..matching import api_path
from ..recording import Recording

__all__ = ["Resumable", "ResumeError", "created_in_background", "resumable"]


class ResumeError(ValueError):
    """A resume request that cannot be answered: ``status`` is its HTTP status, the message says why."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


@dataclass(frozen=True)
class Resumable:
    """A streamed Responses recording as a resume request sees it."""

    recording: Recording
    response_id: str
    sequence_numbers: tuple[int | None, ...]  # per recorded event: its sequence_number, None if it has none

    @property
    def last(self) -> int:
        """The highest sequence number recorded."""
        return max(n for n in self.sequence_numbers if n is not None)

    def first_after(self, starting_after: str | None) -> int:
        """The index of the first event to send for ``starting_after`` (a query value, None: absent).

        Absent, the whole stream. Otherwise every event recorded after the one numbered N:
        events without a number (``data: [DONE]``, a keep-alive comment) go with their place.
        """
        if starting_after is None:
            return 0
        text = starting_after.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 12:
            raise ResumeError(
                400,
                f"Invalid 'starting_after': expected an integer sequence number, got {starting_after[:40]!r}",
                param="starting_after",
                code="invalid_value",
            )
        n = int(text)
        if n < 0:
            raise ResumeError(
                400,
                f"Invalid 'starting_after': {n} is negative; sequence numbers start at 0.",
                param="starting_after",
                code="invalid_value",
            )
        if n > self.last:
            raise ResumeError(
                400,
                f"Invalid 'starting_after': {n} is past the end of response {self.response_id!r}, "
                f"whose last event is number {self.last}.",
                param="starting_after",
                code="invalid_value",
            )
        for index in range(len(self.sequence_numbers) - 1, -1, -1):
            number = self.sequence_numbers[index]
            if number is not None and number <= n:
                return index + 1
        return 0


def resumable(recording: Recording) -> Resumable | None:
    """The recording as a resumable stream, or None if it is not a streamed Responses recording
    whose events carry a response id and sequence numbers."""
    if recording.events is None or api_path(recording.path) != "/v1/responses":
        return None
    numbers: list[int | None] = []
    response_id: str | None = None
    for event in recording.events:
        payloads = [p for _, parsed in sse_payloads([event.raw.encode()]) for p in parsed]
        payload = payloads[0] if len(payloads) == 1 and isinstance(payloads[0], dict) else {}
        number = payload.get("sequence_number")
        numbers.append(number if type(number) is int else None)
        response = payload.get("response")
        if response_id is None and isinstance(response, dict) and isinstance(response.get("id"), str):
            response_id = response["id"]
    if response_id is None or all(n is None for n in numbers):
        return None
    return Resumable(recording, response_id, tuple(numbers))


def created_in_background(recording: Recording) -> bool:
    """Whether the recorded request asked for a background response (only those can be resumed)."""
    return (recording.request.get("body") or {}).get("background") is True
