#!/usr/bin/env bash
# Records the local-* recordings from the local backend (llama-cpp-python's server on this CPU),
# each with `python -m streamscope record`, into helpers/streamscope/recordings/.
#
#   tools/record_local.sh            (needs `make local-install`; about 1 minute)
#
# Why these requests:
# - Counting chat: "Write the numbers from 1 to 50, separated by commas." SmolLM2 135M answers the
#   seed's "Count to 100 ..." prompt with "1, 2, 3, ..." and stops; this prompt gets all 50 numbers,
#   a long stream whose pace can be seen and measured.
# - Legacy completion of "1,2,3," on Gemma 3 270M (base model) at temperature 0: it counts on, as
#   text-davinci-002 did in the seed (SmolLM2 continues it with code, not a count).
# - logprobs, max_tokens (finish_reason "length"), a tool call forced with tool_choice (the server's
#   grammar makes even a 135M model emit valid arguments), and one error answer (messages given as a
#   string: the server answers 500).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-./.venv/bin/python}
OUT=helpers/streamscope/recordings
CHAT='"model": "smollm2-135m-instruct"'
COUNT_50='"messages": [{"role": "user", "content": "Write the numbers from 1 to 50, separated by commas."}]'
ONE_PLUS_ONE='"messages": [{"role": "user", "content": "What'"'"'s 1+1? Answer in one word."}]'
SERVER_NOTES="llama-cpp-python's server sends one token per chunk, data-only SSE events ending in CRLF, a first chunk with the role only and a last chunk with an empty delta and the finish_reason. It echoes the model name asked for (an unknown name is served by its first model). It ignores stream_options.include_usage (no usage chunk) and n (one choice)."

record() { # NAME PATH NOTES BODY
    printf '%s' "$4" | "$PY" -m streamscope record --backend local --path "$2" --body - \
        --name "$1" --out "$OUT" --note "$SERVER_NOTES $3"
}

record local-smollm2-chat-count-to-50-stream /v1/chat/completions "" \
    "{$CHAT, $COUNT_50, \"temperature\": 0, \"stream\": true}"
record local-smollm2-chat-count-to-50 /v1/chat/completions "" \
    "{$CHAT, $COUNT_50, \"temperature\": 0}"
record local-smollm2-chat-count-to-50-max-tokens-stream /v1/chat/completions \
    "Cut by max_tokens: the last chunk's finish_reason is length." \
    "{$CHAT, $COUNT_50, \"temperature\": 0, \"max_tokens\": 16, \"stream\": true}"
record local-smollm2-chat-logprobs-stream /v1/chat/completions \
    "With logprobs each chunk carries its token's logprob and top_logprobs." \
    "{$CHAT, $ONE_PLUS_ONE, \"temperature\": 0, \"logprobs\": true, \"top_logprobs\": 3, \"stream\": true}"
record local-smollm2-chat-tool-call-stream /v1/chat/completions \
    "A forced tool call (tool_choice names the function): the server constrains the output with a grammar, so the arguments parse. Every chunk repeats the tool call's id, type and function.name (concatenating them, as a naive merge does, repeats the name) and also carries a legacy function_call copy of the same fragment; the arguments arrive in fragments." \
    "{$CHAT, \"messages\": [{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the current weather in a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}, \"temperature\": 0, \"stream\": true}"
record local-smollm2-chat-error /v1/chat/completions \
    "An error answer: messages given as a string, not a list. The server answers HTTP 500 (a validation error would be 400 elsewhere) with an OpenAI-shaped error body." \
    "{$CHAT, \"messages\": \"What's 1+1?\", \"stream\": true}" || test $? -eq 1  # exit 1: saved, an error answer
record local-smollm2-chat-n2-include-usage-stream /v1/chat/completions \
    "Asked for n=2 and include_usage: the server sends one choice and no usage chunk, and says nothing about either." \
    "{$CHAT, $ONE_PLUS_ONE, \"temperature\": 0, \"n\": 2, \"stream_options\": {\"include_usage\": true}, \"stream\": true}"
record local-gemma3-completion-count-stream /v1/completions \
    "Gemma 3 270M is a base model: it continues the prompt; at temperature 0 it counts on." \
    '{"model": "gemma-3-270m", "prompt": "1,2,3,", "max_tokens": 193, "temperature": 0, "stream": true}'
record local-gemma3-completion-count /v1/completions \
    "Gemma 3 270M is a base model: it continues the prompt; at temperature 0 it counts on." \
    '{"model": "gemma-3-270m", "prompt": "1,2,3,", "max_tokens": 193, "temperature": 0}'
