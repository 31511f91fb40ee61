"""The chat model's file with a second chat template for requests that carry tools.

llama-server (b10605) picks a request's chat template by the model file's metadata:
``tokenizer.chat_template`` for every request, ``tokenizer.chat_template.tool_use`` (if present)
for a request with ``tools`` (common/chat.cpp, common_chat_templates_apply_jinja). A
``--chat-template-file`` replaces the first and drops the second, so a template for tool calls
alone can only come in the file. This module copies the verified SmolLM2 file into the models
cache with that key added (GGUF v3: one key-value pair more, the tensors byte for byte), so
plain chat and JSON-schema requests keep SmolLM2's own template and its grammar.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

__all__ = ["TOOL_USE_KEY", "TOOL_USE_TEMPLATE", "chat_templates", "with_tool_use_template"]

TOOL_USE_KEY = "tokenizer.chat_template.tool_use"
TOOL_USE_TEMPLATE = Path(__file__).parent / "smollm2-tools.jinja"

_MAGIC = b"GGUF"
_STRING, _ARRAY, _UINT32 = 8, 9, 4
# Bytes of each fixed-size GGUF value type (ggml's gguf.cpp: GGUF_TYPE_SIZE).
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class _Cursor:
    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return value

    def string(self) -> str:
        size = self.take("Q")
        self.at += size
        return self.data[self.at - size : self.at].decode()

    def skip_value(self, kind: int) -> None:
        if kind == _STRING:
            self.string()
        elif kind == _ARRAY:
            item, count = self.take("I"), self.take("Q")
            if item in _FIXED:
                self.at += _FIXED[item] * count
            else:
                for _ in range(count):
                    self.skip_value(item)
        else:
            self.at += _FIXED[kind]


def _layout(head: bytes) -> tuple[int, int, dict[str, tuple[int, int]], int, int]:
    """(tensors, kvs, {key: (value start, value end)}, end of the tensor infos, alignment)."""
    if head[:4] != _MAGIC or struct.unpack_from("<I", head, 4)[0] != 3:
        raise ValueError("not a GGUF version 3 file")
    cur = _Cursor(head, 8)
    tensors, kvs = cur.take("Q"), cur.take("Q")
    values: dict[str, tuple[int, int]] = {}
    alignment = 32  # GGUF_DEFAULT_ALIGNMENT
    for _ in range(kvs):
        key, kind = cur.string(), cur.take("I")
        start = cur.at
        cur.skip_value(kind)
        values[key] = (start, cur.at)
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", head, start)[0]
    for _ in range(tensors):
        cur.string()
        dims = cur.take("I")
        cur.at += 8 * dims + 4 + 8  # the shape, the type, the offset into the data
    return tensors, kvs, values, cur.at, alignment


def _read_head(path: Path) -> bytes:
    # The metadata and tensor infos of a small model fit well inside its first 8 MiB.
    with path.open("rb") as f:
        return f.read(8 << 20)


def chat_templates(path: Path) -> dict[str, str]:
    """The file's chat templates by key (``tokenizer.chat_template*``)."""
    head = _read_head(path)
    _, _, values, _, _ = _layout(head)
    found = {}
    for key, (start, _end) in values.items():
        if key.startswith("tokenizer.chat_template"):
            found[key] = _Cursor(head, start).string()
    return found


def _string_kv(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", _STRING) + struct.pack("<Q", len(v)) + v


def with_tool_use_template(base: Path, template: Path = TOOL_USE_TEMPLATE) -> Path:
    """``base`` with ``template`` as its tool-use chat template, made once beside it (named by the
    template's sha256, so a changed template makes a new file)."""
    text = template.read_text()
    tag = hashlib.sha256(text.encode()).hexdigest()[:12]
    target = base.with_name(f"{base.stem}.tool-use-{tag}.gguf")
    if target.exists():
        return target
    head = _read_head(base)
    tensors, kvs, values, infos_end, alignment = _layout(head)
    if TOOL_USE_KEY in values:
        raise ValueError(f"{base} already has a {TOOL_USE_KEY} template")
    kv_end = values[list(values)[-1]][1] if values else 24
    data_start = -(-infos_end // alignment) * alignment
    new_head = (
        _MAGIC + struct.pack("<IQQ", 3, tensors, kvs + 1) + head[24:kv_end] + _string_kv(TOOL_USE_KEY, text)
        + head[kv_end:infos_end]
    )  # fmt: skip
    new_head += b"\0" * (-len(new_head) % alignment)
    partial = target.with_name(target.name + ".partial")
    with base.open("rb") as src, partial.open("wb") as out:
        out.write(new_head)
        src.seek(data_start)
        while block := src.read(1 << 20):
            out.write(block)
    os.replace(partial, target)
    return target
