"""What a live backend is asked instead of what a notebook names: the recordings' models and prompts.

The notebooks' request cells name the model and prompt of the recording they replay
(``model="gpt-3.5-turbo"``, the seed's "Count to 100, ..."), so that each cell is the reader's own
code. A live backend may not serve that model (retired, or another server's own names), and a small
local model may not follow that prompt. A backend's :class:`Substitutions` say, once, what it is
asked instead; the client's transport rewrites each request's JSON body by them, and the backend's
banner lists every one (:meth:`Substitutions.describe`), so that nothing is swapped unsaid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

__all__ = ["AsyncSubstitutingTransport", "SubstitutingTransport", "Substitutions"]


@dataclass(frozen=True)
class Substitutions:
    """Models and prompts a backend is asked instead of the ones a request names.

    ``models``: a named model -> the one asked. ``endpoint_models``: an endpoint (a URL path's end,
    ``/chat/completions``) -> the model asked there whatever the request names (a local server's own
    model per endpoint); the first endpoint that ends the path wins. ``texts``: a prompt (a
    message's ``content``, an ``input`` or a ``prompt`` string, whole) -> the text sent instead.
    """

    models: Mapping[str, str] = field(default_factory=dict)
    endpoint_models: Mapping[str, str] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.models or self.endpoint_models or self.texts)

    def describe(self) -> str:
        """Every substitution, in one sentence for the backend's banner ("" when there is none)."""
        said = [f"{asked} for {named}" for named, asked in self.models.items()]
        said += [f"{asked} on {endpoint}" for endpoint, asked in self.endpoint_models.items()]
        said += [f"{asked!r} for the prompt {named!r}" for named, asked in self.texts.items()]
        return f"asks {'; '.join(said)}" if said else ""

    def apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` (a request's JSON to ``path``) as this backend is asked it; ``body`` is not changed."""
        body = dict(body)
        endpoint_model = next((m for end, m in self.endpoint_models.items() if path.endswith(end)), None)
        if endpoint_model is not None:
            body["model"] = endpoint_model
        elif isinstance(body.get("model"), str):
            body["model"] = self.models.get(body["model"], body["model"])
        for key in ("prompt", "input"):
            if isinstance(body.get(key), str):
                body[key] = self.texts.get(body[key], body[key])
        if isinstance(body.get("messages"), list):
            body["messages"] = [self._message(message) for message in body["messages"]]
        return body

    def _message(self, message: Any) -> Any:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return {**message, "content": self.texts.get(message["content"], message["content"])}
        return message

    def request(self, request: httpx2.Request) -> httpx2.Request:
        """``request`` with its JSON body substituted (the same request if nothing changes)."""
        if not self or "json" not in request.headers.get("content-type", ""):
            return request
        body = json.loads(request.read() or b"null")
        if not isinstance(body, dict) or (asked := self.apply(request.url.path, body)) == body:
            return request
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
        return httpx2.Request(
            request.method,
            request.url,
            headers=headers,
            content=json.dumps(asked).encode(),
            extensions=request.extensions,
        )


class SubstitutingTransport(httpx2.BaseTransport):
    """Sends each request through ``inner`` with :class:`Substitutions` applied."""

    def __init__(self, substitutions: Substitutions, inner: httpx2.BaseTransport) -> None:
        self.substitutions, self.inner = substitutions, inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self.inner.handle_request(self.substitutions.request(request))

    def close(self) -> None:
        self.inner.close()


class AsyncSubstitutingTransport(httpx2.AsyncBaseTransport):
    """The async twin of :class:`SubstitutingTransport`."""

    def __init__(self, substitutions: Substitutions, inner: httpx2.AsyncBaseTransport) -> None:
        self.substitutions, self.inner = substitutions, inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        return await self.inner.handle_async_request(self.substitutions.request(request))

    async def aclose(self) -> None:
        await self.inner.aclose()
