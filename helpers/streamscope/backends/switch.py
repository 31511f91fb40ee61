"""The choice of backend: which server a client talks to, with which key, model and prompt."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx2
import openai

from ..errors import BackendError
from ..replay import SPEED_HEADER, check_speed
from .local import CHAT_MODEL, COMPLETION_MODEL
from .probe import CheckedAsyncOpenAI, CheckedOpenAI, probe, shown_url
from .registry import shared_local_server, shared_replay_server
from .substitute import AsyncSubstitutingTransport, SubstitutingTransport, Substitutions

__all__ = [
    "BACKEND_ENV",
    "MODEL_ENV",
    "OPENAI_BASE_URL",
    "PLACEHOLDER_KEY",
    "SPEED_ENV",
    "Backend",
    "BackendKind",
    "active_backend",
    "api_key_for",
    "async_client",
    "client",
    "resolve",
    "substitutions_for",
]

OPENAI_BASE_URL = "https://api.openai.com/v1"
BACKEND_ENV = "STREAMSCOPE_BACKEND"
SPEED_ENV = "STREAMSCOPE_SPEED"
MODEL_ENV = "STREAMSCOPE_MODEL"
# The SDK insists on a key; replay and most local servers ignore it.
PLACEHOLDER_KEY = "streamscope-no-key"
_GO_LIVE = f"set {BACKEND_ENV}=openai or a base URL to go live"
_GO_REPLAY = f"set {BACKEND_ENV}=replay to replay recordings"

BackendKind = Literal["replay", "openai", "local", "url"]

# Models the recordings name that the live OpenAI API no longer serves (or never did): asked as these.
_CURRENT_OPENAI_MODELS = {
    "gpt-3.5-turbo": "gpt-4o-mini",
    "text-davinci-002": "gpt-3.5-turbo-instruct",
    "smollm2-135m-instruct": "gpt-4o-mini",
}
# The seed's prompt, which SmolLM2 135M answers with "1, 2, 3, ..." and stops; plainer words, same task.
_SEED_COUNT = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."
_LOCAL_PROMPTS = {_SEED_COUNT: "Write the numbers from 1 to 50, separated by commas."}
_ENDPOINTS = ("/chat/completions", "/responses", "/completions")  # the first that ends a path wins


@dataclass(frozen=True)
class Backend:
    """Where requests go. ``str()`` is a one-line banner for notebooks."""

    kind: BackendKind
    base_url: str
    speed: float | None = None  # replay only
    description: str | None = None  # local only: the server, its models and this CPU
    substitutions: Substitutions = field(default_factory=Substitutions)  # asked instead of what is named
    problem: str | None = None  # live URLs only: why it is not an API that answers (probe.probe)

    def __str__(self) -> str:
        banner = _KINDS[self.kind].banner(self)
        said = self.substitutions.describe()
        return f"{banner}\n  it {said}" if said else banner


class _Kind(ABC):
    """What one kind of backend does where the kinds differ: every function of this module asks its kind."""

    name: ClassVar[BackendKind]
    named_as: ClassVar[str | None] = None  # the word that chooses it, with a note (None: chosen by its URL)
    base_url: ClassVar[str | None] = None  # where it answers, where that is fixed

    @abstractmethod
    def started(self, base_url: str | None, speed: float | None) -> Backend:
        """The backend of this kind (at ``base_url``, a URL's), its server started if it is ours."""

    def api_key(self) -> str:
        """The key to send: OPENAI_API_KEY if set."""
        return os.environ.get("OPENAI_API_KEY", "").strip() or PLACEHOLDER_KEY

    @abstractmethod
    def substitutions(self) -> Substitutions:
        """What it is asked instead of the models and prompts the notebooks name."""

    @abstractmethod
    def banner(self, backend: Backend) -> str:
        """``str(backend)`` without the substitutions."""

    def headers(self, backend: Backend) -> dict[str, str]:
        """Headers every request to it carries."""
        return {}


class _Replay(_Kind):
    """The shared replay server: the recordings answer, as recorded, at the speed chosen."""

    name, named_as = "replay", '"replay" (the default)'

    def started(self, base_url: str | None, speed: float | None) -> Backend:
        return Backend("replay", shared_replay_server().base_url, _speed(speed))

    def api_key(self) -> str:
        return PLACEHOLDER_KEY

    def substitutions(self) -> Substitutions:
        return Substitutions()  # the recordings answer only the names as recorded

    def banner(self, backend: Backend) -> str:
        return (
            f"streamscope backend: replay of recorded streams at {backend.base_url}, "
            f"speed {backend.speed:g} ({_GO_LIVE})"
        )

    def headers(self, backend: Backend) -> dict[str, str]:
        return {SPEED_HEADER: f"{backend.speed!r}"}


class _Url(_Kind):
    """A live OpenAI-compatible server at a base URL; ``$STREAMSCOPE_MODEL``, if set, for every model."""

    name = "url"
    where = "live OpenAI-compatible server"
    key_said = ""
    asked_instead = Substitutions()  # without $STREAMSCOPE_MODEL

    def started(self, base_url: str | None, speed: float | None) -> Backend:
        self.api_key()  # fail now, not at the first request, if the key is missing
        assert base_url is not None
        return Backend(self.name, base_url, substitutions=self.substitutions(), problem=probe(base_url))

    def substitutions(self) -> Substitutions:
        if chosen := _chosen_model():
            return Substitutions(endpoint_models=dict.fromkeys(_ENDPOINTS, chosen))
        return self.asked_instead

    def banner(self, backend: Backend) -> str:
        state = f": {backend.problem}" if backend.problem else ""
        url = shown_url(backend.base_url)
        return f"streamscope backend: {self.where} at {url}{state}{self.key_said} ({_GO_REPLAY})"


class _OpenAI(_Url):
    """The live OpenAI API: a key required, current models for retired or foreign names."""

    name, named_as, base_url = "openai", '"openai" (with OPENAI_API_KEY)', OPENAI_BASE_URL
    where, key_said = "live OpenAI API", ", key from OPENAI_API_KEY"
    asked_instead = Substitutions(models=_CURRENT_OPENAI_MODELS)

    def api_key(self) -> str:
        if key := os.environ.get("OPENAI_API_KEY", "").strip():
            return key
        raise BackendError(
            f"{BACKEND_ENV}=openai needs an API key: set OPENAI_API_KEY "
            f"(or unset {BACKEND_ENV} to replay recordings)"
        )


class _Local(_Url):
    """The local server (llama-server on this CPU): its own chat or completions model, plainer prompts."""

    name, named_as = "local", '"local" (a model on this CPU)'
    asked_instead = Substitutions(
        endpoint_models=dict(zip(_ENDPOINTS, (CHAT_MODEL, CHAT_MODEL, COMPLETION_MODEL), strict=True)),
        texts=_LOCAL_PROMPTS,
    )

    def started(self, base_url: str | None, speed: float | None) -> Backend:
        server = shared_local_server()
        return Backend(
            "local", server.base_url, description=server.banner, substitutions=self.substitutions()
        )

    def banner(self, backend: Backend) -> str:
        return f"streamscope backend: {backend.description} ({_GO_REPLAY})"


# Adding a kind: its class above, its name in BackendKind, and its entry here.
_KINDS: dict[str, _Kind] = {kind.name: kind for kind in (_Replay(), _OpenAI(), _Local(), _Url())}


def _chosen_model() -> str:
    return os.environ.get(MODEL_ENV, "").strip()


def _base_url(setting: str) -> str:
    def unusable(why: str) -> BackendError:
        return BackendError(f"{BACKEND_ENV}={shown_url(setting)!r} is not a usable base URL: {why}")

    if any(c.isspace() or not c.isprintable() for c in setting):
        raise unusable("it holds a space or a control character")
    try:
        parts = urlsplit(setting)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:  # a port out of range, an unclosed [IPv6 address
        raise unusable(str(exc)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise unusable("expected http(s)://HOST[:PORT][/PATH], e.g. http://localhost:11434/v1")
    path = parts.path.rstrip("/") or "/v1"
    base_url = f"{parts.scheme}://{parts.netloc}{path}"
    try:
        parts.hostname.encode("idna")  # a label empty or over 63 characters
        httpx2.URL(base_url)  # an IPv4 address out of range, say
    except (UnicodeError, httpx2.InvalidURL) as exc:
        raise unusable(str(exc)) from None
    return base_url


def _speed(speed: float | None) -> float:
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
    kind = _KINDS.get(setting.lower() or "replay")
    if kind is not None and kind.named_as is not None:
        return kind.name, kind.base_url
    if "://" in setting:
        return "url", _base_url(setting)
    choices = ", ".join(k.named_as for k in _KINDS.values() if k.named_as is not None)
    raise BackendError(
        f"{BACKEND_ENV}={setting!r} is not a backend: use {choices}, or the base URL of an "
        "OpenAI-compatible server, e.g. http://localhost:11434/v1"
    )


def api_key_for(kind: BackendKind) -> str:
    """The key to send: OPENAI_API_KEY for OpenAI (required), for other servers if set."""
    return _KINDS[kind].api_key()


def substitutions_for(kind: BackendKind) -> Substitutions:
    """What a backend of ``kind`` is asked instead of the models and prompts the notebooks name.

    Replay answers the names as recorded. The OpenAI API gets current models for retired or foreign
    names; any live server gets ``$STREAMSCOPE_MODEL``, if set, for every model; the local server its
    own chat or completions model, and plainer words for the seed's prompt.
    """
    return _KINDS[kind].substitutions()


def active_backend(backend: str | None = None, *, speed: float | None = None) -> Backend:
    """The backend that ``client(backend, speed=speed)`` would use, started if it is the replay server."""
    kind, base_url = resolve(backend)
    return _KINDS[kind].started(base_url, speed)


def _client_options(
    backend: str | None, speed: float | None, kwargs: dict[str, Any], *, asynchronous: bool
) -> dict[str, Any]:
    if "base_url" in kwargs:
        raise TypeError("pass backend=<base URL> (or set STREAMSCOPE_BACKEND) rather than base_url=")
    active = active_backend(backend, speed=speed)
    kind = _KINDS[active.kind]
    options: dict[str, Any] = {"base_url": active.base_url, "api_key": kind.api_key(), **kwargs}
    if active.substitutions and "http_client" not in kwargs:  # an http_client of the caller's is sent as is
        subs = active.substitutions
        options["http_client"] = (
            openai.DefaultAsyncHttpxClient(
                transport=AsyncSubstitutingTransport(subs, httpx2.AsyncHTTPTransport())
            )
            if asynchronous
            else openai.DefaultHttpxClient(transport=SubstitutingTransport(subs, httpx2.HTTPTransport()))
        )
    if headers := kind.headers(active):
        options["default_headers"] = {**(kwargs.get("default_headers") or {}), **headers}
    return options


def client(backend: str | None = None, *, speed: float | None = None, **kwargs: Any) -> openai.OpenAI:
    """The official ``openai.OpenAI`` client, pointed at the active backend.

    ``kwargs`` go to ``openai.OpenAI`` (timeout, max_retries, http_client, ...). On a live backend
    its transport applies the backend's :func:`substitutions_for` to each request (not to an
    ``http_client`` of your own). Its requests fail in one line naming the URL when nothing answers
    there, or something other than an API does (``probe.CheckedOpenAI``).
    """
    return CheckedOpenAI(**_client_options(backend, speed, kwargs, asynchronous=False))


def async_client(
    backend: str | None = None, *, speed: float | None = None, **kwargs: Any
) -> openai.AsyncOpenAI:
    """The official ``openai.AsyncOpenAI`` client, pointed at the active backend (as :func:`client`)."""
    return CheckedAsyncOpenAI(**_client_options(backend, speed, kwargs, asynchronous=True))
