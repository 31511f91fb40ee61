"""A live backend checked when chosen, and its failures said in one line that names the URL.

- :func:`probe` asks ``GET {base_url}/models`` once, with a short timeout and no retries:
  anything that answers JSON (a 401 from a server that wants a key included) is an API; else
  it says why not, in words ("not reachable (connection refused)", "answers with text/html").
  ``active_backend()`` shows that in its banner.
- :class:`CheckedOpenAI` and :class:`CheckedAsyncOpenAI` are the SDK's own clients, whose
  requests fail in one line: nothing listening at the URL becomes :class:`BackendUnreachable`
  (an ``openai.APIConnectionError`` still, with the SDK's own as its ``__cause__``), and an answer
  that is not the API's JSON or event stream (a web page, say) :class:`BackendAnswerError`,
  where the SDK would return the page as a ``str`` for the next cell to fail on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai

from ..errors import BackendError, StreamscopeError

PROBE_TIMEOUT_S = 2.0
_ANSWER_EXCERPT_CHARS = 60
__all__ = [
    "PROBE_TIMEOUT_S",
    "BackendAnswerError",
    "BackendUnreachable",
    "CheckedAsyncOpenAI",
    "CheckedOpenAI",
    "probe",
]

_FIX = (
    "start the server there, or set STREAMSCOPE_BACKEND to the base URL of a running OpenAI-compatible "
    "server (or to replay, for the recordings)"
)
# Base URLs that answered as an API: probed once per process.
_answered: set[str] = set()


class BackendUnreachable(StreamscopeError, openai.APIConnectionError):
    """Nothing answers at the backend's URL. The SDK's ``APIConnectionError`` is the ``__cause__``."""


class BackendAnswerError(BackendError):
    """The backend answered, but not as an OpenAI-compatible API does (a web page, plain text)."""


def shown_url(url: str) -> str:
    """``url`` as it may be shown (a banner is saved with the notebook): a password in it is starred."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{password}@", ":***@", 1)).geturl()


def probe(base_url: str, *, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if an API answers at ``base_url``; else what is wrong, in a few words."""
    if base_url in _answered:
        return None
    try:
        response = httpx2.get(base_url.rstrip("/") + "/models", timeout=timeout)
    except httpx2.TimeoutException:
        return f"not reachable (no answer within {timeout:g} s)"
    except (httpx2.HTTPError, httpx2.InvalidURL, UnicodeError) as exc:  # the last: a host name idna refuses
        return f"not reachable ({_reason(exc)})"
    kind = _content_type(response.headers)
    if "json" not in kind:
        return f"not an OpenAI-compatible API (GET /models answered {response.status_code} with {kind})"
    _answered.add(base_url)
    return None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1].lower() if text.startswith("[Errno") else text


def _content_type(headers: httpx2.Headers) -> str:
    return headers.get("content-type", "no content-type").partition(";")[0].strip().lower()


def _unreachable(base_url: str, exc: openai.APIConnectionError) -> BackendUnreachable | None:
    """The one-line error for a connection that could not be made (None for other connection errors)."""
    cause = exc.__cause__
    if not isinstance(cause, httpx2.ConnectError):  # a connection made, then broken: the SDK's own words
        return None
    _answered.discard(base_url)
    message = f"Nothing answers at {shown_url(base_url)} ({_reason(cause)}): {_FIX}."
    return BackendUnreachable(message=message, request=exc.request)


def _wrong_answer(base_url: str, cast_to: Any, result: Any) -> BackendAnswerError | None:
    """None if ``result`` is what the API answers; else the error naming what answered instead."""
    shown = shown_url(base_url)
    if isinstance(result, str) and cast_to is not str:
        excerpt = " ".join(result.split())[:_ANSWER_EXCERPT_CHARS]
        return BackendAnswerError(
            f"{shown} answered with text, not the API's JSON ({excerpt!r}...): is it the base URL "
            "of an OpenAI-compatible API (often ending in /v1)?"
        )
    if isinstance(result, openai.Stream | openai.AsyncStream):
        kind = _content_type(result.response.headers)
        if kind != "text/event-stream" and "json" not in kind:
            return BackendAnswerError(
                f"{shown} answered a streamed request with {kind}, not an event stream: is it the base "
                "URL of an OpenAI-compatible API (often ending in /v1)?"
            )
    return None


class CheckedOpenAI(openai.OpenAI):
    """``openai.OpenAI``, whose requests fail in one line naming the URL (see the module)."""

    def request(self, cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None) -> Any:
        try:
            result = super().request(cast_to, options, stream=stream, stream_cls=stream_cls)
        except openai.APITimeoutError:
            raise
        except openai.APIConnectionError as exc:
            if (explained := _unreachable(str(self.base_url).rstrip("/"), exc)) is None:
                raise
            raise explained from exc
        if (wrong := _wrong_answer(str(self.base_url).rstrip("/"), cast_to, result)) is not None:
            if isinstance(result, openai.Stream):
                result.close()
            raise wrong
        return result


class CheckedAsyncOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI``, whose requests fail in one line naming the URL (see the module)."""

    async def request(
        self, cast_to: Any, options: Any, *, stream: bool = False, stream_cls: Any = None
    ) -> Any:
        try:
            result = await super().request(cast_to, options, stream=stream, stream_cls=stream_cls)
        except openai.APITimeoutError:
            raise
        except openai.APIConnectionError as exc:
            if (explained := _unreachable(str(self.base_url).rstrip("/"), exc)) is None:
                raise
            raise explained from exc
        if (wrong := _wrong_answer(str(self.base_url).rstrip("/"), cast_to, result)) is not None:
            if isinstance(result, openai.AsyncStream):
                await result.close()
            raise wrong
        return result
