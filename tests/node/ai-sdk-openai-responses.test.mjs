// The Vercel AI SDK's OpenAI provider, default model (`openai(id)`, which speaks the Responses
// API), against the gateway: generateText, streamText, a tool loop, and a multi-turn
// conversation, which the SDK sends with `item_reference`s to the stored replies (its default
// `store: true`). Needs CCGW_URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool } from 'ai';

const baseURL = process.env.CCGW_URL;
assert.ok(baseURL, 'CCGW_URL must name the gateway');

function provider() {
  const sent = [];
  const openai = createOpenAI({
    baseURL: `${baseURL}/v1`,
    apiKey: 'unused',
    fetch: async (url, init) => {
      sent.push({ url: String(url), body: JSON.parse(init?.body ?? 'null') });
      return fetch(url, init);
    },
  });
  return { openai, sent };
}

const tag = () => randomUUID().slice(0, 8);

test('generateText with the default model goes to /v1/responses', async () => {
  const { openai, sent } = provider();
  const t = tag();
  const result = await generateText({
    model: openai('sonnet'),
    system: `Be brief ${t}.`,
    prompt: `hello from the AI SDK ${t} [[usage:21,5]]`,
    maxRetries: 0,
  });
  assert.equal(result.text, `hello from the AI SDK ${t}`);
  assert.equal(result.finishReason, 'stop');
  assert.equal(result.usage.inputTokens, 21);
  assert.equal(result.usage.outputTokens, 5);
  assert.match(sent[0].url, /\/v1\/responses$/);
  assert.equal(result.content.filter((p) => p.type === 'text').length, 1);
});

test('streamText streams the text and the reasoning', async () => {
  const { openai } = provider();
  const t = tag();
  const result = streamText({
    model: openai('sonnet'),
    prompt: `[[think:pondering ${t}]] [[words:7]]`,
    maxRetries: 0,
  });
  const pieces = [];
  for await (const piece of result.textStream) pieces.push(piece);
  assert.equal(pieces.join(''), 'w1 w2 w3 w4 w5 w6 w7');
  assert.ok(pieces.length > 1, 'streamed in pieces');
  assert.equal(await result.reasoningText, `pondering ${t}`);
  assert.equal(await result.finishReason, 'stop');
});

test('a tool loop: the call, its result, the answer', async () => {
  const { openai } = provider();
  const t = tag();
  const seen = [];
  const result = await generateText({
    model: openai('sonnet'),
    prompt: `${t} [[tool:get_weather {"city":"Rome"}]]`,
    tools: {
      get_weather: tool({
        description: 'Current weather for a city',
        inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }),
        execute: async ({ city }) => {
          seen.push(city);
          return `sunny in ${city} ${t}`;
        },
      }),
    },
    stopWhen: stepCountIs(3),
    maxRetries: 0,
  });
  assert.deepEqual(seen, ['Rome']);
  assert.equal(result.steps.length, 2);
  assert.equal(result.steps[0].finishReason, 'tool-calls');
  // The step that only called a tool has no text part at all.
  assert.equal(result.steps[0].content.filter((p) => p.type === 'text').length, 0);
  assert.match(result.text, new RegExp(`^done \\| tool results: .*sunny in Rome ${t}`));
});

test('a multi-turn conversation refers to the stored replies', async () => {
  const { openai, sent } = provider();
  const t = tag();
  const first = await generateText({ model: openai('sonnet'), prompt: `alpha ${t}`, maxRetries: 0 });
  const second = await generateText({
    model: openai('sonnet'),
    messages: [
      { role: 'user', content: `alpha ${t}` },
      ...first.response.messages,
      { role: 'user', content: `[[report:history]] beta ${t}` },
    ],
    maxRetries: 0,
  });
  const items = sent[1].body.input;
  assert.ok(items.some((i) => i.type === 'item_reference'), JSON.stringify(items));
  const history = JSON.parse(second.text.replace(/^history=/, ''));
  const texts = history.map((m) => m.text).filter(Boolean);
  assert.equal(texts.at(-2), `alpha ${t}`, 'the referenced reply reached the model');
  assert.ok(texts.at(-1).endsWith(`beta ${t}`));
});
