"""Accumulating ``chat.completion.chunk`` and legacy ``text_completion`` chunks.

Both streams are a series of chunks whose ``choices`` are keyed by ``index``; a chat
choice carries a ``delta`` to merge into its message, a completions choice a piece of
``text``. The result is the object the same request would have returned without
streaming: ``chat.completion`` or ``text_completion``.

Rules that differ from a naive (or the SDK's) merge, each from a real server:

- Tool calls merge by ``tool_calls[].index`` within their choice. A call without an
  ``index`` (Mistral sends whole calls without one) continues the latest call unless
  it brings a new ``id``, which starts the next one. ``id``, ``type`` and
  ``function.name`` are kept once: llama-cpp-python repeats them on every delta, and
  concatenating them (as the SDK's ``accumulate_delta`` does) gives
  ``get_weatherget_weather``. ``arguments`` are concatenated.
- Azure's first chunk has ``choices: []``, empty ``id``/``model`` and
  ``prompt_filter_results``; ``id``, ``created`` and ``model`` are therefore taken from
  the first chunk that has them. A choice's ``content_filter_results`` keeps the latest
  non-empty verdict (Azure sends one per chunk and ``{}`` on the closing chunk).
- ``usage``, ``system_fingerprint`` and ``service_tier`` keep their last non-null value
  (with ``include_usage`` the usage rides on a final chunk with ``choices: []``; an
  error chunk may carry it too). Groq puts the usage only in ``x_groq.usage``: it is
  the ``usage`` when no top-level one arrived.
- A ``finish_reason`` is never erased by a later null (OpenRouter and LiteLLM send
  trailing chunks with ``finish_reason: null``).
- Reasoning text stays in the message under the name it arrived with:
  ``reasoning_content`` (DeepSeek, Z.ai, vLLM) or ``reasoning`` (Groq, OpenRouter),
  concatenated like ``content``. Mistral sends its thinking as parts of a ``content``
  list (``{"type": "thinking", "thinking": [{"type": "text", "text": ...}]}``): their
  text becomes ``reasoning_content``, the list's ``text`` parts join ``content``.
- ``role`` and ``channel`` (gpt-oss on Groq) are kept once: some servers repeat them
  on every delta. A choice-level ``text`` beside a ``delta`` (Together) repeats
  ``delta.content`` and is not added again; it is the text only of a choice without
  ``delta`` (legacy completions).
- Delta fields we do not know are kept in the message: a string as its pieces joined,
  or once when every delta repeated the same value; objects merge field by field with
  the same rules, and lists merge their items by ``index`` (OpenRouter's
  ``reasoning_details``: text joined, ``signature`` and ``format`` kept). Numbers at the
  top of a delta (Together's per-token ``token_id``) describe the chunk, not the
  message, and are left out. Choice-level fields we do not know (vLLM's
  ``stop_reason``, OpenRouter's ``native_finish_reason``, Together's ``seed``) keep
  their last non-null value; chunk-level ones (``x_groq``, ``obfuscation``, Mistral's
  padding ``p``, ``sla_metrics``) describe the chunk and are left out.

Strings are collected as lists of pieces and joined by `snapshot`, so feeding stays
linear in the stream's length.
"""

from __future__ import annotations

from typing import Any

from ._objects import fields, plain

_HEAD_FIRST = ("id", "created", "model")
# Delta fields whose strings are pieces of one text; and those repeated whole on every delta.
_TEXTS = frozenset({"content", "refusal", "reasoning_content", "reasoning"})
_ONCE = frozenset({"role", "channel"})
# Choice fields with a meaning here; any other keeps its last non-null value.
_CHOICE_FIELDS = frozenset({"index", "delta", "text", "logprobs", "finish_reason", "content_filter_results"})


def _copy(value: Any) -> Any:
    """A copy of a list we keep growing, so that a snapshot does not change under its reader."""
    return list(value) if isinstance(value, list) else value


class _Pieces(list[str]):
    """The strings a field we do not know received: one text in pieces, or one value repeated."""


class _Indexed(list[Any]):
    """A list field we do not know; its items that carry an ``index`` merge by it."""

    __slots__ = ("by_index",)

    def __init__(self) -> None:
        super().__init__()
        self.by_index: dict[int, dict[str, Any]] = {}


def _merge(old: Any, new: Any) -> Any:
    """``new``, a value of a field we do not know, merged into what that field received before."""
    if type(new) is str:
        if type(old) is _Pieces:
            old.append(new)
            return old
        return _Pieces([new])
    if type(new) is dict:
        merged = old if type(old) is dict else {}
        for key, value in new.items():
            merged[key] = _merge(merged.get(key), value)
        return merged
    if type(new) is list:
        merged = old if type(old) is _Indexed else _Indexed()
        for item in new:
            index = item.get("index") if type(item) is dict else None
            if type(index) is int:
                previous = merged.by_index.get(index)
                if previous is not None:
                    _merge(previous, item)
                    continue
                item = merged.by_index[index] = _merge(None, item)
            else:
                item = _merge(None, item)
            merged.append(item)
        return merged
    return new if old is None else old  # numbers, booleans: the first non-null value


