"""Reading events that arrive either as parsed JSON (dicts) or as the openai SDK's pydantic models.

The accumulators read every event through `fields`, so a dict costs one type check
and a model costs no `model_dump`: pydantic keeps a model's declared fields in its
``__dict__`` and the fields it did not declare (``obfuscation``, Azure's filter
results, ...) in ``__pydantic_extra__``. Nothing here imports pydantic or openai.
"""

from __future__ import annotations

from typing import Any

_SCALARS = (str, int, float, bool, type(None))


def fields(obj: Any) -> dict[str, Any]:
    """The fields of a JSON object or of a pydantic model, as a dict (a dict is returned as is)."""
    if type(obj) is dict:
        return obj
    extra = getattr(obj, "__pydantic_extra__", None)
    return {**obj.__dict__, **extra} if extra else obj.__dict__


def plain(value: Any) -> Any:
    """A value as JSON data: models are dumped as the API sent them; JSON data is returned as is."""
    if isinstance(value, _SCALARS) or type(value) is dict:
        return value
    if type(value) is list:
        if all(isinstance(v, _SCALARS) or type(v) is dict for v in value):
            return value
        return [plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"not a JSON value or a pydantic model: {type(value).__name__}")
    return dump(mode="json", by_alias=True, exclude_unset=True)
