#!/usr/bin/env bash
# Records the llamaserver-* recordings from the local backend (llama.cpp's llama-server on this CPU,
# SmolLM2 135M Instruct), each with `python -m streamscope record --backend local`, into
# helpers/streamscope/recordings/. Each recording's provenance names the server's build, the model
# file and its sha256, the CPU, the threads, the clock and the load.
#
#   tools/record_llamaserver.sh      (needs `make local-install`; about 1 minute; ONLY=WORD: some)
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
PARIS='{"role": "user", "content": "What is the weather like in Paris today?"}'
TOOLS_NOTES="Tool calls from this 135M model: requests with tools get the model file's second chat template (tokenizer.chat_template.tool_use, backends/local/smollm2-tools.jinja), laid out so that llama.cpp reads it as Functionary v3.2's format; under tool_choice required its grammar (not lazy) lets the reply start only with a function's name or all, so the model writes a function's name first and the arguments follow the tool's JSON schema. The call's arguments are the model's own (the city may be wrong: it is a 135M model). llama-server reads a named tool_choice object as auto, and under auto the grammar waits for a trigger this model never writes."
SERVER_NOTES="llama-server in router mode: the router forwards each request to the model's own llama-server process and relays its stream."
CHAT_NOTES="Chat, against OpenAI's documented chunks: data-only SSE, one chunk per token; the first chunk has the role and content null (OpenAI: an empty string); the finish chunk (and the usage chunk, when asked for) also carries llama.cpp's own timings object; system_fingerprint b10605-unknown; no obfuscation field."
RESPONSES_NOTES="Responses, against OpenAI's documented events (and the openai SDK's types): event:/data: pairs, one output_text.delta per token; no sequence_number on any event; no output_index or content_index on the item, part and text events; response.created and response.in_progress carry a stub response (id, object and status only); content_part.added's part has no annotations; output_text.delta and .done have no logprobs; response.completed carries an extra top-level timings object, and its response has no tools, tool_choice or parallel_tool_calls and its usage no output_tokens_details; nothing after response.completed (no [DONE], as OpenAI)."

record() { # NAME PATH NOTES BODY  (ONLY=tool records only the names containing "tool")
    [[ $1 == *"${ONLY:-}"* ]] || return 0
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
    "A function call: output_item.added (a function_call item with call_id and name), function_call_arguments.delta per token, output_item.done with the whole arguments. $TOOLS_NOTES" \
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
    "The tool loop's first request: one tool call, its id, type and name in the first tool_calls delta only, then argument fragments; finish_reason tool_calls. $TOOLS_NOTES" \
    "{$CHAT, \"messages\": [$PARIS], \"tools\": [$GET_WEATHER], \"tool_choice\": \"required\", \"max_tokens\": 48, \"temperature\": 0, \"stream\": true}"
# The loop's second request is built from the first recording: the model's own call (id, name,
# arguments) as the assistant message, and get_weather's result for that call.
SECOND=$("$PY" - "$OUT/llamaserver-smollm2-chat-tool-choice-required-stream.json" "$GET_WEATHER" "$PARIS" <<'PYEOF'
import json, sys
from openai.types.chat import ChatCompletionChunk
recording, tool, question = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
calls = {}
for event in json.load(open(recording))["response"]["events"]:
    data = event["raw"].removeprefix("data: ").strip()
    if not data.startswith("{"):
        continue
    for choice in ChatCompletionChunk.model_validate_json(data).choices:
        for d in choice.delta.tool_calls or []:
            call = calls.setdefault(d.index, {"id": d.id, "type": "function", "function": {"name": d.function.name, "arguments": ""}})
            call["function"]["arguments"] += d.function.arguments or ""
call = calls[0]
city = json.loads(call["function"]["arguments"])["city"]
result = {"city": city, "temperature_c": 18, "conditions": "sunny"}
print(json.dumps({"model": "smollm2-135m-instruct", "messages": [question, {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}], "tools": [tool], "temperature": 0, "stream": True}))
PYEOF
)
record llamaserver-smollm2-chat-tool-result-answer-stream /v1/chat/completions \
    "The tool loop's second request: the assistant message is the model's own call from llamaserver-smollm2-chat-tool-choice-required-stream (its id, name and arguments, recorded just before), the tool message is get_weather's result for it (a stand-in tool: the temperature and conditions are fixed, {\"temperature_c\": 18, \"conditions\": \"sunny\"}); the answer is the model's, streamed in text (its tool-use template shows the result as a user turn (The function returned: ...) and starts the reply as text with >>>all, Functionary's marker for text)." \
    "$SECOND"
record llamaserver-smollm2-chat-parallel-tool-calls-stream /v1/chat/completions \
    "parallel_tool_calls true and two cities: the grammar allows several calls, but this model makes one call and stops (finish_reason tool_calls). $TOOLS_NOTES" \
    "{$CHAT, \"messages\": [{\"role\": \"user\", \"content\": \"What is the weather in Paris and in Tokyo?\"}], \"tools\": [$GET_WEATHER], \"tool_choice\": \"required\", \"parallel_tool_calls\": true, \"max_tokens\": 96, \"temperature\": 0, \"stream\": true}"

# Notebook 05's trip planner: a longer call, three arguments of three kinds. The same request with
# a named tool_choice (local-smollm2-chat-tool-call-plan-trip-stream, from llama-cpp-python) is
# read by llama-server as auto, so this one asks for "required" (one tool: the same call).
PLAN_TRIP='{"type": "function", "function": {"name": "plan_trip", "description": "Plan a trip: the city, the number of days and what to do there", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "activities": {"type": "array", "items": {"type": "string"}}}, "required": ["city", "days", "activities"]}}}'
record llamaserver-smollm2-chat-plan-trip-tool-required-stream /v1/chat/completions \
    "Notebook 05's trip planner: tool_choice required with the one tool plan_trip (llama-cpp-python's recording of this request, local-smollm2-chat-tool-call-plan-trip-stream, names the function in tool_choice, which llama-server reads as auto). Against OpenAI's streamed tool calls (gpt-3.5-turbo, gpt-4o and gpt-4o-mini in the project's conformance corpus): the call's first delta, with its id, type and name, already carries the first argument fragment (OpenAI's carries arguments \"\"); the id is 32 letters and digits without OpenAI's call_ prefix; the model writes the arguments pretty-printed (a newline and indent before each key and list item), OpenAI's models on one line. $TOOLS_NOTES" \
    "{$CHAT, \"messages\": [{\"role\": \"user\", \"content\": \"Plan a three-day trip to Paris with three things to do.\"}], \"tools\": [$PLAN_TRIP], \"tool_choice\": \"required\", \"temperature\": 0, \"stream\": true}"

# An error: a prompt longer than the model's context (4,096 tokens here).
LONG=$("$PY" -c 'print("Repeat after me: " + "apple " * 4200)')
record llamaserver-smollm2-responses-over-context-stream /v1/responses \
    "The input does not fit the context: HTTP 400 before any event, with error.type exceed_context_size_error, error.code the number 400 (OpenAI: a string code or null) and the extra fields n_prompt_tokens and n_ctx." \
    "{$CHAT, \"input\": \"$LONG\", \"temperature\": 0, \"stream\": true}" || test $? -eq 1  # exit 1: saved, an error answer
