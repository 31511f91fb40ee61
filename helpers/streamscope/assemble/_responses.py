"""Accumulating Responses API stream events into the final ``response`` object.

The lifecycle events (``response.created``, ``.in_progress``, ``.queued``) carry the
response's settings; ``response.output_item.added`` opens an output item,
``content_part.added`` / ``reasoning_summary_part.added`` open its parts, and the
``*.delta`` events grow their text. ``*.done`` events carry the final value of what
they close. The terminal event (``response.completed``, ``.incomplete`` or ``.failed``)
carries the whole response: it becomes the result, after a check that the deltas
added up to the same texts (a difference is reported as a warning, never hidden). A
terminal event with an empty ``output`` (a failed response's, from some proxies) does
not erase what the deltas built: that is kept, with a warning.

An ``error`` event, or a ``response.failed`` with an ``error``, is kept as the
stream's error. Events we do not know (web search progress, ...) are ignored: their
``output_item.done`` carries what they produced.

Indexes (``output_index``, ``content_index``, ``summary_index``, ``annotation_index``)
place items and parts in lists; an index is used only if it is an integer from 0 to the
number of events that arrived so far, so a hostile ``output_index`` of 10**9 costs
nothing (the event is skipped and said in a warning, as is any field of the wrong type).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..chunks import RESPONSE_STARTED_EVENTS, RESPONSE_TERMINAL_EVENTS, plain

# Called with a field's path, the value of the wrong type found there, and what belongs there.
Skip = Callable[[str, Any, str], None]

# Event name (without .delta/.done) -> (list inside the item and its index field, text field).
_TEXT_EVENTS: dict[str, tuple[tuple[str, str] | None, str]] = {
    "response.output_text": (("content", "content_index"), "text"),
    "response.refusal": (("content", "content_index"), "refusal"),
    "response.reasoning_text": (("content", "content_index"), "text"),
    "response.reasoning_summary_text": (("summary", "summary_index"), "text"),
    "response.function_call_arguments": (None, "arguments"),
    "response.custom_tool_call_input": (None, "input"),
    "response.code_interpreter_call_code": (None, "code"),
    "response.mcp_call_arguments": (None, "arguments"),
}
# Events that open or close a part of an item -> (list inside the item, its index field).
_PART_EVENTS = {
    "response.content_part.added": ("content", "content_index"),
    "response.content_part.done": ("content", "content_index"),
    "response.reasoning_summary_part.added": ("summary", "summary_index"),
    "response.reasoning_summary_part.done": ("summary", "summary_index"),
}


def _put(items: list[Any], index: int, value: Any) -> None:
    while len(items) <= index:
        items.append(None)
    items[index] = value


class _Pieces(list[str]):
    """A text still growing, kept as its deltas: joining once beats copying it at every delta."""


def _final(value: Any) -> Any:
    return "".join(value) if type(value) is _Pieces else value


def _copy_item(item: Any) -> Any:
    """A copy of an item with its texts joined; its parts are copied too, deeper values shared."""
    if type(item) is not dict:
        return item
    item = _joined(item)
    for key in ("content", "summary"):
        if isinstance(item.get(key), list):
            item[key] = [_joined(p) if isinstance(p, dict) else p for p in item[key]]
    return item


def _joined(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _final(v) for k, v in fields.items()}


def _texts(item: Any) -> list[Any]:
    """What the deltas of an item build, to compare with its final form."""
    if not isinstance(item, dict):
        return [item]
    texts: list[Any] = [_final(item.get(field)) for field in ("arguments", "input", "code")]
    for key in ("content", "summary"):
        parts = item.get(key)
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict):
                texts += [_final(part.get("text")), _final(part.get("refusal"))]
    return texts


def _as_error(error: Any) -> dict[str, Any]:
    error = plain(error)
    return error if type(error) is dict else {"message": str(error)}


class ResponsesAccumulator:
    """Builds the final ``response`` object from Responses API stream events."""

    def __init__(self, skip: Skip) -> None:
        self._response: dict[str, Any] = {"object": "response"}
        self._output: list[dict[str, Any] | None] = []
        self._terminal: dict[str, Any] | None = None
        self._events = 0
        self._skip = skip
        self.error: dict[str, Any] | None = None
        self.warnings: list[str] = []

    def feed(self, event: dict[str, Any]) -> None:
        self._events += 1
        kind = event.get("type")
        if type(kind) is not str:
            self._skip("type", kind, "a string")
            return
        base, _, suffix = kind.rpartition(".")
        text_event = _TEXT_EVENTS.get(base)
        if text_event is not None:
            self._text(event, text_event, suffix)
        elif kind in _PART_EVENTS:
            self._part(event, *_PART_EVENTS[kind])
        elif kind == "response.output_item.added" or kind == "response.output_item.done":
            self._item(event, done=kind.endswith("done"))
        elif kind == "response.output_text.annotation.added":
            self._annotation(event)
        elif kind in RESPONSE_STARTED_EVENTS:
            response = self._object(event, "response")
            if response is not None:
                self._response = {**response, "output": None}
                output = response.get("output")
                items = self._items_of(output) if output else None
                if not self._output and items:
                    self._output = items
        elif kind in RESPONSE_TERMINAL_EVENTS:
            self._finish(self._object(event, "response") or {})
        elif kind == "error":
            nested = event.get("error")
            if nested:
                self.error = _as_error(nested)
            else:
                self.error = {k: plain(v) for k, v in event.items() if k not in ("type", "sequence_number")}

    def _object(self, event: dict[str, Any], field: str) -> dict[str, Any] | None:
        """The object in ``event[field]`` as JSON (``{}`` if absent), or None if it is not one."""
        value = event.get(field)
        if value is None:
            return {}
        fields = plain(value)
        if type(fields) is not dict:
            self._skip(field, value, "an object")
            return None
        return fields

    def _items_of(self, output: Any) -> list[Any] | None:
        if type(output) is not list:
            self._skip("response.output", output, "an array")
            return None
        items = []
        for item in output:
            if type(item) is not dict:
                self._skip("response.output[]", item, "an object")
                item = None
            items.append(_copy_item(item))
        return items

    def _index(self, event: dict[str, Any], field: str) -> int | None:
        """``event[field]`` as an index into a list we build, or None (said) if it cannot be one."""
        index = event.get(field)
        if index is None:
            return 0
        if type(index) is not int:
            self._skip(field, index, "an integer")
            return None
        if not 0 <= index <= self._events:
            self._skip(field, index, "an index from 0 to the number of events so far")
            return None
        return index

    def _list_in(self, container: dict[str, Any], key: str) -> list[Any]:
        items = container.get(key)
        if type(items) is not list:
            if items is not None:
                self._skip(f"item.{key}", items, "an array")
            items = container[key] = []
        return items

    def _item(self, event: dict[str, Any], done: bool) -> None:
        index = self._index(event, "output_index")
        item = self._object(event, "item")
        if index is None or item is None:
            return
        item = _copy_item(item)
        if done and index < len(self._output) and _texts(self._output[index]) != _texts(item):
            self.warnings.append(f"output item {index}: its deltas differ from its output_item.done")
        _put(self._output, index, item)

    def _item_at(self, event: dict[str, Any]) -> dict[str, Any] | None:
        index = self._index(event, "output_index")
        if index is None:
            return None
        item = self._output[index] if index < len(self._output) else None
        if item is None:  # an event for an item whose `added` event never came
            item = {"id": plain(event.get("item_id"))}
            _put(self._output, index, item)
        return item

    def _part(self, event: dict[str, Any], key: str, index_field: str) -> None:
        item = self._item_at(event)
        index = self._index(event, index_field)
        part = self._object(event, "part")
        if item is not None and index is not None and part is not None:
            _put(self._list_in(item, key), index, dict(part))

    def _part_at(self, event: dict[str, Any], key: str, index_field: str) -> dict[str, Any] | None:
        item = self._item_at(event)
        index = self._index(event, index_field)
        if item is None or index is None:
            return None
        parts = self._list_in(item, key)
        part = parts[index] if index < len(parts) else None
        if type(part) is not dict:  # a delta for a part whose `added` event never came
            if part is not None:
                self._skip(f"item.{key}[]", part, "an object")
            part = {}
            _put(parts, index, part)
        return part

    def _annotation(self, event: dict[str, Any]) -> None:
        part = self._part_at(event, "content", "content_index")
        index = self._index(event, "annotation_index")
        if part is not None and index is not None:
            _put(self._list_in(part, "annotations"), index, plain(event.get("annotation")))

    def _text(self, event: dict[str, Any], where: tuple[tuple[str, str] | None, str], suffix: str) -> None:
        container, field = where
        target = self._item_at(event) if container is None else self._part_at(event, *container)
        if target is None:
            return
        if suffix == "delta":
            delta = event.get("delta")
            if type(delta) is not str:
                if delta is not None:
                    self._skip("delta", delta, "a string")
                    return
                delta = ""
            pieces = target.get(field)
            if type(pieces) is not _Pieces:
                pieces = target[field] = _Pieces([pieces] if type(pieces) is str and pieces else [])
            pieces.append(delta)
            logprobs = event.get("logprobs")
            if logprobs:
                if isinstance(logprobs, list):
                    self._list_in(target, "logprobs").extend(plain(logprobs))
                else:
                    self._skip("logprobs", logprobs, "an array")
        elif suffix == "done":
            final = event.get(field)
            if final is not None:
                # Without deltas there is nothing to differ (LM Studio sends arguments only here).
                built = target.get(field)
                if type(built) is _Pieces and final != "".join(built):
                    self.warnings.append(f"{event.get('type')}: the deltas differ from its final value")
                target[field] = plain(final)

    def _finish(self, response: dict[str, Any]) -> None:
        built = [_copy_item(i) for i in self._items()]
        final = response.get("output")
        if final is None or self._items_of(final) is None:  # no output: keep what the deltas built
            response = {**response, "output": built}
        elif not final and built:  # a proxy's response.failed can say [] after sending deltas
            self.warnings.append("the terminal event's output is empty: kept what its events built")
            response = {**response, "output": built}
        elif built and [_texts(i) for i in built] != [_texts(i) for i in final]:
            self.warnings.append("the terminal event's output differs from what the stream's events built")
        self._terminal = response
        error = response.get("error")
        if error and self.error is None:
            self.error = _as_error(error)

    def _items(self) -> list[dict[str, Any]]:
        return [item for item in self._output if item is not None]

    def snapshot(self) -> dict[str, Any]:
        # Items and parts are copied: the next deltas must not change a snapshot already handed out.
        if self._terminal is not None:
            output = self._terminal.get("output")
            return {**self._terminal, "output": [_copy_item(i) for i in output or ()]}
        return {**self._response, "output": [_copy_item(i) for i in self._items()]}

    def incomplete_reason(self) -> str | None:
        if self._terminal is not None:
            return None
        return "the stream ended before its terminal event (response.completed, .incomplete or .failed)"
