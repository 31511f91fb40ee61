#!/usr/bin/env bash
# Records the llamaserver-* recordings from the local backend (llama.cpp's llama-server on this CPU,
# SmolLM2 135M Instruct), each with `python -m streamscope record --backend local`, into
# helpers/streamscope/recordings/. Each recording's provenance names the server's build, the model
# file and its sha256, the CPU, the threads, the clock and the load.
#
#   tools/record_llamaserver.sh      (needs `make local-install`; about 1 minute)
#
# The prompts are the ones the other recordings of SmolLM2 use (litellm-*, local-*), so that a
# lesson can set this server's stream beside the proxy's or llama-cpp-python's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-./.venv/bin/python}
OUT=helpers/streamscope/recordings
CHAT='"model": "smollm2-135m-instruct"'
COUNT_25='"Write the numbers from 1 to 25, separated by commas."'
COUNT_50='"messages": [{"role": "user", "content": "Write the numbers from 1 to 50, separated by commas."}]'
GET_WEATHER='{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}'
RESPONSES_GET_WEATHER='{"type": "function", "name": "get_weather", "description": "Get the current weather in a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}'
EDINBURGH='{"role": "user", "content": "What is the weather in Edinburgh?"}'
NO_CALL="tool_choice required, and no tool call: llama-server (b10605) builds a grammar from the tool schema, but its chat code lets free text come before the first <tool_call> marker even under required, and this 135M model writes prose until the token limit (finish_reason length). A named function in tool_choice (an object) is read as auto by this server's chat endpoint, where the model answers in text."
SERVER_NOTES="llama-server in router mode: the router forwards each request to the model's own llama-server process and relays its stream."
CHAT_NOTES="Chat, against OpenAI's documented chunks: data-only SSE, one chunk per token; the first chunk has the role and content null (OpenAI: an empty string); the finish chunk (and the usage chunk, when asked for) also carries llama.cpp's own timings object; system_fingerprint b10605-unknown; no obfuscation field."
RESPONSES_NOTES="Responses, against OpenAI's documented events (and the openai SDK's types): event:/data: pairs, one output_text.delta per token; no sequence_number on any event; no output_index or content_index on the item, part and text events; response.created and response.in_progress carry a stub response (id, object and status only); content_part.added's part has no annotations; output_text.delta and .done have no logprobs; response.completed carries an extra top-level timings object, and its response has no tools, tool_choice or parallel_tool_calls and its usage no output_tokens_details; nothing after response.completed (no [DONE], as OpenAI)."

record() { # NAME PATH NOTES BODY
    local notes=$CHAT_NOTES
    [ "$2" = /v1/responses ] && notes=$RESPONSES_NOTES
    printf '%s' "$4" | "$PY" -m streamscope record --backend local --path "$2" --body - \
        --name "$1" --out "$OUT" --note "$SERVER_NOTES $notes $3" --force
}

# The Responses API: a text stream and its non-streamed twin; a length cut; a function call.
record llamaserver-smollm2-responses-count-to-25-stream /v1/responses "" \
    "{$CHAT, \"input\": $COUNT_25, \"temperature\": 0, \"stream\": true}"
record llamaserver-smollm2-responses-count-to-25 /v1/responses "" \
    "{$CHAT, \"input\": $COUNT_25, \"temperature\": 0}"
record llamaserver-smollm2-responses-count-to-25-max-output-tokens-stream /v1/responses \
    "Cut by max_output_tokens, and reported as completed: response.completed with status completed and no incomplete_details (OpenAI sends response.incomplete, status incomplete, incomplete_details.reason max_output_tokens); only usage.output_tokens = 16 tells." \
    "{$CHAT, \"input\": $COUNT_25, \"temperature\": 0, \"max_output_tokens\": 16, \"stream\": true}"
record llamaserver-smollm2-responses-weather-tool-required-stream /v1/responses \
    "$NO_CALL" \
    "{$CHAT, \"input\": \"What is the weather like in Paris today?\", \"tools\": [$RESPONSES_GET_WEATHER], \"tool_choice\": \"required\", \"max_output_tokens\": 48, \"temperature\": 0, \"stream\": true}"

# Chat: include_usage, a length cut, a structured output, a tool call and the loop's second turn.
record llamaserver-smollm2-chat-count-to-50-include-usage-stream /v1/chat/completions \
    "stream_options.include_usage: a last chunk with choices [] carries the usage." \
    "{$CHAT, $COUNT_50, \"temperature\": 0, \"stream_options\": {\"include_usage\": true}, \"stream\": true}"
record llamaserver-smollm2-chat-count-to-50-max-tokens-stream /v1/chat/completions \
    "Cut by max_tokens: the last chunk's finish_reason is length." \
    "{$CHAT, $COUNT_50, \"temperature\": 0, \"max_tokens\": 12, \"stream\": true}"
record llamaserver-smollm2-chat-json-schema-trip-stream /v1/chat/completions \
    "response_format json_schema: the server compiles the schema into a grammar, so the text is valid JSON of that shape when it ends." \
    "{$CHAT, \"messages\": [{\"role\": \"user\", \"content\": \"Plan a three-day trip to Paris with three things to do.\"}], \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"trip\", \"strict\": true, \"schema\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"}, \"activities\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 3, \"maxItems\": 3}}, \"required\": [\"city\", \"days\", \"activities\"], \"additionalProperties\": false}}}, \"temperature\": 0, \"stream\": true}"
record llamaserver-smollm2-chat-tool-choice-required-stream /v1/chat/completions \
    "$NO_CALL" \
    "{$CHAT, \"messages\": [$EDINBURGH], \"tools\": [$GET_WEATHER], \"tool_choice\": \"required\", \"max_tokens\": 48, \"temperature\": 0, \"stream\": true}"
record llamaserver-smollm2-chat-tool-result-answer-stream /v1/chat/completions \
    "The tool loop's second request, written by hand: this model makes no tool call (see llamaserver-smollm2-chat-tool-choice-required-stream), so the assistant's call get_weather({\"city\": \"Edinburgh\"}) with id call_edinburgh and the tool's result in the request are ours; the answer is the model's, in text." \
    "{$CHAT, \"messages\": [$EDINBURGH, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_edinburgh\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Edinburgh\\\"}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"call_edinburgh\", \"content\": \"{\\\"city\\\": \\\"Edinburgh\\\", \\\"temperature_c\\\": 7, \\\"conditions\\\": \\\"light rain\\\"}\"}], \"tools\": [$GET_WEATHER], \"temperature\": 0, \"stream\": true}"

# An error: a prompt longer than the model's context (4,096 tokens here).
LONG=$("$PY" -c 'print("Repeat after me: " + "apple " * 4200)')
record llamaserver-smollm2-responses-over-context-stream /v1/responses \
    "The input does not fit the context: HTTP 400 before any event, with error.type exceed_context_size_error, error.code the number 400 (OpenAI: a string code or null) and the extra fields n_prompt_tokens and n_ctx." \
    "{$CHAT, \"input\": \"$LONG\", \"temperature\": 0, \"stream\": true}" || test $? -eq 1  # exit 1: saved, an error answer
