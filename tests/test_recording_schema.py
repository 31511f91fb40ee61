"""Recordings that load but could not be served: refused at load, naming the file and the field.

The replay server reads a folder anyone can write to. A file whose fields it cannot send (a
request without a path, events, statuses or headers of the wrong kind) is skipped and reported
once; the server keeps answering from the others, never with a 500 or a dropped connection, and
never sends a recording other than as it was recorded. The hypothesis test mutates any field of
a valid recording into any JSON value and checks exactly that, through HTTP.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamscope.matching import api_path
from streamscope.recording import Recording, load_folder
from streamscope.recording_schema import first_problem
from streamscope.replay import REQUEST_ID_HEADER, RecordingIndex, ReplayServer
from synthetic_recordings import CHAT_BODY, synthetic_chat_recording, synthetic_completion_recording

CHAT_PATH = "/chat/completions"
OTHER_BODY = {**CHAT_BODY, "temperature": 0.5}  # the request the mutated recording answers


def good() -> dict[str, Any]:
    return synthetic_chat_recording().to_dict()


def mutated_chat() -> dict[str, Any]:
    """A valid recording answering OTHER_BODY, under its own name: the one the tests damage."""
    return synthetic_chat_recording(name="test-other", body=OTHER_BODY).to_dict()


def with_change(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


DELETE = object()

# Each finding of issue 16, and its neighbours: (where, the value put there, the field the report names).
DAMAGE = {
    "no path": (("request", "path"), DELETE, "request.path"),
    "path not text": (("request", "path"), 5, "request.path"),
    "path with a newline": (("request", "path"), "/v1/chat/completions\n", "request.path"),
    "method GET": (("request", "method"), "GET", "request.method"),
    "body a list": (("request", "body"), [1], "request.body"),
    "status text": (("response", "status"), "200", "response.status"),
    "status float": (("response", "status"), 200.5, "response.status"),
    "status true": (("response", "status"), True, "response.status"),
    "status 99": (("response", "status"), 99, "response.status"),
    "status 204": (("response", "status"), 204, "response.status"),
    "status 1000": (("response", "status"), 1000, "response.status"),
    "headers a list": (("response", "headers"), ["a"], "response.headers"),
    "header value a number": (("response", "headers", "x-request-id"), 5, "response.headers['x-request-id']"),
    "header value with CRLF": (("response", "headers", "x-request-id"), "a\r\nset-cookie: x", "x-request-id"),
    "header value with NUL": (("response", "headers", "x-request-id"), "a\x00b", "x-request-id"),
    "header value spaced": (("response", "headers", "x-request-id"), " a", "x-request-id"),
    "header value not Latin-1": (("response", "headers", "x-request-id"), "\u2603", "x-request-id"),
    "header name with a space": (("response", "headers", "x request"), "a", "'x request'"),
    "header name empty": (("response", "headers", ""), "a", "response.headers['']"),
    "header twice": (("response", "headers", "Content-Type"), "text/plain", "'Content-Type'"),
    "events an object": (("response", "events"), {"t": 0}, "response.events"),
    "event a number": (("response", "events", 0), 5, "response.events[0]"),
    "event t text": (("response", "events", 1, "t"), "0.1", "response.events[1].t"),
    "event t negative": (("response", "events", 0, "t"), -1, "response.events[0].t"),
    "event t true": (("response", "events", 0, "t"), True, "response.events[0].t"),
    "event t out of order": (("response", "events", 2, "t"), 0.0, "response.events[2].t"),
    "event t missing": (("response", "events", 0, "t"), DELETE, "response.events[0].t"),
    "event raw a number": (("response", "events", 0, "raw"), 5, "response.events[0].raw"),
    "event raw empty": (("response", "events", 0, "raw"), "", "response.events[0].raw"),
    "event raw a surrogate": (("response", "events", 0, "raw"), "data: \ud800\n\n", "response.events[0].raw"),
    "event raw unended": (("response", "events", 0, "raw"), "data: {}", "response.events[0].raw"),
    "incomplete dropped text": (
        ("response", "incomplete"),
        {"reason": "x", "t": 1, "dropped": "yes"},
        "response.incomplete.dropped",
    ),
    "incomplete a list": (("response", "incomplete"), [], "response.incomplete"),
    "name a number": (("name",), 5, "name"),
    "provenance a list": (("provenance",), [], "provenance"),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_field_the_server_cannot_send_is_named_at_load(tmp_path: Path, damage: Any) -> None:
    where, value, field = damage
    (tmp_path / "good.json").write_text(json.dumps(good()))
    (tmp_path / "bad.json").write_text(json.dumps(with_change(mutated_chat(), where, value)))
    recordings, skipped = load_folder(tmp_path)
    assert [rec.name for rec in recordings] == ["test-count-to-5"]
    assert list(skipped) == ["bad.json"]
    reason = skipped["bad.json"]
    assert str(tmp_path / "bad.json") in reason and field in reason, reason
    assert "\n" not in reason and len(reason) < 400


NON_STREAMED_DAMAGE = {
    "body NaN": (("response", "body"), float("nan"), "response.body"),
    "body holds Infinity": (("response", "body"), {"a": [float("inf")]}, "response.body"),
    "body a lone surrogate": (("response", "body"), {"text": "\udc00"}, "response.body"),
    "no body": (("response", "body"), DELETE, "body"),
    "elapsed text": (("response", "elapsed"), "0.2", "response.elapsed"),
    "elapsed negative": (("response", "elapsed"), -0.2, "response.elapsed"),
}


@pytest.mark.parametrize("damage", NON_STREAMED_DAMAGE.values(), ids=NON_STREAMED_DAMAGE.keys())
def test_a_non_streamed_body_the_server_cannot_send_is_named_at_load(tmp_path: Path, damage: Any) -> None:
    where, value, field = damage
    (tmp_path / "bad.json").write_text(
        json.dumps(with_change(synthetic_completion_recording().to_dict(), where, value))
    )
    recordings, skipped = load_folder(tmp_path)
    assert recordings == [] and field in skipped["bad.json"], skipped


def test_a_recording_made_in_code_is_checked_too() -> None:
    rec = synthetic_chat_recording()
    rec.status = 42
    reports: list[str] = []
    index = RecordingIndex([rec, synthetic_completion_recording()], report=reports.append)
    assert [r.name for r in index.recordings()] == ["test-completion"]
    assert len(reports) == 1 and reports[0].startswith("test-count-to-5: response.status: must be")


def test_the_packaged_recordings_keep_the_schema() -> None:
    _, skipped = load_folder()
    assert skipped == {}


# --- through the server ------------------------------------------------------------------------


def test_a_request_without_a_path_does_not_stop_the_server(tmp_path: Path) -> None:
    # Issue 16: KeyError: 'path' at start, then a 500 for every request while such a file is there.
    (tmp_path / "good.json").write_text(json.dumps(good()))
    (tmp_path / "early.json").write_text(json.dumps(with_change(mutated_chat(), ("request", "path"), DELETE)))
    reports: list[str] = []
    with ReplayServer(speed=0, recordings=tmp_path) as srv:
        srv.index._report = reports.append
        assert httpx2.post(srv.base_url + CHAT_PATH, json=CHAT_BODY).status_code == 200
        late = with_change(mutated_chat(), ("request", "path"), DELETE)
        late["name"] = "test-late"
        (tmp_path / "late.json").write_text(json.dumps(late))
        for _ in range(2):
            assert httpx2.post(srv.base_url + CHAT_PATH, json=CHAT_BODY).status_code == 200
        missing = httpx2.post(srv.base_url + CHAT_PATH, json=OTHER_BODY)
    assert missing.status_code == 404
    assert "early.json" in missing.json()["error"]["message"]
    assert len(reports) == 1 and "late.json" in reports[0] and "request.path" in reports[0]


# Any JSON value, of the kinds a file can hold (NaN and lone surrogates included).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(st.characters(exclude_categories=()), max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _places(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``data`` a value can be put or removed (request bodies' insides excepted)."""
    places = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        place = (*prefix, key)
        places.append(place)
        if place[:2] != ("request", "body"):
            places += _places(value, place)
    return places


