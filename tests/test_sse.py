"""The SSE decoder against the WHATWG event-stream rules, one rule per test."""

from __future__ import annotations

import pytest
from streamscope.sse import ServerSentEvent, SSEDecoder


def decode(raw: bytes, piece: int | None = None) -> list[ServerSentEvent]:
    """All events of ``raw``, fed whole or ``piece`` bytes at a time, then closed."""
    decoder = SSEDecoder()
    step = piece or max(len(raw), 1)
    events = [e for i in range(0, len(raw), step) for e in decoder.feed(raw[i : i + step])]
    return events + decoder.close()


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("piece", [None, 1, 2])
def test_line_endings(ending: bytes, piece: int | None) -> None:
    raw = b"data: a" + ending + ending + b"data: b" + ending + ending
    assert [e.data for e in decode(raw, piece)] == ["a", "b"]


def test_cr_then_lf_across_two_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CR: no blank line yet
    assert decoder.feed(b"\r\n") == [ServerSentEvent("message", "a", "", None)]


def test_multi_line_data_joins_with_lf() -> None:
    assert decode(b"data: a\ndata:b\ndata\ndata:  c\n\n")[0].data == "a\nb\n\n c"


def test_only_one_leading_space_is_stripped() -> None:
    assert decode(b"data:  two\n\n")[0].data == " two"


def test_comments_and_unknown_fields_are_ignored() -> None:
    raw = b": keep-alive\n:\nfoo: bar\nevent: update\ndata: x\nbaz\n\n"
    assert decode(raw) == [ServerSentEvent("update", "x", "", None)]


def test_event_type_resets_after_each_event() -> None:
    assert [e.event for e in decode(b"event: a\ndata: 1\n\ndata: 2\n\n")] == ["a", "message"]


def test_a_block_without_data_dispatches_nothing_and_resets_the_type() -> None:
    assert decode(b"event: lost\n\ndata: 1\n\n") == [ServerSentEvent("message", "1", "", None)]


def test_id_persists_and_ids_with_nul_are_ignored() -> None:
    events = decode(b"id: 7\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n")
    assert [e.id for e in events] == ["7", "7", "7", ""]


def test_retry_only_with_ascii_digits() -> None:
    events = decode(b"retry: 250\ndata: a\n\nretry: 1.5\ndata: b\n\nretry:\ndata: c\n\n")
    assert [e.retry for e in events] == [250, None, None]


def test_leading_bom_is_dropped_once_even_split() -> None:
    raw = b"\xef\xbb\xbfdata: a\n\n"
    assert [e.data for e in decode(raw, 1)] == ["a"]
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []  # a second BOM is part of the field name


def test_utf8_split_across_reads() -> None:
    raw = "data: héllo 👋\n\n".encode()
    assert all(decode(raw, n)[0].data == "héllo 👋" for n in range(1, 8))


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert decode(b"data: a\xffb\n\n")[0].data == "a\ufffdb"


def test_close_returns_the_event_the_stream_ended_inside() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [ServerSentEvent("message", "a", "", None)]
    assert decoder.close() == [ServerSentEvent("message", "b", "", None)]
    assert decoder.close() == []


def test_close_without_pending_data_returns_nothing() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n: comment")
    assert decoder.close() == []
