// The API reference at /docs in a real headless Chromium against the real gateway, under the
// defaults: the page renders the gateway's own /openapi.json, shows its operations, and loads
// nothing from any host but the gateway's (its assets are embedded in the binary).
// CCGW_SCREENSHOTS=DIR also saves it as a PNG.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { mkdirSync } from "node:fs";
import { launchBrowser, startGateway } from "./harness.mjs";

let gw;
let browser;

before(async () => {
  gw = await startGateway();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gw?.stop();
});

test("/docs renders the description and talks to the gateway only", async () => {
  const page = await browser.newPage();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const failed = [];
  page.on("requestfailed", (r) => failed.push(r.url()));
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  const resp = await page.goto(`${gw.url}/docs`);
  assert.equal(resp.status(), 200);
  // A known operation of each compatible API, as Swagger UI lists them.
  const chat = page.locator('.opblock-summary-path[data-path="/v1/chat/completions"]');
  await chat.first().waitFor({ timeout: 30_000 });
  const messages = page.locator('.opblock-summary-path[data-path="/v1/messages"]');
  assert.ok((await messages.count()) >= 1, "POST /v1/messages is listed");
  assert.match(await page.locator(".info .title").innerText(), /ccgw/);

  // Open one operation: its request body schema is the wire type's.
  await chat.first().click();
  await page.locator(".opblock-body").first().waitFor();
  assert.match(await page.locator(".opblock-body").first().innerText(), /ChatCompletionRequest|messages/);

  if (process.env.CCGW_SCREENSHOTS) {
    mkdirSync(process.env.CCGW_SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(process.env.CCGW_SCREENSHOTS, "docs.png") });
  }
  const origin = new URL(gw.url).origin;
  const elsewhere = requests.filter((u) => !u.startsWith("data:") && new URL(u).origin !== origin);
  assert.deepEqual(elsewhere, [], "requests to other hosts");
  assert.ok(requests.some((u) => u === `${origin}/openapi.json`), "the page fetched /openapi.json");
  assert.deepEqual(failed, [], "failed requests");
  assert.deepEqual(errors, [], "page errors");
  await page.close();
});
