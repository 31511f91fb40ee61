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

from ..chunks import plain
from ._merge import Skip, _Call, _copy, _merge, _object, _resolved

_HEAD_FIRST = ("id", "created", "model")
# Delta fields whose strings are pieces of one text; and those repeated whole on every delta.
_TEXTS = frozenset({"content", "refusal", "reasoning_content", "reasoning"})
_ONCE = frozenset({"role", "channel"})
# Choice fields with a meaning here; any other keeps its last non-null value.
_CHOICE_FIELDS = frozenset({"index", "delta", "text", "logprobs", "finish_reason", "content_filter_results"})
# Logprobs fields that are lists to extend: chat's, and legacy completions' parallel lists.
_LOGPROBS_LISTS = frozenset({"content", "refusal", "tokens", "token_logprobs", "top_logprobs", "text_offset"})


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
        "skip",
        "texts",
        "tool_calls",
    )

    def __init__(self, skip: Skip) -> None:
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
        self.skip = skip

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
                elif key == "tool_calls" or key == "function_call":
                    self.skip(f"choices[].delta.{key}", value, "an array or an object")
                else:
                    self.extra[key] = _merge(self.extra.get(key), value)
            elif value is None:
                continue
            elif key == "content" and type(value) is list:
                self.merge_content_parts(value)
            elif key in _TEXTS or key in _ONCE:
                self.skip(f"choices[].delta.{key}", value, "a string")
            elif key == "tool_calls":
                if type(value) is list:
                    self.merge_tool_calls(value)
                else:
                    self.skip("choices[].delta.tool_calls", value, "an array")
            elif key == "function_call":
                call = _object(value)
                if call is None:
                    self.skip("choices[].delta.function_call", value, "an object")
                    continue
                if self.function_call is None:
                    self.function_call = _Call()
                self.function_call.merge(call, "choices[].delta.function_call", self.skip)
            elif type(value) is dict or type(value) is list:
                self.extra[key] = _merge(self.extra.get(key), value)

    def keep_fields(self, choice: dict[str, Any]) -> None:
        """Choice fields we do not know (vLLM's stop_reason, ...): the last non-null value."""
        for key, value in choice.items():
            if key not in _CHOICE_FIELDS and (value is not None or key not in self.fields):
                self.fields[key] = plain(value)

    def merge_tool_calls(self, calls: list[Any]) -> None:
        for item in calls:
            call = _object(item)
            if call is None:
                self.skip("choices[].delta.tool_calls[]", item, "an object")
                continue
            index = call.get("index")
            if index is None:
                index = self.last_call
                if index is None:
                    index = 0
                elif call.get("id") and call.get("id") != self.tool_calls[index].id:
                    index = max(self.tool_calls) + 1
            elif type(index) is not int:
                self.skip("choices[].delta.tool_calls[].index", index, "an integer")
                continue
            state = self.tool_calls.get(index)
            if state is None:
                state = self.tool_calls[index] = _Call()
            state.merge(call, "choices[].delta.tool_calls[]", self.skip)
            self.last_call = index

    def merge_content_parts(self, parts: list[Any]) -> None:
        """Mistral's ``content`` list: ``text`` parts are content, ``thinking`` parts reasoning."""
        for item in parts:
            part = _object(item)
            if part is None:
                self.skip("choices[].delta.content[]", item, "an object")
                continue
            kind = part.get("type")
            if kind == "text":
                self.add_text("content", part.get("text"), "choices[].delta.content[].text")
            elif kind == "thinking":
                thinking = part.get("thinking")
                if type(thinking) is list:
                    for piece in thinking:
                        text = piece if type(piece) is str else (_object(piece) or {}).get("text")
                        self.add_text("reasoning_content", text, "choices[].delta.content[].thinking[].text")
                else:
                    self.add_text("reasoning_content", thinking, "choices[].delta.content[].thinking")

    def add_text(self, key: str, piece: Any, where: str) -> None:
        if type(piece) is not str:
            if piece is not None:
                self.skip(where, piece, "a string")
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
            mine = self.logprobs = {}
        for key, value in logprobs.items():
            if type(value) is list:
                kept = mine.get(key)
                if type(kept) is list:
                    kept.extend(plain(value))
                else:
                    mine[key] = list(plain(value))
            elif key in _LOGPROBS_LISTS and value is not None:
                self.skip(f"choices[].logprobs.{key}", value, "an array")
            elif key not in mine:
                mine[key] = plain(value)

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

    def __init__(self, skip: Skip) -> None:
        self._head: dict[str, Any] = {}
        self._head_complete = False
        self._object = ""
        self._choices: dict[int, _Choice] = {}
        self._skip = skip

    def feed(self, chunk: dict[str, Any]) -> None:
        head = self._head
        if not self._head_complete:
            for key in _HEAD_FIRST:
                if not head.get(key) and chunk.get(key):
                    head[key] = plain(chunk[key])
            self._head_complete = all(head.get(key) for key in _HEAD_FIRST)
        if not self._object:
            self._object = chunk.get("object") or ""
        # Unrolled: this runs for every chunk.
        value = chunk.get("system_fingerprint")
        if value is not None:
            head["system_fingerprint"] = plain(value)
        value = chunk.get("service_tier")
        if value is not None:
            head["service_tier"] = plain(value)
        value = chunk.get("usage")
        if value is not None:
            head["usage"] = plain(value)
        value = chunk.get("x_groq")
        if value is not None:
            groq = _object(value)
            if groq is None:
                self._skip("x_groq", value, "an object")
            elif groq.get("usage") is not None:
                head["x_groq_usage"] = plain(groq["usage"])
        value = chunk.get("prompt_filter_results")
        if value is not None:
            head["prompt_filter_results"] = plain(value)
        choices = chunk.get("choices")
        if type(choices) is not list:
            if choices is not None:
                self._skip("choices", choices, "an array")
            return
        for item in choices:  # the loop's body is not a method of its own: it runs for every chunk
            choice = item if type(item) is dict else _object(item)
            if choice is None:
                self._skip("choices[]", item, "an object")
                continue
            index = choice.get("index")
            if index is None:
                index = 0
            elif type(index) is not int:
                self._skip("choices[].index", index, "an integer")
                continue
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = _Choice(self._skip)
            if not choice.keys() <= _CHOICE_FIELDS:
                state.keep_fields(choice)
            self._merge_choice(choice, state)

    def _merge_choice(self, choice: dict[str, Any], state: _Choice) -> None:
        delta = choice.get("delta")
        if delta is not None:
            if type(delta) is not dict:
                delta = _object(delta)
            if delta is None:
                self._skip("choices[].delta", choice["delta"], "an object")
            else:
                state.merge_delta(delta)
        else:
            state.add_text("content", choice.get("text"), "choices[].text")
        logprobs = choice.get("logprobs")
        if logprobs is not None:
            logprobs_fields = _object(logprobs)
            if logprobs_fields is None:
                self._skip("choices[].logprobs", logprobs, "an object")
            else:
                state.merge_logprobs(logprobs_fields)
        finish_reason = choice.get("finish_reason")
        if type(finish_reason) is str:
            if finish_reason:
                state.finish_reason = finish_reason
        elif finish_reason is not None:
            self._skip("choices[].finish_reason", finish_reason, "a string")
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
