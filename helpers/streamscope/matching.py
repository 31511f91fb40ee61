"""When a request is "the same request" as a recorded one: the replay server's one matching rule.

A client library sends a request in its own spelling: ``"temperature": 0.0`` where the
recording has ``0``, ``"n": 1`` or ``"tools": []`` where the recording has nothing, a
message's ``content`` as a one-item list of text parts where the recording has a string.
The API reads each pair as the same request, so the replay server must too.
:func:`request_form` writes a request body in one spelling (its *form*); two requests are
the same request when their paths and forms are equal. :func:`differing_fields` names the
fields in which two forms differ, for the 404 that says why nothing matched.

A path is written in its full form (:func:`api_path`: ``chat/completions`` ->
``/v1/chat/completions``) once, where a request or recording comes in, and passed along as an
:data:`ApiPath`; only :func:`match_key`, which names a request from any spelling, writes it itself.

The rule, field by field (the README's table "Which recording answers a request" lists it):

- Numbers are compared as JSON numbers: ``0`` and ``0.0`` are one number (``true`` is
  not ``1``).
- A field the API reads as absent counts as absent: ``null`` (the API's reference gives
  ``null`` as "not given" for every optional field), a value equal to the field's
  documented default (``DEFAULTS``), ``parallel_tool_calls`` and ``tool_choice`` ``"auto"``/
  ``"none"`` without tools, and the ``stream_options`` entries that only change what the
  stream carries beside the answer when left at their default (``include_obfuscation: true``,
  ``include_usage: false``).
- Fields that cannot change what the model returns are left out (``IGNORED_FIELDS``:
  who asked, what is stored, cache hints).
- Content: a chat message's ``content`` given as one text part
  (``[{"type": "text", "text": s}]``) is the string ``s``; a Responses ``input`` given as one
  user message, whose content is ``s`` or one ``input_text`` part of ``s`` (with or without
  ``"type": "message"``), is the string ``s``; every Responses message's one-part content is
  its text likewise.
- Everything else must be equal: model, messages, prompt, input, temperature other than
  the default, max_tokens, stop, tools, stream, stream_options.include_usage: true, ...
  Any of these changes what comes back, so a difference there refuses a match.

The rule is applied once per recording (when the index is built) and once per request;
``benchmarks/replay.py`` times a match against a folder of 1,000 recordings.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, NewType

__all__ = [
    "CHAT",
    "COMPLETIONS",
    "DEFAULTS",
    "IGNORED_FIELDS",
    "RESPONSES",
    "ApiPath",
    "api_path",
    "differing_fields",
    "form_key",
    "json_number_form",
    "match_key",
    "request_form",
    "unread_fields",
]

# An API path in its full form, as ``api_path`` writes it.
ApiPath = NewType("ApiPath", str)

CHAT, COMPLETIONS, RESPONSES = (
    ApiPath("/v1/chat/completions"),
    ApiPath("/v1/completions"),
    ApiPath("/v1/responses"),
)

# Request fields that cannot change what the model returns.
IGNORED_FIELDS = frozenset(
    {"user", "metadata", "store", "safety_identifier", "prompt_cache_key", "prompt_cache_retention"}
)

# Each endpoint's documented defaults (the API reference's "Defaults to ..."; the OpenAPI
# description's `default`): a field given at its default is the field left out.
_SAMPLING = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "stream": False}
DEFAULTS: dict[str, dict[str, Any]] = {
    CHAT: {
        **_SAMPLING,
        "n": 1,
        "logprobs": False,
        "logit_bias": {},
        "tools": [],
        "functions": [],
        "response_format": {"type": "text"},
        "modalities": ["text"],
        "service_tier": "auto",
    },
    COMPLETIONS: {**_SAMPLING, "n": 1, "best_of": 1, "echo": False, "max_tokens": 16, "logit_bias": {}},
    RESPONSES: {
        "temperature": 1,
        "top_p": 1,
        "stream": False,
        "tools": [],
        "include": [],
        "truncation": "disabled",
        "background": False,
        "service_tier": "auto",
        "text": {"format": {"type": "text"}},
    },
}
# stream_options entries at their default (the obfuscation padding is on unless turned off).
_STREAM_OPTION_DEFAULTS = {"include_obfuscation": True, "include_usage": False}


def api_path(path: str) -> ApiPath:
    """An API path in its full form: ``chat/completions`` -> ``/v1/chat/completions``."""
    path = "/" + path.strip("/")
    return ApiPath(path if path.startswith("/v1/") else "/v1" + path)


def json_number_form(value: Any) -> Any:
    """``value`` with every number in one spelling: an integral float as its int (``0.0`` -> ``0``)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [json_number_form(v) for v in value]
    if isinstance(value, dict):
        return {k: json_number_form(v) for k, v in value.items()}
    return value


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: Python's ``==`` says ``True == 1``, JSON does not."""
    if a != b:  # cheap, and enough where the values differ
        return False
    return json.dumps(json_number_form(a), sort_keys=True) == json.dumps(json_number_form(b), sort_keys=True)


