"""Accumulating ``chat.completion.chunk`` and legacy ``text_completion`` chunks.

Both streams are a series of chunks whose ``choices`` are keyed by ``index``; a chat
choice carries a ``delta`` to merge into its message, a completions choice a piece of
``text``. The result is the object the same request would have returned without
streaming: ``chat.completion`` or ``text_completion``.

Rules that differ from a naive (or the SDK's) merge, each from a real server:

- Tool calls merge by ``tool_calls[].index`` within their choice. ``id``, ``type`` and
  ``function.name`` are kept once: llama-cpp-python repeats them on every delta, and
  concatenating them (as the SDK's ``accumulate_delta`` does) gives
  ``get_weatherget_weather``. ``arguments`` are concatenated.
- Azure's first chunk has ``choices: []``, empty ``id``/``model`` and
  ``prompt_filter_results``; ``id``, ``created`` and ``model`` are therefore taken from
  the first chunk that has them. A choice's ``content_filter_results`` keeps the latest
  non-empty verdict (Azure sends one per chunk and ``{}`` on the closing chunk).
- ``usage``, ``system_fingerprint`` and ``service_tier`` keep their last non-null value
  (with ``include_usage`` the usage rides on a final chunk with ``choices: []``).
- A delta field we do not know, holding text (``reasoning_content`` from vLLM or
  DeepSeek), is concatenated into the message under its own name; other unknown
  fields are ignored.

Strings are collected as lists of pieces and joined by `snapshot`, so feeding stays
linear in the stream's length.
"""

from __future__ import annotations

from typing import Any

from ..chunks import fields, plain

_HEAD_FIRST = ("id", "created", "model")


def _copy(value: Any) -> Any:
    """A copy of a list we keep growing, so that a snapshot does not change under its reader."""
    return list(value) if isinstance(value, list) else value


class _Call:
    """One tool call (or the legacy ``function_call``) being assembled."""

    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []

    def merge(self, delta: dict[str, Any]) -> None:
        function = delta.get("function")
        if function is not None:
            delta = {**delta, **fields(function)}
        if not self.id:
            self.id = delta.get("id") or None
        if not self.type:
            self.type = delta.get("type") or None
        if not self.name:
            self.name = delta.get("name") or None
        arguments = delta.get("arguments")
        if arguments:
            self.arguments.append(arguments)

    def function(self) -> dict[str, Any]:
        return {"name": self.name or "", "arguments": "".join(self.arguments)}


class _Choice:
    """The state of one choice: its message (or text) so far, logprobs and finish reason."""

    __slots__ = (
        "filter_results",
        "finish_reason",
        "function_call",
        "logprobs",
        "role",
        "texts",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role: str | None = None
        # Text fields by name, as pieces: content (or a completion's text), refusal, and
        # any text field we do not know.
        self.texts: dict[str, list[str]] = {}
        self.tool_calls: dict[int, _Call] = {}
        self.function_call: _Call | None = None
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.filter_results: Any = None

    def merge_delta(self, delta: dict[str, Any]) -> None:
        for key, value in delta.items():
            if value is None:
                continue
            if type(value) is str and key != "role":  # content, most of the time: add_text, inlined
                pieces = self.texts.get(key)
                if pieces is None:
                    self.texts[key] = [value]
                else:
                    pieces.append(value)
            elif key == "role":
                self.role = self.role or value
            elif key == "tool_calls":
                for call in value:
                    call = fields(call)
                    index = call.get("index") or 0
                    state = self.tool_calls.get(index)
                    if state is None:
                        state = self.tool_calls[index] = _Call()
                    state.merge(call)
            elif key == "function_call":
                if self.function_call is None:
                    self.function_call = _Call()
                self.function_call.merge(fields(value))

    def add_text(self, key: str, piece: str) -> None:
        pieces = self.texts.get(key)
        if pieces is None:
            self.texts[key] = [piece]
        else:
            pieces.append(piece)

    def text(self, key: str) -> str | None:
        pieces = self.texts.get(key)
        return None if pieces is None else "".join(pieces)

    def merge_logprobs(self, logprobs: dict[str, Any]) -> None:
        # Chat logprobs hold lists under "content"/"refusal"; legacy completions hold
        # parallel lists (tokens, token_logprobs, top_logprobs, text_offset). Both extend.
        mine = self.logprobs
        if mine is None:
            self.logprobs = {k: list(plain(v)) if isinstance(v, list) else v for k, v in logprobs.items()}
            return
        for key, value in logprobs.items():
            if value:
                if mine.get(key) is None:
                    mine[key] = []
                mine[key].extend(plain(value))

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role or "assistant",
            "content": self.text("content"),
            "refusal": self.text("refusal"),
        }
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": call.id or "", "type": call.type or "function", "function": call.function()}
                for _, call in sorted(self.tool_calls.items())
            ]
        if self.function_call is not None:
            message["function_call"] = self.function_call.function()
        for key in self.texts:
            if key not in message:  # a text field we do not know, such as reasoning_content
                message[key] = self.text(key)
        return message