STREAMED = mutated_chat()
STREAMED["response"]["headers"]["x-request-id"] = "req_other"
NON_STREAMED = with_change(synthetic_completion_recording().to_dict(), ("request", "body"), OTHER_BODY)
NON_STREAMED["request"]["path"] = "/v1/chat/completions"
NON_STREAMED["name"] = "test-other"
INCOMPLETE = copy.deepcopy(STREAMED)
INCOMPLETE["response"]["incomplete"] = {"reason": "the connection broke", "t": 0.5, "dropped": True}
BASES = [STREAMED, NON_STREAMED, INCOMPLETE]
MUTATIONS = st.sampled_from(BASES).flatmap(
    lambda base: st.tuples(
        st.just(base),
        st.lists(
            st.tuples(st.sampled_from(_places(base)), json_values | st.just(DELETE)), min_size=1, max_size=3
        ),
    )
)


@pytest.fixture(scope="module")
def served_folder(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("schema-fuzz")
    (folder / "a-good.json").write_text(json.dumps(good()))  # read first: it keeps its name
    reports: list[str] = []
    with ReplayServer(speed=0, recordings=folder) as srv:
        srv.index._report = reports.append
        yield srv, folder, reports


_cases = itertools.count()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(MUTATIONS)
def test_a_damaged_recording_is_skipped_or_served_as_recorded(served_folder: Any, mutation: Any) -> None:
    srv, folder, reports = served_folder
    base, changes = mutation
    data = base
    for place, value in changes:
        with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier change removed its parent
            data = with_change(data, place, value)
    for old in folder.glob("case-*.json"):
        old.unlink()
    name = f"case-{next(_cases)}.json"
    text = json.dumps(data)
    (folder / name).write_text(text)
    problem = first_problem(json.loads(text))
    reports.clear()
    with httpx2.Client(timeout=30) as http:
        root = srv.base_url.removesuffix("/v1")
        assert (
            http.post(root + "/v1" + CHAT_PATH, json=CHAT_BODY).status_code == 200
        )  # the good file, throughout
        if problem is not None:
            assert len(reports) == 1 and name in reports[0], (problem, reports)
            return
        if reports:  # usable, but it has the good file's name or answers its request
            assert len(reports) == 1 and ("has the name" in reports[0] or "same request" in reports[0]), (
                reports
            )
            return
        rec = Recording.from_dict(json.loads(text))
        try:
            # As the file has it: NaN included, which httpx2's json= refuses to send.
            sent = json.dumps(rec.request.get("body") or {}).encode()
            answer = http.post(
                root + api_path(rec.path), content=sent, headers={"content-type": "application/json"}
            )
        except httpx2.RemoteProtocolError:  # a recording that broke off is replayed breaking off
            assert rec.incomplete is not None and rec.incomplete.dropped
            return
    if REQUEST_ID_HEADER not in answer.headers:  # not answered from a recording: another path, say
        assert answer.status_code == 404 and "Traceback" not in answer.text, answer.text[:300]
        return
    assert answer.status_code == rec.status, answer.text[:300]
    for header, value in rec.headers.items():
        if header.lower() not in HOP_HEADERS:
            assert answer.headers.get_list(header) == [value], header
    if rec.streamed:
        assert answer.content == rec.sse_bytes()
    elif rec.incomplete is None:
        assert answer.json() == rec.body


# Headers that describe the recorded connection, not the content: the server does not replay them.
HOP_HEADERS = ("content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive")


def test_recorded_server_and_date_headers_are_sent_as_recorded() -> None:
    rec = synthetic_chat_recording()
    rec.headers = {**rec.headers, "server": "cloudflare", "date": "Fri, 03 Mar 2023 10:00:00 GMT"}
    with ReplayServer(speed=0, recordings=[rec]) as srv:
        answer = httpx2.post(srv.base_url + CHAT_PATH, json=CHAT_BODY)
    assert answer.headers.get_list("server") == ["cloudflare"]  # not uvicorn's own beside it
    assert answer.headers.get_list("date") == ["Fri, 03 Mar 2023 10:00:00 GMT"]
