// The Vercel AI SDK streaming one recorded request through the replay server, as its docs show it.
// Run by tests/clients/test_clients.py and benchmarks/clients.py: node stream.mjs BASE_URL REQUEST_JSON [RUNS]
// Prints, like tests/clients/drive.py, a JSON line {"t": s, "text": "..."} per text piece (t in seconds
// from just before streamText was called, on the monotonic clock) and a last line {"end": s}, per run.
import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";

const [baseURL, request, runs = "1"] = process.argv.slice(2);
const body = JSON.parse(request);
const openai = createOpenAI({ baseURL, apiKey: "unused-by-the-replay-server" });
// A chat request goes to the Chat Completions model (openai.chat), a Responses one to openai(),
// the provider's default since AI SDK 5.
const model = "input" in body ? openai(body.model) : openai.chat(body.model);
const prompt = "input" in body ? body.input : body.messages[0].content;

for (let run = 0; run < Number(runs); run++) {
  const start = performance.now();
  const seconds = () => (performance.now() - start) / 1000;
  const result = streamText({ model, prompt, temperature: body.temperature });
  for await (const text of result.textStream) {
    if (text) console.log(JSON.stringify({ t: seconds(), text }));
  }
  console.log(JSON.stringify({ end: seconds() }));
}
