// The Vercel AI SDK as a Next.js site calls it: the default provider call (OpenAI's Responses API).
//   node tests/clients/ai_sdk.mjs BASE_URL API_KEY generate|stream PROMPT
// Prints one JSON line: {"text": ..., "finishReason": ..., "usage": {...}, "error": ...}.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, apiKey, mode, prompt] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });
const model = openai("eaves-default");
let result;
if (mode === "generate") {
  const out = await generateText({ model, prompt, maxRetries: 0 });
  result = { text: out.text, finishReason: out.finishReason, usage: out.usage };
} else {
  const errors = [];
  const out = streamText({ model, prompt, maxRetries: 0, onError: ({ error }) => errors.push(String(error)) });
  let text = "";
  for await (const part of out.textStream) text += part;
  result = { text, finishReason: await out.finishReason, usage: await out.usage, error: errors[0] ?? null };
}
process.stdout.write(JSON.stringify(result) + "\n");