class ChoicesAccumulator:
    """Builds a ``chat.completion`` or ``text_completion`` from its stream chunks."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._head_complete = False
        self._object = ""
        self._choices: dict[int, _Choice] = {}

    def feed(self, chunk: dict[str, Any]) -> None:
        head = self._head
        if not self._head_complete:
            for key in _HEAD_FIRST:
                if not head.get(key) and chunk.get(key):
                    head[key] = chunk[key]
            self._head_complete = all(head.get(key) for key in _HEAD_FIRST)
        if not self._object:
            self._object = chunk.get("object") or ""
        # Unrolled: this runs for every chunk.
        value = chunk.get("system_fingerprint")
        if value is not None:
            head["system_fingerprint"] = value
        value = chunk.get("service_tier")
        if value is not None:
            head["service_tier"] = value
        value = chunk.get("usage")
        if value is not None:
            head["usage"] = plain(value)
        value = chunk.get("prompt_filter_results")
        if value is not None:
            head["prompt_filter_results"] = plain(value)
        for choice in chunk.get("choices") or ():
            if type(choice) is not dict:
                choice = fields(choice)
            index = choice.get("index") or 0
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice()
            delta = choice.get("delta")
            if delta is not None:
                state.merge_delta(delta if type(delta) is dict else fields(delta))
            text = choice.get("text")
            if text is not None:
                state.add_text("content", text)
            logprobs = choice.get("logprobs")
            if logprobs is not None:
                state.merge_logprobs(fields(logprobs))
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                state.finish_reason = finish_reason
            filter_results = choice.get("content_filter_results")
            if filter_results:
                state.filter_results = plain(filter_results)

    def snapshot(self) -> dict[str, Any]:
        head = self._head
        text = self._object == "text_completion"
        obj: dict[str, Any] = {
            "id": head.get("id", ""),
            "object": "text_completion" if text else "chat.completion",
            "created": head.get("created", 0),
            "model": head.get("model", ""),
            "choices": [self._choice(i, c, text) for i, c in sorted(self._choices.items())],
            "usage": head.get("usage"),
            "system_fingerprint": head.get("system_fingerprint"),
        }
        for key in ("service_tier", "prompt_filter_results"):
            if key in head:
                obj[key] = head[key]
        return obj

    @staticmethod
    def _choice(index: int, state: _Choice, text: bool) -> dict[str, Any]:
        if text:
            choice: dict[str, Any] = {"text": state.text("content") or "", "index": index}
        else:
            choice = {"index": index, "message": state.message()}
        logprobs = state.logprobs
        choice["logprobs"] = None if logprobs is None else {k: _copy(v) for k, v in logprobs.items()}
        choice["finish_reason"] = state.finish_reason
        if state.filter_results is not None:
            choice["content_filter_results"] = state.filter_results
        return choice

    def incomplete_reason(self, done: bool, require_done: bool) -> str | None:
        """Why the stream looks cut short, or None if it arrived in full."""
        reasons = []
        if not self._choices:
            reasons.append("no choice arrived")
        unfinished = [str(i) for i, c in sorted(self._choices.items()) if not c.finish_reason]
        if unfinished:
            which = "choice " if len(unfinished) == 1 else "choices "
            reasons.append(which + ", ".join(unfinished) + " ended without a finish_reason")
        if require_done and not done:
            reasons.append("the stream ended before data: [DONE]")
        return "; ".join(reasons) or None
