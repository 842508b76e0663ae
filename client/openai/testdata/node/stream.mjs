// Streams a chat completion through the UNFED client proxy with the
// official openai package, and prints what it received as one JSON line.
// Run by client/openai TestOpenAIClientStreaming; inputs come from env.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.UNFED_BASE_URL,
  apiKey: process.env.UNFED_API_KEY,
  maxRetries: 0,
  timeout: 20000,
});

const out = { content: '', role: null, finish: null, usage: null, chunks: 0, ids: [], objects: [] };
const stream = await client.chat.completions.create({
  model: process.env.UNFED_MODEL,
  messages: [
    { role: 'system', content: 'You tell stories.' },
    { role: 'user', content: 'Once upon a time' },
  ],
  stream: true,
  stream_options: { include_usage: true },
  max_tokens: 64,
  temperature: 0,
  seed: 7,
  stop: [' park'],
});
for await (const chunk of stream) {
  out.chunks++;
  if (!out.ids.includes(chunk.id)) out.ids.push(chunk.id);
  if (!out.objects.includes(chunk.object)) out.objects.push(chunk.object);
  if (chunk.usage) out.usage = chunk.usage;
  for (const choice of chunk.choices) {
    if (choice.delta.role) out.role = choice.delta.role;
    if (choice.delta.content) out.content += choice.delta.content;
    if (choice.finish_reason) out.finish = choice.finish_reason;
  }
}

// An unknown model must surface as the SDK's typed 404 error.
try {
  await client.chat.completions.create({
    model: 'no-such-model',
    messages: [{ role: 'user', content: 'x' }],
  });
  out.notFound = 'no error';
} catch (err) {
  out.notFound = { status: err.status, code: err.code, type: err.type, isNotFound: err instanceof OpenAI.NotFoundError };
}
console.log(JSON.stringify(out));
