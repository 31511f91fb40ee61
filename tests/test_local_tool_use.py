"""The chat model's file with a tool-use chat template added (streamscope.backends.local.tool_use)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from streamscope.backends.local import models, tool_use


def _string(text: str) -> bytes:
    return struct.pack("<Q", len(text.encode())) + text.encode()


def _gguf(path: Path, alignment: int = 32) -> bytes:
    """A GGUF v3 file with three keys (a string, an array of strings, the alignment) and one tensor."""
    kvs = (
        _string("tokenizer.chat_template") + struct.pack("<I", 8) + _string("{{ messages }}")
        + _string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + _string("a") + _string("bc")
        + _string("general.alignment") + struct.pack("<II", 4, alignment)
    )  # fmt: skip
    infos = _string("weight") + struct.pack("<I", 2) + struct.pack("<QQ", 2, 3) + struct.pack("<IQ", 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 3) + kvs + infos
    head += b"\0" * (-len(head) % alignment)
    data = struct.pack("<6f", *range(6))
    path.write_bytes(head + data)
    return data


def test_the_template_is_added_and_the_tensors_are_kept_byte_for_byte(tmp_path: Path) -> None:
    base = tmp_path / "model.gguf"
    data = _gguf(base)
    template = tmp_path / "tools.jinja"
    template.write_text("{{ '>>>all' }}")
    made = tool_use.with_tool_use_template(base, template)
    assert made.parent == tmp_path and made.name.startswith("model.tool-use-")
    assert tool_use.chat_templates(made) == {
        "tokenizer.chat_template": "{{ messages }}",
        tool_use.TOOL_USE_KEY: "{{ '>>>all' }}",
    }
    blob = made.read_bytes()
    assert struct.unpack_from("<IQQ", blob, 4) == (3, 1, 4)
    assert (len(blob) - len(data)) % 32 == 0 and blob.endswith(data)
    assert tool_use.with_tool_use_template(base, template) == made  # made once
    template.write_text("{{ 'changed' }}")
    assert tool_use.with_tool_use_template(base, template) != made  # a new template, a new file


def test_a_file_that_has_one_already_or_is_not_gguf_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "model.gguf"
    _gguf(base)
    made = tool_use.with_tool_use_template(base)
    with pytest.raises(ValueError, match="already has"):
        tool_use.with_tool_use_template(made)
    (tmp_path / "x.gguf").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a GGUF"):
        tool_use.with_tool_use_template(tmp_path / "x.gguf")


def test_the_template_selects_llama_cpps_functionary_v3_2_format() -> None:
    # common/chat.cpp (b10605) picks that format when the template has both markers.
    text = tool_use.TOOL_USE_TEMPLATE.read_text()
    assert ">>>all" in text and ">>>${recipient}" in text
    assert "'<|start_header_id|>assistant<|end_header_id|>\\n\\n>>>'" in text  # the parser's literal


def test_the_real_model_file_gets_it(tmp_path: Path) -> None:
    chat = models.MODELS[0]
    path = models.models_dir() / chat.file_name
    if not path.exists():
        pytest.skip("the local models are not fetched (python -m streamscope models)")
    copy = tmp_path / chat.file_name
    copy.symlink_to(path)
    made = tool_use.with_tool_use_template(copy)
    templates = tool_use.chat_templates(made)
    assert templates["tokenizer.chat_template"] == tool_use.chat_templates(path)["tokenizer.chat_template"]
    assert templates[tool_use.TOOL_USE_KEY] == tool_use.TOOL_USE_TEMPLATE.read_text()
    assert made.stat().st_size - path.stat().st_size < 8192