def _one_text(content: Any, part_type: str) -> Any:
    """A content given as one text part of ``part_type``, as its string; any other content as it is."""
    if isinstance(content, list) and len(content) == 1:
        part = content[0]
        if isinstance(part, dict) and part.keys() == {"type", "text"} and part["type"] == part_type:
            return part["text"]
    return content


def _message_form(message: Any, part_type: str) -> Any:
    if not isinstance(message, dict):
        return message
    form = {k: v for k, v in message.items() if not (k == "type" and v == "message")}
    if "content" in form:
        form["content"] = _one_text(form["content"], part_type)
    return form


def _input_form(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    items = [_message_form(item, "input_text") for item in value]
    only = items[0] if len(items) == 1 else None
    if isinstance(only, dict) and only.keys() == {"role", "content"} and only["role"] == "user":
        return only["content"] if isinstance(only["content"], str) else items
    return items


_ABSENT = object()


def _field_form(path: ApiPath, name: str, value: Any, has_tools: bool) -> Any:
    """One field's form, or _ABSENT where the field counts as left out."""
    if value is None or name in IGNORED_FIELDS:
        return _ABSENT
    if name in DEFAULTS.get(path, {}) and _same_json(value, DEFAULTS[path][name]):
        return _ABSENT
    if (
        not has_tools
        and name in ("parallel_tool_calls", "tool_choice")
        and value in (True, False, "auto", "none")
    ):
        return _ABSENT
    if name == "stream_options" and isinstance(value, dict):
        value = {
            k: v
            for k, v in value.items()
            if v is not None
            and not (k in _STREAM_OPTION_DEFAULTS and _same_json(v, _STREAM_OPTION_DEFAULTS.get(k)))
        }
        return value or _ABSENT
    if name == "messages" and path == CHAT and isinstance(value, list):
        value = [_message_form(m, "text") for m in value]
    elif name == "input" and path == RESPONSES:
        value = _input_form(value)
    return json_number_form(value)


def request_form(
    path: ApiPath, body: Mapping[str, Any], *, fields: Collection[str] | None = None
) -> dict[str, Any]:
    """THE rule: ``body`` (sent to ``path``, in full form) in the one spelling that equal requests share.

    Two requests are the same request when their ``api_path``s and forms are equal.
    ``fields``: form only these fields of the body (the others are skipped unread): the
    replay index asks only for the fields that some recording has, so that a body with
    300,000 other keys costs one pass over its keys (``unread_fields`` finds those).
    """
    has_tools = bool(body.get("tools"))  # null and [] are no tools
    form = {}
    for name, value in body.items():
        if fields is not None and name not in fields:
            continue
        if (formed := _field_form(path, name, value, has_tools)) is not _ABSENT:
            form[name] = formed
    return form


def unread_fields(
    path: ApiPath, body: Mapping[str, Any], fields: Collection[str], *, limit: int
) -> list[str]:
    """Up to ``limit`` fields of ``body`` outside ``fields`` that do not count as absent, in the body's order.

    Where ``fields`` are those the recordings have, a body with any of these matches nothing.
    Cheap: a value is read only to see whether it is a default, a comparison of small values.
    """
    has_tools = bool(body.get("tools"))  # null and [] are no tools
    found: list[str] = []
    for name, value in body.items():
        if len(found) == limit:
            break
        if name not in fields and not _counts_as_absent(path, name, value, has_tools):
            found.append(name)
    return found


def _counts_as_absent(path: ApiPath, name: str, value: Any, has_tools: bool) -> bool:
    if value is None or name in IGNORED_FIELDS:
        return True
    if isinstance(value, list | dict) and len(value) > 2:  # no default is that big: never walk it
        return False
    return _field_form(path, name, value, has_tools) is _ABSENT


def form_key(path: ApiPath, form: Mapping[str, Any]) -> str:
    """The identity of a request already formed (``request_form``), as text: path and form, keys sorted."""
    return path + " " + json.dumps(form, sort_keys=True, separators=(",", ":"))


def match_key(path: str, body: Mapping[str, Any]) -> str:
    """A request's identity for replay, as text, from any spelling of its path: equal keys, same request."""
    full = api_path(path)
    return form_key(full, request_form(full, body))


def differing_fields(asked: Mapping[str, Any], recorded: Mapping[str, Any]) -> list[str]:
    """The fields in which two request forms differ (in either), sorted: never empty for unequal forms.

    A field is named by its top-level name; where it holds an object (``stream_options``,
    ``text``) on each side that has it, by its dotted path inside: ``stream_options.include_usage``.
    """
    names = sorted(set(asked) | set(recorded))
    differing: list[str] = []
    for name in names:
        a, r = asked.get(name, _ABSENT), recorded.get(name, _ABSENT)
        if a is not _ABSENT and r is not _ABSENT and _same_json(a, r):
            continue
        objects = [v for v in (a, r) if v is not _ABSENT]
        inner = []
        if all(isinstance(v, dict) for v in objects):  # an object on each side, or on the only side
            inner = differing_fields(*(v if v is not _ABSENT else {} for v in (a, r)))
        differing += [f"{name}.{i}" for i in inner] or [name]
    return differing
