"""Accumulating Responses API stream events into the final ``response`` object.

The lifecycle events (``response.created``, ``.in_progress``, ``.queued``) carry the
response's settings; ``response.output_item.added`` opens an output item,
``content_part.added`` / ``reasoning_summary_part.added`` open its parts, and the
``*.delta`` events grow their text. ``*.done`` events carry the final value of what
they close. The terminal event (``response.completed``, ``.incomplete`` or ``.failed``)
carries the whole response: it becomes the result, after a check that the deltas
added up to the same texts (a difference is reported as a warning, never hidden).

An ``error`` event, or a ``response.failed`` with an ``error``, is kept as the
stream's error. Events we do not know (web search progress, ...) are ignored: their
``output_item.done`` carries what they produced.
"""

from __future__ import annotations

from typing import Any

from ._objects import plain

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_LIFECYCLE_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})

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


def _copy_item(item: dict[str, Any]) -> dict[str, Any]:
    """A copy of an item with its texts joined; its parts are copied too, deeper values shared."""
    item = _joined(item)
    for key in ("content", "summary"):
        if isinstance(item.get(key), list):
            item[key] = [_joined(p) if isinstance(p, dict) else p for p in item[key]]
    return item


def _joined(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _final(v) for k, v in fields.items()}


def _texts(item: dict[str, Any] | None) -> list[Any]:
    """What the deltas of an item build, to compare with its final form."""
    if not item:
        return []
    texts: list[Any] = [_final(item.get(field)) for field in ("arguments", "input", "code")]
    for key in ("content", "summary"):
        for part in item.get(key) or ():
            if isinstance(part, dict):
                texts += [_final(part.get("text")), _final(part.get("refusal"))]
    return texts


class ResponsesAccumulator:
    """Builds the final ``response`` object from Responses API stream events."""

    def __init__(self) -> None:
        self._response: dict[str, Any] = {"object": "response"}
        self._output: list[dict[str, Any] | None] = []
        self._terminal: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.warnings: list[str] = []

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type") or ""
        base, _, suffix = kind.rpartition(".")
        text_event = _TEXT_EVENTS.get(base)
        if text_event is not None:
            self._text(event, text_event, suffix)
        elif kind in _PART_EVENTS:
            key, index_field = _PART_EVENTS[kind]
            parts = self._item_at(event).setdefault(key, [])
            _put(parts, event.get(index_field) or 0, dict(plain(event.get("part")) or {}))
        elif kind == "response.output_item.added" or kind == "response.output_item.done":
            self._item(event, done=kind.endswith("done"))
        elif kind == "response.output_text.annotation.added":
            annotations = self._part_at(event, "content", "content_index").setdefault("annotations", [])
            _put(annotations, event.get("annotation_index") or 0, plain(event.get("annotation")))
        elif kind in _LIFECYCLE_EVENTS:
            response = plain(event.get("response")) or {}
            self._response = {**response, "output": None}
            if not self._output and response.get("output"):
                self._output = [_copy_item(i) for i in response["output"]]
        elif kind in TERMINAL_EVENTS:
            self._finish(plain(event.get("response")) or {})
        elif kind == "error":
            nested = event.get("error")
            if nested:
                self.error = plain(nested)
            else:
                self.error = {k: plain(v) for k, v in event.items() if k not in ("type", "sequence_number")}

    def _item(self, event: dict[str, Any], done: bool) -> None:
        index = event.get("output_index") or 0
        item = _copy_item(plain(event.get("item")) or {})
        if done and index < len(self._output) and _texts(self._output[index]) != _texts(item):
            self.warnings.append(f"output item {index}: its deltas differ from its output_item.done")
        _put(self._output, index, item)

    def _item_at(self, event: dict[str, Any]) -> dict[str, Any]:
        index = event.get("output_index") or 0
        item = self._output[index] if index < len(self._output) else None
        if item is None:  # an event for an item whose `added` event never came
            item = {"id": event.get("item_id")}
            _put(self._output, index, item)
        return item

    def _part_at(self, event: dict[str, Any], key: str, index_field: str) -> dict[str, Any]:
        parts = self._item_at(event).setdefault(key, [])
        index = event.get(index_field) or 0
        part = parts[index] if index < len(parts) else None
        if part is None:  # a delta for a part whose `added` event never came
            part = {}
            _put(parts, index, part)
        return part

    def _text(self, event: dict[str, Any], where: tuple[tuple[str, str] | None, str], suffix: str) -> None:
        container, field = where
        target = self._item_at(event) if container is None else self._part_at(event, *container)
        if suffix == "delta":
            pieces = target.get(field)
            if type(pieces) is not _Pieces:
                pieces = target[field] = _Pieces([pieces] if pieces else [])
            pieces.append(event.get("delta") or "")
            logprobs = event.get("logprobs")
            if logprobs:
                target.setdefault("logprobs", []).extend(plain(logprobs))
        elif suffix == "done":
            final = event.get(field)
            if final is not None:
                # Without deltas there is nothing to differ (LM Studio sends arguments only here).
                built = target.get(field)
                if type(built) is _Pieces and final != "".join(built):
                    self.warnings.append(f"{event.get('type')}: the deltas differ from its final value")
                target[field] = final

    def _finish(self, response: dict[str, Any]) -> None:
        built = [_copy_item(i) for i in self._items()]
        final = response.get("output")
        if final is None:  # a terminal event without output: keep what the deltas built
            response = {**response, "output": built}
        elif built and [_texts(i) for i in built] != [_texts(i) for i in final]:
            self.warnings.append("the terminal event's output differs from what the stream's events built")
        self._terminal = response
        error = response.get("error")
        if error and self.error is None:
            self.error = error

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
