"""The assembler against 21 real streams from OpenAI-compatible servers that are not OpenAI.

The streams are in ``../shared/conformance/compat-streams`` (see its SOURCES.md: where
each comes from, what it exercises, and the judgement calls followed here). Each test
states the result by hand, read off the raw chunks: what the non-streamed call to that
server returns. The rules it pins down (see ``streamscope.assemble``):

- ``[DONE]`` arrived: the stream is complete, even where a server never sent a
  ``finish_reason`` (that choice's is null); a later ``finish_reason: null`` never
  erases an earlier one.
- Usage wherever the server put it: top-level ``usage`` (on any chunk, an error chunk
  included), else Groq's ``x_groq.usage``.
- Reasoning text is kept in the message under the name it arrived with
  (``reasoning_content``, ``reasoning``); Mistral's thinking parts of a ``content``
  list become ``reasoning_content``. Responses reasoning items are output items.
- Duplicates are not added twice (Together's choice-level ``text``); scalars repeated
  on every delta (``role``, ``channel``) are kept once; structured reasoning details
  (OpenRouter) merge by ``index``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from corpus import COMPAT, COMPAT_STREAMS, NO_COMPAT, assembled_both_ways, payloads, read_stream
from streamscope.assemble import Assembler, assemble_sse


def raw_stream(name: str) -> bytes:
    return read_stream(COMPAT, name, NO_COMPAT)


def message(content: str | None, **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "refusal": None, **fields}


def choice(msg: dict[str, Any], finish_reason: str | None, index: int = 0, **fields: Any) -> dict[str, Any]:
    return {"index": index, "message": msg, "logprobs": None, "finish_reason": finish_reason, **fields}


def tool_call(id_: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


GROQ_02_USAGE = {
    "queue_time": 0.00491786,
    "prompt_tokens": 304,
    "prompt_time": 0.01460151,
    "completion_tokens": 49,
    "completion_time": 0.11216431,
    "total_tokens": 353,
    "total_time": 0.12676582,
    "completion_tokens_details": {"reasoning_tokens": 23},
}
GROQ_03_REASONING = (
    'The user says: "dont make a tool call, just return the string "maybe" by itself, not as json output,'
    ' to test error handling; on the second try you can use valid args". The developer instructions: be'
    " concise. Never use pretty double quotes, just regular ones.\n\nWe need to respond with just the string"
    " maybe, not JSON, and no tool call. So just plain text: maybe."
)
MISTRAL_05_CONTENT = (
    "The sky appears blue due to a phenomenon called **Rayleigh scattering**, which describes how light"
    " interacts with molecules and tiny particles in Earth's atmosphere."
    " Here\u2019s a step-by-step explanation:"
    "\n\n### 1. **Sunlight is White Light**\n   - Sunlight appears white but is actually a mix of all colors"
    " (wavelengths) of the visible spectrum—red, orange, yellow, green, blue, indigo, and violet.\n\n"
    "### 2. **Scattering by Air Molecules**\n"
)
OPENROUTER_09_SIGNATURE = (
    "Et0BCkgIChACGAIqQA2s7h7tA7IG35fbwVkou9PM2hANVJNUwcEM4q12fTRDK6y3v6YoEvJ+7bko8wnW/GLsQFXadaJPAEMCpLkh"
    "I9ISDLjFkeR1aVUIvdCtyBoMrUTovh0jwk+wpnZWIjANV3e6VVdgbGSsEyyTHO6KMmVtqqs79f9blnVdJmmMIwMyTi6bEtG59+jTU7"
    "v1zlsqQ2IKGZILOlr6adh0Aam7zYttvisys+wjyZZXU1y/Srz0nmp1cFgVOJe1BLKQI3SSRrjsqQC0uAEUZy0GX0Rq1AXjvIcYAQ=="
)

# name -> (exit status of `python -m streamscope assemble`, head (id, created, model), choices, usage)
CHAT: dict[str, tuple[int, tuple[str, int, str], list[dict[str, Any]], dict[str, Any] | None]] = {
    "01-groq-llama3-xgroq-usage": (
        0,
        ("chatcmpl-1129f181-aa34-4fd9-be3d-0e9889cbd109", 1743732885, "llama3-8b-8192"),
        [
            choice(
                message(
                    "Hello! It's nice to meet you. Is there something I can help you with,"
                    " or would you like to chat?"
                ),
                "stop",
            )
        ],
        # Only in x_groq.usage: the non-streamed Groq response has the same object as `usage`.
        {
            "queue_time": 0.018265729,
            "prompt_tokens": 12,
            "prompt_time": 0.001803869,
            "completion_tokens": 26,
            "completion_time": 0.021666667,
            "total_tokens": 38,
            "total_time": 0.023470536,
        },
    ),
    "02-groq-gptoss-reasoning-whole-toolcall": (
        0,
        ("chatcmpl-e35442a8-12c0-4fb4-8be4-0e51727ce7b7", 1771434740, "openai/gpt-oss-120b"),
        [
            choice(
                message(
                    "",  # the role chunk's content: ""
                    reasoning='We need to call the function with correct parameter "name".'
                    ' Provide a name, e.g., "example".',
                    channel="analysis",  # on each of the 22 reasoning deltas: kept once
                    tool_calls=[
                        tool_call(
                            "fc_bfb39741-3748-4def-9886-a93fc9c64a90",
                            "get_something_by_name",
                            '{"name":"example"}',
                        )
                    ],
                ),
                "tool_calls",
            )
        ],
        GROQ_02_USAGE,  # top-level usage and x_groq.usage, identical: once
    ),
    "03-groq-gptoss-error-event-midstream": (
        4,
        ("chatcmpl-fd87720a-9b48-4161-bcd7-6127bd0d3696", 1771438841, "openai/gpt-oss-120b"),
        [choice(message("maybe", reasoning=GROQ_03_REASONING, channel="analysis"), None)],
        None,  # no usage arrived before the error
    ),
    "04-deepseek-v4-reasoning-content": (
        0,
        ("66e83c57-5cb1-4eb9-b727-28651c2220c7", 1779989387, "deepseek-v4-pro"),
        [
            choice(
                message(
                    "The product of 17 and 23 is 391.",
                    reasoning_content='We are asked: "What is 17 * 23?" This is a simple multiplication.'
                    " 17 * 23 = 391. I'll provide the answer.",
                ),
                "stop",
            )
        ],
        {
            "prompt_tokens": 17,
            "completion_tokens": 47,
            "total_tokens": 64,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 34},
            "prompt_cache_hit_tokens": 0,
            "prompt_cache_miss_tokens": 17,
        },
    ),
    "05-mistral-large-length-on-content-chunk": (
        0,
        ("4ad5861c372940a09a2f33540f97d361", 1784566714, "mistral-large-latest"),
        # The last piece (" Molecules**\n") rides on the chunk that says "length".
        [choice(message(MISTRAL_05_CONTENT), "length")],
        {
            "prompt_tokens": 9,
            "total_tokens": 109,
            "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    ),
    "06-mistral-small-toolcall-whole-no-index": (
        0,
        ("8d641f96950f401892c98eff1e4335cd", 1724786761, "mistral-small-latest"),
        # Whole, without index or type: a function call at index 0.
        [
            choice(
                message("", tool_calls=[tool_call("EscTeQY62", "get_weather", '{"city": "San Francisco"}')]),
                "tool_calls",
            )
        ],
        {"prompt_tokens": 96, "total_tokens": 119, "completion_tokens": 23},
    ),
    "07-mistral-magistral-thinking-parts": (
        0,
        ("0804a9a8a6274b54bbd1f8bba06af9d8", 1784566717, "magistral-medium-latest"),
        [
            choice(
                message(
                    "What is 2+2?\n\\[ 2 + 2 = 4 \\]\n\n${answer}",  # really ends in the literal ${answer}
                    reasoning_content='Okay, the user has asked "What is 2+2?"'
                    " This is a simple arithmetic question. I know that 2+2 equals 4."
                    " So, the answer should be straightforward.",
                ),
                "stop",
            )
        ],
        {
            "prompt_tokens": 10,
            "total_tokens": 73,
            "completion_tokens": 63,
            "prompt_tokens_details": {"cached_tokens": 5},
        },
    ),
    "08-together-llama-text-tokenid": (
        0,
        ("ovCb55p-zfFMX-a273a0f90faa9289", 1786077894, "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        # choice-level `text` repeats delta.content: once; role on every delta: once; the
        # per-chunk token_id is not part of the message; the last seed is kept.
        [choice(message("1, 2, 3, 4, 5."), "stop", seed=1395002666759424000)],
        {"prompt_tokens": 41, "completion_tokens": 15, "total_tokens": 56, "cached_tokens": 0},
    ),
    "09-openrouter-claude-reasoning-keepalive": (
        0,
        ("gen-1765226419-AGrwjunAftQIAgweibL8", 1765226419, "anthropic/claude-sonnet-4.5"),
        [
            choice(
                message(
                    "2 + 2 = 4",
                    reasoning="This is a simple arithmetic question. 2+2 equals 4.",
                    reasoning_details=[
                        {
                            "type": "reasoning.text",
                            "text": "This is a simple arithmetic question. 2+2 equals 4.",
                            "signature": OPENROUTER_09_SIGNATURE,
                            "format": "anthropic-claude-v1",
                            "index": 0,
                        }
                    ],
                ),
                "stop",  # the trailing usage chunk's null does not erase it
                native_finish_reason="stop",
            )
        ],
        {
            "prompt_tokens": 43,
            "completion_tokens": 36,
            "total_tokens": 79,
            "cost": 0.000669,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0, "video_tokens": 0},
            "cost_details": {
                "upstream_inference_cost": None,
                "upstream_inference_prompt_cost": 0.000129,
                "upstream_inference_completions_cost": 0.00054,
            },
            "completion_tokens_details": {"reasoning_tokens": 13, "image_tokens": 0},
        },
    ),
    "10-openrouter-error-chunk-after-length": (
        4,
        ("gen-1762179802-UN8pkJI4AGZvryk0kFnb", 1762179802, "minimax/minimax-m2:free"),
        [
            choice(
                message(
                    "",
                    reasoning="We need to respond to a greeting. The user",
                    reasoning_details=[
                        {
                            "type": "reasoning.text",
                            "text": "We need to respond to a greeting. The user",
                            "index": 0,
                            "format": None,
                        }
                    ],
                ),
                "length",  # the error chunk's null does not erase it
                native_finish_reason="length",
            )
        ],
        {  # carried by the error chunk
            "prompt_tokens": 43,
            "completion_tokens": 10,
            "total_tokens": 53,
            "cost": 0,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "cost_details": {
                "upstream_inference_cost": None,
                "upstream_inference_prompt_cost": 0,
                "upstream_inference_completions_cost": 0,
            },
            "completion_tokens_details": {"reasoning_tokens": 11, "image_tokens": 0},
        },
    ),
    "11-vllm-chat-length-on-content-chunk": (
        0,
        ("chat-22c24755532348e6b6ff75297b1a71b3", 1729072360, "facebook/opt-125m"),
        [choice(message("<|im_end|>doctor\n<|im_end|>supervisor\n<"), "length", stop_reason=None)],
        None,
    ),
    "13-snowflake-cortex-no-finish-reason": (
        0,  # no finish_reason ever, but [DONE] arrived
        ("", 0, "claude-sonnet-4-6"),
        [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "4", "refusal": ""},  # refusal "" as sent
                "logprobs": {"content": None, "refusal": None},
                "finish_reason": None,
            }
        ],
        {
            "completion_tokens": 5,
            "completion_tokens_details": {
                "accepted_prediction_tokens": 0,
                "audio_tokens": 0,
                "reasoning_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
            "prompt_tokens": 22,
            "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
            "total_tokens": 27,
        },
    ),
    "14-zai-glm-reasoning-content": (
        0,
        ("202607010739425543ff9439144b2c", 1782862782, "glm-4.7"),
        # reasoning_content (2173 characters) is checked in its own test below
        [choice(message("4"), "stop")],
        {
            "prompt_tokens": 13,
            "completion_tokens": 564,
            "total_tokens": 577,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 561},
        },
    ),
    "15-novita-hfrouter-sla-metrics": (
        0,
        ("ebafdc26c3296ed027c5cd6565fa1bce", 1786507380, "meta-llama/llama-3.1-8b-instruct"),
        [choice(message("Paris"), "stop")],
        {
            "prompt_tokens": 40,
            "completion_tokens": 2,
            "total_tokens": 42,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
    ),
    "16-litellm-proxy-n2-missing-finish": (
        0,  # choice 1 never gets a finish_reason, but [DONE] arrived
        ("chatcmpl-3f890568-66a5-4370-9ce0-8de38b24b1aa", 1743453498, "gpt-3.5-turbo"),
        [
            choice(message("Not much, just here to help. How can I assist you today?"), "stop"),
            choice(message("Not much, just here to help. How can I assist you today?"), None, index=1),
        ],
        {"completion_tokens": 27, "prompt_tokens": 13, "total_tokens": 40},
    ),
}

ZAI_14_REASONING_HEAD = "\n1.  **Analyze the User's Request:** The user is asking a very simple, fundamental"
ZAI_14_REASONING_TAIL = 'No extra fluff is needed.\n\n7.  **Draft the final response:** "4".'

# name -> (item type, its text: message text, reasoning text or function arguments), in output order
RESPONSES: dict[str, list[tuple[str, str]]] = {
    "17-deepseek-responses-reasoning-text": [
        ("reasoning", "We need answer capital of France."),
        ("message", "The capital of France is Paris."),
    ],
    "18-deepseek-responses-function-call": [
        ("reasoning", "The user asks about temperature in Tokyo. I'll call the tool."),
        ("function_call", '{"city": "Tokyo"}'),
    ],
    "19-openrouter-responses-keepalive-done": [
        (
            "reasoning",
            'The user asks: "What is 2+2?" They expect a straightforward answer: 4. Just answer 4.',
        ),
        ("message", "4"),
    ],
    "20-bedrock-mantle-responses-event-after-data": [("function_call", "{}")],
    "21-lmstudio-responses-toolcall-no-arg-deltas": [
        (
            "reasoning",
            "The user is asking for the weather in San Francisco. I have a weather function available"
            ' that takes a location parameter. The user has provided "San Francisco" as the location,'
            " so I have all the required information to make the function call.",
        ),
        ("message", "I'll get the current weather information for San Francisco for you."),
        ("function_call", '{"location":"San Francisco"}'),  # only in .done events: no argument deltas
    ],
}


def all_names() -> list[str]:
    return sorted([*CHAT, "12-vllm-legacy-completions", *RESPONSES])


def test_every_stream_of_the_corpus_has_an_expected_result() -> None:
    if not COMPAT_STREAMS:
        pytest.skip(NO_COMPAT)
    assert [p.stem for p in COMPAT_STREAMS] == all_names()


@pytest.mark.parametrize("name", sorted(CHAT))
def test_chat_stream(name: str) -> None:
    exit_status, (id_, created, model), choices, usage = CHAT[name]
    result = assemble_sse(raw_stream(name))
    obj = result.object
    assert obj["object"] == "chat.completion"
    assert (obj["id"], obj["created"], obj["model"]) == (id_, created, model)
    if name.startswith("14-"):
        reasoning = obj["choices"][0]["message"].pop("reasoning_content")
        assert reasoning.startswith(ZAI_14_REASONING_HEAD)
        assert reasoning.endswith(ZAI_14_REASONING_TAIL)
        assert len(reasoning) == 2173
    assert obj["choices"] == choices
    assert obj["usage"] == usage
    assert result.complete == (exit_status == 0), result.reason
    assert (result.error is not None) == (exit_status == 4)


def test_groq_error_event_keeps_its_error() -> None:
    result = assemble_sse(raw_stream("03-groq-gptoss-error-event-midstream"))
    assert result.error["code"] == "tool_use_failed"
    message = "Tool choice is required, but model did not call a tool"
    assert result.reason == "the stream carried an error: " + message


def test_openrouter_error_chunk_keeps_its_error() -> None:
    result = assemble_sse(raw_stream("10-openrouter-error-chunk-after-length"))
    assert result.error == {"code": 400, "message": "Token limit reached"}


def test_vllm_legacy_completions() -> None:
    result = assemble_sse(raw_stream("12-vllm-legacy-completions"))
    assert result.complete, result.reason
    assert result.object == {
        "id": "cmpl-606a18e6c4ce4c39b0bc404c3cd490dc",
        "object": "text_completion",
        "created": 1729072359,
        "model": "facebook/opt-125m",
        "choices": [
            {
                "text": '.\n\n"Human" here means "someone who has access to the Open Telemetry network."',
                "index": 0,
                "logprobs": None,
                "finish_reason": "length",  # on the chunk with the last piece of text
                "stop_reason": None,
            }
        ],
        "usage": None,
        "system_fingerprint": None,
    }


def item_texts(output: list[dict[str, Any]]) -> list[tuple[str, str]]:
    texts = []
    for item in output:
        if item["type"] == "function_call":
            texts.append((item["type"], item["arguments"]))
        else:
            texts.append((item["type"], "".join(part["text"] for part in item["content"])))
    return texts


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_responses_stream(name: str) -> None:
    """The result is the terminal event's response (what the non-streamed call returns); what
    the events built before it holds the same texts, and nothing is reported as differing."""
    raw = raw_stream(name)
    events = [p for p in payloads(raw) if isinstance(p, dict)]
    terminal = events[-1]
    assert terminal["type"] == "response.completed"
    before_terminal = Assembler()
    for event in events[:-1]:
        before_terminal.feed(event)
    assert item_texts(before_terminal.snapshot()["output"]) == RESPONSES[name]

    result = assemble_sse(raw)
    assert result.object == terminal["response"]
    assert item_texts(result.object["output"]) == RESPONSES[name]
    assert result.complete, result.reason
    assert result.warnings == ()


def cli(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamscope", "assemble", str(path)], capture_output=True, timeout=60
    )


@pytest.mark.parametrize("name", all_names())
def test_the_command_exits_as_expected(name: str) -> None:
    raw_stream(name)
    expected = CHAT[name][0] if name in CHAT else 0
    done = cli(COMPAT / f"{name}.sse")
    assert done.returncode == expected, done.stderr
    assert json.loads(done.stdout) == assemble_sse(raw_stream(name)).object
    assert done.stderr.count(b"\n") == (expected != 0)


@pytest.mark.parametrize("name", all_names())
def test_sdk_objects_assemble_like_their_json(name: str) -> None:
    """The SDK's models keep these servers' extra fields (reasoning, x_groq, ...) as extras."""
    raw = raw_stream(name)
    from_json, from_models = assembled_both_ways(raw)
    assert json.loads(json.dumps(from_models.snapshot())) == from_json.snapshot()