def _resolved(value: Any) -> Any:
    """A merged value as JSON: pieces joined (or kept once if all alike), containers copied."""
    if type(value) is _Pieces:
        first = value[0]
        return first if all(piece == first for piece in value) else "".join(value)
    if type(value) is dict:
        return {key: _resolved(v) for key, v in value.items()}
    if type(value) is _Indexed:
        return [_resolved(v) for v in value]
    return value


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
        "extra",
        "fields",
        "filter_results",
        "finish_reason",
        "function_call",
        "last_call",
        "logprobs",
        "once",
        "texts",
        "tool_calls",
    )

    def __init__(self) -> None:
        # Text fields by name, as pieces: content (or a completion's text), refusal, reasoning.
        self.texts: dict[str, list[str]] = {}
        self.once: dict[str, str] = {}  # role, channel
        self.extra: dict[str, Any] = {}  # delta fields we do not know, merged (see `_merge`)
        self.fields: dict[str, Any] = {}  # choice fields we do not know, their last non-null value
        self.tool_calls: dict[int, _Call] = {}
        self.last_call: int | None = None  # the index of the tool call that arrived last
        self.function_call: _Call | None = None
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.filter_results: Any = None

    def merge_delta(self, delta: dict[str, Any]) -> None:
        for key, value in delta.items():
            if type(value) is str:
                if key in _TEXTS:  # content, most of the time: add_text, inlined
                    pieces = self.texts.get(key)
                    if pieces is None:
                        self.texts[key] = [value]
                    else:
                        pieces.append(value)
                elif key in _ONCE:
                    if not self.once.get(key):
                        self.once[key] = value
                else:
                    self.extra[key] = _merge(self.extra.get(key), value)
            elif value is None:
                continue
            elif key == "tool_calls":
                self.merge_tool_calls(value)
            elif key == "function_call":
                if self.function_call is None:
                    self.function_call = _Call()
                self.function_call.merge(fields(value))
            elif key == "content" and type(value) is list:
                self.merge_content_parts(value)
            elif type(value) is dict or type(value) is list:
                self.extra[key] = _merge(self.extra.get(key), value)

    def merge_tool_calls(self, calls: list[Any]) -> None:
        for call in calls:
            call = fields(call)
            index = call.get("index")
            if index is None:
                index = self.last_call
                if index is None:
                    index = 0
                elif call.get("id") and call.get("id") != self.tool_calls[index].id:
                    index = max(self.tool_calls) + 1
            state = self.tool_calls.get(index)
            if state is None:
                state = self.tool_calls[index] = _Call()
            state.merge(call)
            self.last_call = index

    def merge_content_parts(self, parts: list[Any]) -> None:
        """Mistral's ``content`` list: ``text`` parts are content, ``thinking`` parts reasoning."""
        for part in parts:
            part = fields(part)
            kind = part.get("type")
            if kind == "text":
                self.add_text("content", part.get("text"))
            elif kind == "thinking":
                thinking = part.get("thinking")
                for piece in [thinking] if type(thinking) is str else thinking or ():
                    piece = piece if type(piece) is str else fields(piece).get("text")
                    self.add_text("reasoning_content", piece)

    def add_text(self, key: str, piece: Any) -> None:
        if type(piece) is not str:
            return
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
            "role": self.once.get("role") or "assistant",
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
            if key not in message:  # reasoning_content, reasoning
                message[key] = self.text(key)
        for key, value in self.once.items():
            message.setdefault(key, value)
        for key, value in self.extra.items():
            if key not in message:
                message[key] = _resolved(value)
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
        value = chunk.get("x_groq")
        if value is not None:
            value = fields(value).get("usage")
            if value is not None:
                head["x_groq_usage"] = plain(value)
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
            for key, value in choice.items():
                if key in _CHOICE_FIELDS:
                    continue
                if value is not None or key not in state.fields:
                    state.fields[key] = plain(value)
            delta = choice.get("delta")
            if delta is not None:
                state.merge_delta(delta if type(delta) is dict else fields(delta))
            else:
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
            "usage": head.get("usage", head.get("x_groq_usage")),
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
        for key, value in state.fields.items():
            choice.setdefault(key, value)
        return choice

    def incomplete_reason(self, done: bool, require_done: bool) -> str | None:
        """Why the stream looks cut short, or None if it arrived in full.

        Read from raw SSE, ``data: [DONE]`` is the server saying it sent everything: a
        choice it never gave a ``finish_reason`` (Snowflake Cortex; choice 1 behind the
        LiteLLM proxy) is complete, its ``finish_reason`` null. Without the marker (the
        SDK's iterators swallow it), every choice needs its ``finish_reason``.
        """
        if require_done:
            return None if done else "the stream ended before data: [DONE]"
        reasons = []
        if not self._choices:
            reasons.append("no choice arrived")
        unfinished = [str(i) for i, c in sorted(self._choices.items()) if not c.finish_reason]
        if unfinished:
            which = "choice " if len(unfinished) == 1 else "choices "
            reasons.append(which + ", ".join(unfinished) + " ended without a finish_reason")
        return "; ".join(reasons) or None
