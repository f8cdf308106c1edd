// The console in Debian's Firefox ESR (headless, driven over WebDriver BiDi by puppeteer-core;
// never a downloaded browser), against the real gateway (real Claude Code CLI, scripted mock
// model) with the defaults (warm pool on) and an API key. The Chromium suite covers every
// view in depth; this one proves the paths a browser engine could break: sign-in, the live
// feed's WebSocket (the key travels in Sec-WebSocket-Protocol), a streamed turn, the
// gateway-wide home list and the dashboard's canvas charts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import puppeteer from "puppeteer-core";
import { api, startGateway } from "./harness.mjs";

const KEY = "console-firefox-key-1";
const FIREFOX = process.env.CCGW_FIREFOX ?? "/usr/bin/firefox-esr";
let gw;
let browser;

before(async () => {
  assert.ok(existsSync(FIREFOX), `Firefox is not at ${FIREFOX}: run scripts/setup.sh --browser (or set CCGW_FIREFOX)`);
  gw = await startGateway({ env: { CCGW_API_KEYS: KEY } });
  browser = await launchFirefox();
});

/** Firefox, started with its own new profile. A cold first start on a busy machine has taken
 * over puppeteer's default 30 s to say where it listens: wait longer, and try once more. */
async function launchFirefox() {
  for (let attempt = 1; ; attempt++) {
    try {
      return await puppeteer.launch(firefoxOptions());
    } catch (e) {
      if (attempt >= 2) throw e;
      console.error(`Firefox did not start (${e.message}); trying once more`);
    }
  }
}

function firefoxOptions() {
  return {
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    timeout: 90_000,
    // No background traffic: this machine's network is closed.
    extraPrefsFirefox: {
      "network.captive-portal-service.enabled": false,
      "app.update.enabled": false,
      "browser.safebrowsing.malware.enabled": false,
      "browser.safebrowsing.phishing.enabled": false,
      "extensions.getAddons.cache.enabled": false,
    },
  };
}

after(async () => {
  await browser?.close();
  await gw?.stop();
});

/** Wait for `fn` (run in the page) to return a truthy value, and return it. */
async function until(page, fn, arg, timeout = 30_000) {
  const handle = await page.waitForFunction(fn, { timeout, polling: 50 }, arg);
  return handle.jsonValue();
}

test("Firefox: sign in, the live feed, a streamed turn, the home list and the dashboard", async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  await page.goto(`${gw.url}/admin/`);

  // A wrong key is refused; the right one signs in.
  await page.waitForSelector("form[aria-label='sign in'] input[type=password]");
  await page.type("form[aria-label='sign in'] input[type=password]", "not-the-key-123");
  await page.click("form[aria-label='sign in'] button[type=submit]");
  await until(page, () => document.querySelector("[role=alert]")?.textContent.includes("That key was refused."));
  await page.$eval("form[aria-label='sign in'] input[type=password]", (el) => (el.value = ""));
  await page.type("form[aria-label='sign in'] input[type=password]", KEY);
  await page.click("form[aria-label='sign in'] button[type=submit]");
  await page.waitForSelector("nav[aria-label=main]");
  // The live feed's WebSocket is up, authenticated without a header.
  await page.waitForSelector("[aria-label='live feed live']");
  assert.ok(!(await page.content()).includes(KEY), "the key is never shown");

  // A streamed turn: the text grows while it streams, then the turn ends.
  const s = await api(gw, KEY, "POST", "/api/sessions", { model: "sonnet", title: "firefox check" });
  await page.evaluate((id) => window.__ccgw.go(`/sessions/${id}`), s.id);
  const box = `textarea[aria-label='message to session ${s.id}']`;
  await page.waitForSelector(box);
  await page.type(box, "stream please [[words:40]] [[slow:40]]");
  await page.keyboard.press("Enter");
  const words = () => {
    const all = document.querySelectorAll(".item.k-text .msg");
    const t = all[all.length - 1]?.textContent ?? "";
    return t.split(/\s+/).filter(Boolean).length;
  };
  const early = await until(page, words);
  await page.waitForSelector(".item.k-result", { timeout: 30_000 });
  const final = await page.evaluate(words);
  assert.equal(final, 40);
  assert.ok(early < final, `the text streamed in (${early} words first, then ${final})`);

  // A compatible-API request appears in the gateway-wide home list.
  await api(gw, KEY, "POST", "/v1/chat/completions", { model: "sonnet", messages: [{ role: "user", content: "from firefox [[words:5]]" }] });
  await page.evaluate(() => window.__ccgw.go("/"));
  const sources = await until(page, () => {
    const rows = [...document.querySelectorAll("[data-testid=conversations] tbody tr[data-id]")];
    const text = rows.map((r) => r.textContent).join("|");
    return text.includes("openai") && text.includes("native") ? text : null;
  });
  assert.match(sources, /openai/);

  // The dashboard draws its charts on canvases.
  await page.evaluate(() => window.__ccgw.go("/dashboard"));
  const canvases = await until(page, () => {
    const c = [...document.querySelectorAll("figure.chart canvas")];
    return c.length && c.every((el) => el.width > 0 && el.height > 0) ? c.length : 0;
  });
  assert.ok(canvases >= 3, `${canvases} charts`);
  await page.close();
});
