"""Merging deltas: unknown fields (pieces joined, objects by field, lists by index) and tool calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..chunks import fields

# Called with a field's path, the value of the wrong type found there, and what belongs there.
Skip = Callable[[str, Any, str], None]


# Unknown delta fields are merged this deep; below, a later value replaces an earlier one.
# It keeps the merge's recursion small whatever the nesting a hostile stream sends.
_MERGE_DEPTH = 32


def _object(value: Any) -> dict[str, Any] | None:
    """A JSON object's fields (a dict, or an SDK model's), or None if ``value`` is neither."""
    if type(value) is dict:
        return value
    return fields(value) if hasattr(value, "__dict__") else None  # str, int, list... have none


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


def _merge(old: Any, new: Any, depth: int = 0) -> Any:
    """``new``, a value of a field we do not know, merged into what that field received before."""
    if depth >= _MERGE_DEPTH:
        return new
    if type(new) is str:
        if type(old) is _Pieces:
            old.append(new)
            return old
        return _Pieces([new])
    if type(new) is dict:
        merged = old if type(old) is dict else {}
        for key, value in new.items():
            merged[key] = _merge(merged.get(key), value, depth + 1)
        return merged
    if type(new) is list:
        merged = old if type(old) is _Indexed else _Indexed()
        for item in new:
            index = item.get("index") if type(item) is dict else None
            if type(index) is int:
                previous = merged.by_index.get(index)
                if previous is not None:
                    _merge(previous, item, depth + 1)
                    continue
                item = merged.by_index[index] = _merge(None, item, depth + 1)
            else:
                item = _merge(None, item, depth + 1)
            merged.append(item)
        return merged
    return new if old is None else old  # numbers, booleans: the first non-null value


def _resolved(value: Any, depth: int = 0) -> Any:
    """A merged value as JSON: pieces joined (or kept once if all alike), containers copied."""
    if depth >= _MERGE_DEPTH:
        return value
    if type(value) is _Pieces:
        first = value[0]
        return first if all(piece == first for piece in value) else "".join(value)
    if type(value) is dict:
        return {key: _resolved(v, depth + 1) for key, v in value.items()}
    if type(value) is _Indexed:
        return [_resolved(v, depth + 1) for v in value]
    return value


class _Call:
    """One tool call (or the legacy ``function_call``) being assembled."""

    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []

    def merge(self, call: dict[str, Any], where: str, skip: Skip) -> None:
        """Merge one delta of this call; ``where`` names it in messages about skipped fields."""
        function = call.get("function")
        if function is None:  # the legacy function_call: name and arguments at its top
            function, in_function = call, where
        else:
            in_function = where + ".function"
            function = _object(function)
            if function is None:
                skip(in_function, call.get("function"), "an object")
                function = {}
        self.id = self._once(self.id, call.get("id"), where + ".id", skip)
        self.type = self._once(self.type, call.get("type"), where + ".type", skip)
        self.name = self._once(self.name, function.get("name"), in_function + ".name", skip)
        arguments = function.get("arguments")
        if type(arguments) is str:
            if arguments:
                self.arguments.append(arguments)
        elif arguments is not None:
            skip(in_function + ".arguments", arguments, "a string")

    @staticmethod
    def _once(kept: str | None, value: Any, where: str, skip: Skip) -> str | None:
        if value is None:
            return kept
        if type(value) is not str:
            skip(where, value, "a string")
            return kept
        return kept or value or None

    def function(self) -> dict[str, Any]:
        return {"name": self.name or "", "arguments": "".join(self.arguments)}
