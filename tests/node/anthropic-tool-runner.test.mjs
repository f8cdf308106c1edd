// The Anthropic TypeScript SDK's default tool runner against the gateway: it runs over a
// message thread (`anthropic-beta: message-threads-2026-08-12`), so its second request sends
// only the tool results, with `thread: {type: "continue", previous_message_id}` and neither
// `system` nor `tools`. Needs CCGW_URL (the gateway, with the mock model behind it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import Anthropic from '@anthropic-ai/sdk';
import { betaTool } from '@anthropic-ai/sdk/helpers/beta/json-schema';

const baseURL = process.env.CCGW_URL;
assert.ok(baseURL, 'CCGW_URL must name the gateway');

/** A client whose requests to the gateway are recorded (body and headers). */
function recordingClient() {
  const sent = [];
  const client = new Anthropic({
    baseURL,
    apiKey: 'unused',
    maxRetries: 0,
    fetch: async (url, init) => {
      sent.push({ url: String(url), headers: new Headers(init?.headers), body: JSON.parse(init?.body ?? 'null') });
      return fetch(url, init);
    },
  });
  return { client, sent };
}

function weatherTool(tag, calls) {
  return betaTool({
    name: 'get_weather',
    description: 'Current weather for a city',
    inputSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    run: async ({ city }) => {
      calls.push(city);
      return `sunny in ${city} ${tag}`;
    },
  });
}

for (const stream of [false, true]) {
  test(`the default tool runner finishes over a thread (stream: ${stream})`, async () => {
    const { client, sent } = recordingClient();
    const tag = randomUUID().slice(0, 8);
    const calls = [];
    const final = await client.beta.messages.toolRunner({
      model: 'sonnet',
      max_tokens: 1024,
      system: `You are a weather bot ${tag}.`,
      stream,
      tools: [weatherTool(tag, calls)],
      messages: [{ role: 'user', content: `${tag} [[tool:get_weather {"city":"Oslo"}]]` }],
    });
    assert.deepEqual(calls, ['Oslo']);
    assert.equal(final.stop_reason, 'end_turn');
    assert.equal(final.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
      `done | tool results: sunny in Oslo ${tag}`);

    // What the runner sent: a thread it created, then a continue with only the new message.
    assert.equal(sent.length, 2);
    const [first, second] = sent;
    assert.match(first.headers.get('anthropic-beta') ?? '', /message-threads-2026-08-12/);
    assert.deepEqual(first.body.thread, { type: 'create' });
    assert.equal(second.body.thread.type, 'continue');
    assert.match(second.body.thread.previous_message_id, /^msg_/);
    assert.equal(second.body.messages.length, 1);
    assert.equal(second.body.messages[0].content[0].type, 'tool_result');
    assert.equal(second.body.system, undefined);
    assert.equal(second.body.tools, undefined);
  });
}

test('a thread continues across plain turns, and an unknown one is thread_not_found', async () => {
  const { client } = recordingClient();
  const tag = randomUUID().slice(0, 8);
  const thread = client.beta.messages.thread({ model: 'sonnet', max_tokens: 256, system: `S-${tag}` });
  const first = await thread.send({ role: 'user', content: `first ${tag}` });
  assert.equal(first.content[0].text, `first ${tag}`);
  const second = await thread.send({ role: 'user', content: `[[report:history]] second ${tag}` });
  const history = JSON.parse(second.content[0].text.replace(/^history=/, ''));
  const texts = history.map((m) => m.text).filter(Boolean);
  assert.ok(texts.some((t) => t.endsWith(`first ${tag}`)), texts.join(' | '));
  assert.ok(texts.at(-1).endsWith(`second ${tag}`));

  await assert.rejects(
    client.beta.messages.create({
      model: 'sonnet',
      max_tokens: 16,
      thread: { type: 'continue', previous_message_id: 'msg_never_seen' },
      messages: [{ role: 'user', content: 'hello' }],
      betas: ['message-threads-2026-08-12'],
    }),
    (e) => {
      assert.equal(e.status, 404);
      assert.equal(e.error.error.details.error_code, 'thread_not_found');
      return true;
    },
  );
});
