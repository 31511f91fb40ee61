"""A backend's substitutions: what it is asked instead of the model and prompt a request names."""

from __future__ import annotations

import asyncio
import json

import httpx2
import streamscope
from streamscope.backends.local import CHAT_MODEL, COMPLETION_MODEL
from streamscope.backends.substitute import SubstitutingTransport, Substitutions
from streamscope.backends.switch import substitutions_for

SEED = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."
PLAIN = "Write the numbers from 1 to 50, separated by commas."


def test_models_and_prompts_are_replaced_where_they_are_named_whole():
    subs = Substitutions(models={"gpt-3.5-turbo": "gpt-4o-mini"}, texts={SEED: PLAIN})
    body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": SEED}], "stream": True}
    assert subs.apply("/v1/chat/completions", body) == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": PLAIN}],
        "stream": True,
    }
    assert body["model"] == "gpt-3.5-turbo"  # the caller's body is left as it was
    assert subs.apply("/v1/responses", {"model": "other", "input": SEED + "!"}) == {
        "model": "other",
        "input": SEED + "!",
    }


def test_an_endpoint_model_wins_over_the_name_asked():
    subs = Substitutions(endpoint_models={"/chat/completions": "smollm2", "/v1/completions": "gemma"})
    legacy = {"model": "text-davinci-002", "prompt": "1,2,3,"}
    assert subs.apply("/v1/completions", legacy)["model"] == "gemma"
    assert subs.apply("/v1/chat/completions", {"model": "gpt-3.5-turbo"})["model"] == "smollm2"


def test_the_banner_sentence_lists_every_substitution():
    subs = Substitutions(models={"text-davinci-002": "gpt-3.5-turbo-instruct"}, texts={"a": "b"})
    assert subs.describe() == "asks gpt-3.5-turbo-instruct for text-davinci-002; 'b' for the prompt 'a'"
    assert Substitutions().describe() == "" and not Substitutions()


def test_the_transport_sends_the_substituted_body_with_its_new_length():
    seen = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.read(), int(request.headers["content-length"])))
        return httpx2.Response(200, json={})

    subs = Substitutions(models={"gpt-3.5-turbo": "gpt-4o-mini"})
    with httpx2.Client(transport=SubstitutingTransport(subs, httpx2.MockTransport(answer))) as client:
        client.post("http://test/v1/chat/completions", json={"model": "gpt-3.5-turbo", "messages": []})
        client.post("http://test/v1/files", content=b"not json", headers={"content-type": "text/plain"})
    (body, length), other = seen
    assert json.loads(body) == {"model": "gpt-4o-mini", "messages": []} and length == len(body)
    assert other == (b"not json", 8)


def test_a_live_backend_is_asked_what_it_substitutes_through_the_real_sdk(monkeypatch):
    # The replay server stands in for a live server at a base URL, whose only model is the recorded one.
    url = streamscope.active_backend("replay").base_url
    monkeypatch.setenv("STREAMSCOPE_MODEL", "gpt-3.5-turbo")
    active = streamscope.active_backend(url)
    assert "asks gpt-3.5-turbo on /chat/completions" in str(active).splitlines()[1]
    messages = [{"role": "user", "content": "What's 1+1? Answer in one word."}]
    sync = streamscope.client(url, max_retries=0)
    chunks = list(sync.chat.completions.create(model="a-name", messages=messages, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "\n\n2"

    async def asynchronously() -> str:
        stream = await streamscope.async_client(url, max_retries=0).chat.completions.create(
            model="a-name", messages=messages, temperature=0, stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(asynchronously()) == "\n\n2"


def test_what_each_backend_substitutes(monkeypatch):
    monkeypatch.delenv("STREAMSCOPE_MODEL", raising=False)
    assert not substitutions_for("replay") and not substitutions_for("url")
    assert substitutions_for("openai").models["gpt-3.5-turbo"] == "gpt-4o-mini"
    local = substitutions_for("local")
    assert local.apply("/v1/completions", {"model": "text-davinci-002"})["model"] == COMPLETION_MODEL
    assert local.apply("/v1/chat/completions", {"model": "gpt-3.5-turbo"})["model"] == CHAT_MODEL
    assert SEED in local.texts
