// The console in a real headless Chromium against the real gateway (real Claude Code CLI,
// scripted mock model), with the defaults (warm pool on) and an API key.
// Run: npm test --prefix web (scripts/test.sh does). CCGW_SCREENSHOTS=DIR also saves the main
// views as PNGs (docs/console/ holds the ones the README shows).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { api, launchBrowser, runPython, startGateway, writeTranscript } from "./harness.mjs";

const KEY = "console-browser-key-1";
const SHOTS = process.env.CCGW_SCREENSHOTS;
let gw;
let browser;
// The machine's own Claude Code sessions: one long transcript.
const machine = mkdtempSync(path.join(tmpdir(), "ccgw-machine-"));
writeTranscript(machine, "long-session", 2000);

before(async () => {
  gw = await startGateway({
    env: {
      CCGW_API_KEYS: KEY,
      CCGW_BUILTIN_TOOLS: "Read,Edit,Write,Bash,Glob,Grep,TodoWrite",
      CCGW_CLAUDE_SESSIONS_DIR: machine,
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gw?.stop();
  rmSync(machine, { recursive: true, force: true });
});

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

/** A page signed in through the form. */
async function signedIn(opts = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...opts });
  const page = await ctx.newPage();
  await page.goto(`${gw.url}/admin/`);
  await page.getByLabel("API key").fill(KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "main" }).waitFor();
  return page;
}

test("sign-in with a key", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${gw.url}/admin/`);
  await page.getByLabel("API key").fill("not-the-key-123");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That key was refused.").waitFor();
  assert.equal(await page.getByRole("navigation", { name: "main" }).count(), 0);
  await page.getByLabel("API key").fill(KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "main" }).waitFor();
  // The live feed connects with the key (a WebSocket cannot send headers).
  await page.getByLabel("live feed live").waitFor();
  // The key is never shown.
  assert.ok(!(await page.content()).includes(KEY));
  await ctx.close();
});

test("a session is created, a message sent, and its streamed text appears", async () => {
  const page = await signedIn();
  await page.getByRole("link", { name: "Sessions", exact: true }).click();
  await page.getByRole("button", { name: "New session" }).click();
  const form = page.getByRole("form", { name: "create a session" });
  await form.getByLabel("Title").fill("streaming check");
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: "streaming check" }).waitFor();
  const box = page.getByRole("textbox", { name: /message to session/ });
  await box.fill("stream please [[words:40]] [[slow:40]]");
  await box.press("Enter");
  const text = page.locator(".item.k-text .msg").last();
  // It grows while it streams, then the turn ends.
  await text.waitFor();
  const early = (await text.textContent()).split(/\s+/).filter(Boolean).length;
  await page.locator(".item.k-result").last().waitFor({ timeout: 30_000 });
  const final = (await text.textContent()).split(/\s+/).filter(Boolean).length;
  assert.equal(final, 40);
  assert.ok(early < final, `the text streamed in (${early} words first, then ${final})`);
  // Slash commands autocomplete.
  await box.fill("/co");
  const options = page.getByRole("listbox", { name: "slash commands" }).getByRole("option");
  await options.first().waitFor();
  const names = await options.allTextContents();
  assert.ok(names.some((n) => n.startsWith("/compact")) && names.some((n) => n.startsWith("/cost")), names.join("|"));
  await box.press("Escape");
  await shot(page, "session");
  // Export as Markdown: the transcript downloads.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export Markdown" }).click()]);
  const md = await new Promise((resolve) => {
    let text = "";
    download.createReadStream().then((st) => {
      st.on("data", (d) => (text += d));
      st.on("end", () => resolve(text));
    });
  });
  assert.match(md, /stream please/);
  assert.match(md, /w40/);
  // Interrupt: a long answer stops, marked as a decision point.
  await box.fill("a long one [[words:400]] [[slow:50]]");
  await box.press("Enter");
  await page.locator(".item.k-text .msg", { hasText: "w5 " }).waitFor({ timeout: 30_000 });
  await page.getByRole("button", { name: "Interrupt" }).click();
  await page.locator(".item.k-result.interrupted, .item.k-result .interrupted").first().waitFor({ timeout: 30_000 });
  // Delete: gone from the list.
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Delete" }).click();
  await page.getByTestId("sessions").waitFor();
  assert.equal(await page.getByTestId("sessions").getByText("streaming check").count(), 0);
  await page.context().close();
});

test("a built-in Edit renders as a diff; a permission is answered with the button and the outcome follows", async () => {
  const ws = path.join(gw.dataDir, "workspaces", "edit-check");
  mkdirSync(ws, { recursive: true });
  const file = path.join(ws, "greet.py");
  writeFileSync(file, 'def greet():\n    return "hello"\n');
  const page = await signedIn();
  await page.getByRole("link", { name: "Sessions", exact: true }).click();
  await page.getByRole("button", { name: "New session" }).click();
  const form = page.getByRole("form", { name: "create a session" });
  await form.getByLabel("Title").fill("edit check");
  await form.getByLabel("Workspace").fill(ws);
  // The deployment's tools, offered as checkboxes (GET /api/tools).
  const tools = form.getByRole("group", { name: "Built-in tools" });
  for (const t of ["Read", "Edit", "Bash"]) await tools.getByLabel(t, { exact: true }).check();
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: "edit check" }).waitFor();
  const box = page.getByRole("textbox", { name: /message to session/ });
  await box.fill(`[[tool:Read {"file_path":${JSON.stringify(file)}}]]`);
  await box.press("Enter");
  await page.locator('.tool[data-tool="Read"] .badge.ok').waitFor({ timeout: 30_000 });
  await page.locator(".item.k-result").last().waitFor();
  const results = await page.locator(".item.k-result").count();
  await box.fill(
    `[[tool:Edit {"file_path":${JSON.stringify(file)},"old_string":"return \\"hello\\"","new_string":"return \\"hello, world\\""}]]`,
  );
  await box.press("Enter");
  // Default mode asks before an edit: the prompt shows, answered with the button.
  const prompt = page.getByRole("group", { name: "permission request for Edit" });
  await prompt.waitFor({ timeout: 30_000 });
  await shot(page, "permission");
  await prompt.getByRole("button", { name: "Allow" }).click();
  const edit = page.locator('.tool[data-tool="Edit"]');
  await edit.locator(".badge.ok").waitFor({ timeout: 30_000 });
  await page.locator(".item.k-result").nth(results).waitFor();
  // A real diff: a removed and an added line, highlighted as Python.
  const diff = edit.getByTestId("diff");
  await diff.locator(".d2h-ins").first().waitFor();
  const added = (await diff.locator(".d2h-ins .d2h-code-line-ctn").allTextContents()).join("\n");
  const removed = (await diff.locator(".d2h-del .d2h-code-line-ctn").allTextContents()).join("\n");
  assert.match(added, /hello, world/);
  assert.match(removed, /"hello"/);
  assert.doesNotMatch(removed, /world/);
  assert.ok((await diff.locator(".hljs-string, .hljs-keyword").count()) > 0, "syntax highlighted");
  assert.match(await prompt.textContent(), /allowed/);
  await shot(page, "edit-diff");
  // Denied: the tool does not run and the model is told.
  await box.fill('[[tool:Bash {"command":"touch denied.txt"}]]');
  await box.press("Enter");
  const bash = page.getByRole("group", { name: "permission request for Bash" });
  await bash.waitFor({ timeout: 30_000 });
  await bash.getByRole("button", { name: "Deny" }).click();
  await page.locator('.tool[data-tool="Bash"] .badge.err').waitFor({ timeout: 30_000 });
  assert.match(await bash.textContent(), /denied/);
  // The changes view shows the edit.
  await page.getByRole("tab", { name: "changes" }).click();
  await page.locator(".changes .d2h-ins").first().waitFor();
  await page.context().close();
});

test("an openai SDK request appears live in the home list and its timeline", async () => {
  const page = await signedIn();
  await page.getByTestId("conversations").waitFor();
  const run = runPython(
    `
from openai import OpenAI
c = OpenAI(base_url="${gw.url}/v1", api_key="${KEY}")
s = c.chat.completions.create(model="sonnet", stream=True, user="browser-test",
    messages=[{"role": "user", "content": "from the sdk [[words:120]] [[slow:60]]"}])
print("".join((ch.choices[0].delta.content or "") for ch in s if ch.choices))
`,
  );
  let finished = false;
  run.then(() => (finished = true)).catch(() => {});
  // Live: the row appears, running, while the answer still streams.
  const row = page.locator("[data-testid=conversations] tbody tr", { hasText: "from the sdk" });
  await row.filter({ hasText: "running" }).waitFor({ timeout: 30_000 });
  assert.equal(finished, false, "the row was there before the answer ended");
  assert.match(await row.textContent(), /openai/);
  await row.getByRole("link").click();
  await page.getByTestId("timeline").waitFor();
  const out = await run;
  await page.locator(".item.k-result").waitFor({ timeout: 30_000 });
  const text = await page.locator(".item.k-text .msg").first().textContent();
  assert.equal(text.trim(), out.trim());
  assert.match(await page.locator(".bar").first().textContent(), /browser-test/);
  await shot(page, "conversation-openai");
  await page.getByRole("link", { name: "Live" }).click();
  await row.waitFor();
  assert.match(await row.textContent(), /idle/);
  await shot(page, "home");
  await page.context().close();
});

test("the dashboard's charts receive new points", async () => {
  const page = await signedIn();
  await page.getByRole("link", { name: "Dashboard" }).click();
  const chart = page.locator('figure[data-chart="Requests per second"]');
  await chart.locator("canvas").waitFor();
  const points = async () => Number(await chart.getAttribute("data-points"));
  const first = await points();
  await api(gw, KEY, "POST", "/v1/chat/completions", { model: "sonnet", messages: [{ role: "user", content: "dash" }] });
  const deadline = Date.now() + 15_000;
  while ((await points()) <= first && Date.now() < deadline) await page.waitForTimeout(250);
  assert.ok((await points()) > first, `new points arrived (${first} → ${await points()})`);
  assert.equal(await page.locator("figure.chart canvas").count(), 6);
  await shot(page, "dashboard");
  await page.context().close();
});

test("phone width, keyboard and dark theme", async () => {
  const page = await signedIn({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  // Keyboard: the skip link, then the navigation.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
  await page.getByRole("button", { name: "toggle dark theme" }).press("Enter");
  const theme = await page.evaluate(() => document.documentElement.dataset.theme);
  assert.ok(theme === "dark" || theme === "light");
  await page.getByRole("link", { name: "Sessions", exact: true }).focus();
  await page.keyboard.press("Enter");
  await page.getByTestId("sessions").waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling at phone width (${overflow}px)`);
  await page.evaluate(() => (document.documentElement.dataset.theme = "dark"));
  await shot(page, "phone-sessions");
  // Approving a tool call from a phone.
  const s = await api(gw, KEY, "POST", "/api/sessions", { model: "sonnet", tools: ["Bash"], title: "from the phone" });
  await page.evaluate(() => (document.documentElement.dataset.theme = "light"));
  await page.goto(`${gw.url}/admin/sessions/${s.id}`);
  await page.getByTestId("timeline").waitFor();
  const reply = api(gw, KEY, "POST", `/api/sessions/${s.id}/messages`, { content: '[[tool:Bash {"command":"touch phone.txt"}]]' });
  const prompt = page.getByRole("group", { name: "permission request for Bash" });
  await prompt.waitFor({ timeout: 30_000 });
  const allow = prompt.getByRole("button", { name: "Allow" });
  const box = await allow.boundingBox();
  assert.ok(box.height >= 44, `a thumb-sized button (${box.height}px)`);
  await shot(page, "phone-permission");
  // The JSON reply does not wait for the answer: it names the pending request.
  const r = await reply;
  assert.equal(r.stop_reason, "permission_required");
  assert.equal(r.permission_requests[0].tool_name, "Bash");
  await allow.tap();
  await page.locator('.tool[data-tool="Bash"] .badge.ok').waitFor({ timeout: 30_000 });
  // The turn goes on once answered: the model's answer reaches the timeline.
  await page.locator(".item.k-text .msg", { hasText: "tool results" }).waitFor({ timeout: 30_000 });
  await page.context().close();
});

test("agents are created and edited; the tools show the policy; a session's tool calls are listed", async () => {
  const page = await signedIn();
  await page.getByRole("link", { name: "Agents & tools" }).click();
  // Built-in agents come from the CLI.
  const agents = page.getByTestId("agents");
  await agents.getByText("builtin").first().waitFor();
  // Create one in the form.
  const create = page.getByRole("form", { name: "create an agent" });
  await create.getByLabel("Name").fill("console-reviewer");
  await create.getByLabel("Description").fill("reviews from the console");
  await create.getByLabel("Prompt").fill("You review code carefully.");
  await create.getByLabel("Tools").fill("Read, Grep");
  await create.getByRole("button", { name: "Save" }).click();
  const row = agents.locator("tr", { hasText: "console-reviewer" });
  await row.getByText("custom").waitFor();
  assert.match(await row.textContent(), /Read, Grep/);
  // Edit it: the stored config changes.
  await row.getByRole("button", { name: "Edit" }).click();
  const edit = page.getByRole("form", { name: "edit agent console-reviewer" });
  await edit.getByLabel("Description").fill("reviews, edited");
  await edit.getByRole("button", { name: "Save" }).click();
  await agents.locator("tr", { hasText: "reviews, edited" }).waitFor();
  const cfg = await api(gw, KEY, "GET", "/api/agents/console-reviewer/config");
  assert.equal(cfg.description, "reviews, edited");
  // The tools, with the deployment's policy.
  const tools = page.getByTestId("tools");
  await tools.locator("tr", { hasText: "Grep" }).getByText("allowed", { exact: true }).waitFor();
  assert.equal(await tools.locator("tr", { hasText: "WebFetch" }).getByText("not allowed").count(), 1);
  // A session's tool-call history: a direct Write is listed with its kind.
  const s = await api(gw, KEY, "POST", "/api/sessions", { model: "sonnet", title: "tool history", tools: ["Write"] });
  await api(gw, KEY, "POST", `/api/sessions/${s.id}/tools/write`, { file_path: "notes.txt", content: "hello" });
  await page.reload();
  await page.getByLabel("session").selectOption(s.id);
  const calls = page.getByTestId("tool-calls");
  await calls.locator("tr", { hasText: "Write" }).waitFor();
  assert.match(await calls.locator("tr", { hasText: "Write" }).textContent(), /direct/);
  await shot(page, "agents");
  await api(gw, KEY, "DELETE", "/api/agents/console-reviewer");
  await page.context().close();
});

test("slash commands autocomplete from the list, by alias too; branch from here opens a fork that holds the history up to that point", async () => {
  const s = await api(gw, KEY, "POST", "/api/sessions", { model: "sonnet", title: "branching" });
  for (const m of ["alpha turn", "beta turn"]) {
    await api(gw, KEY, "POST", `/api/sessions/${s.id}/messages`, { content: m });
  }
  const page = await signedIn();
  await page.goto(`${gw.url}/admin/sessions/${s.id}`);
  await page.getByRole("heading", { name: "branching" }).waitFor();
  // The commands come from the session's list: /cost is found through its alias (the CLI
  // calls it /usage), /comp finds /compact.
  const box = page.getByRole("textbox", { name: /message to session/ });
  const list = page.getByRole("listbox", { name: "slash commands" });
  await box.fill("/comp");
  await list.getByRole("option", { name: /compact/ }).first().waitFor();
  await box.fill("/cost");
  await list.getByRole("option").first().waitFor();
  assert.match(await list.textContent(), /usage|cost/);
  await box.press("Tab");
  assert.match(await box.inputValue(), /^\/(usage|cost) $/);
  await box.fill("");
  // Branch from the first turn's answer: a new session opens, with the first turn only.
  const results = page.locator(".item.k-result");
  await results.nth(1).waitFor({ timeout: 30_000 });
  await results.first().getByRole("button", { name: "branch" }).click();
  await page.waitForURL((u) => !u.pathname.endsWith(s.id), { timeout: 30_000 });
  const forkId = new URL(page.url()).pathname.split("/").pop();
  assert.notEqual(forkId, s.id);
  await page.getByText("fork", { exact: false }).first().waitFor();
  const history = JSON.stringify(await api(gw, KEY, "GET", `/api/sessions/${forkId}/history`));
  assert.match(history, /alpha turn/);
  assert.doesNotMatch(history, /beta turn/);
  // The fork goes on from there: the model sees alpha, not beta.
  await page.getByRole("textbox", { name: /message to session/ }).fill("gamma [[report:history]]");
  await page.getByRole("textbox", { name: /message to session/ }).press("Enter");
  await page.locator(".item.k-text", { hasText: "gamma" }).last().waitFor({ timeout: 30_000 });
  const answer = await page.locator(".item.k-text").last().textContent();
  assert.match(answer, /alpha turn/);
  assert.doesNotMatch(answer, /beta turn/);
  await page.context().close();
});

test("a session of 2,000 events scrolls as a virtualized list", async () => {
  // 667 turns of a user message, a text and a Bash call with its result: 2,668 events in
  // 2,001 rows.
  const page = await signedIn();
  await page.getByRole("link", { name: "Machine sessions" }).click();
  const link = page.getByTestId("machine-sessions").getByRole("link").first();
  await link.waitFor();
  // The timeline opens at its newest rows: its oldest are never drawn on the way there.
  // Only rows of the timeline count: the session list shows the first prompt as its title,
  // and it may still be drawing when the observer starts.
  await page.evaluate(() => {
    window.__oldestDrawn = false;
    new MutationObserver((changes) => {
      for (const c of changes)
        for (const n of c.addedNodes) {
          const el = n.nodeType === Node.ELEMENT_NODE ? n : n.parentElement;
          if (el?.closest('[data-testid="timeline"]') && n.textContent?.includes("step 0: list")) window.__oldestDrawn = true;
        }
    }).observe(document.body, { childList: true, subtree: true });
  });
  await link.click();
  const count = page.locator(".filters .count");
  await count.filter({ hasText: /\/ 2001/ }).waitFor({ timeout: 30_000 });
  const scroller = page.getByTestId("timeline");
  await scroller.locator(".item", { hasText: "step 666" }).first().waitFor({ timeout: 5_000 });
  assert.equal(await page.evaluate(() => window.__oldestDrawn), false, "the oldest rows were drawn before the newest");
  // Only what is on screen is in the DOM, wherever the list is scrolled.
  const rows = () => scroller.locator(".item").count();
  assert.ok((await rows()) < 80, `${await rows()} rows rendered`);
  const frames = await scroller.evaluate(async (el) => {
    const gaps = [];
    let last = performance.now();
    el.scrollTop = 0;
    for (let i = 0; i < 120; i++) {
      el.scrollTop += el.scrollHeight / 120;
      await new Promise(requestAnimationFrame);
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    return gaps;
  });
  assert.ok((await rows()) < 80, `${await rows()} rows rendered after scrolling`);
  assert.ok(frames.length === 120);
  // The end is reachable (sizes are measured as rows appear, so settle there first).
  for (let i = 0; i < 5; i++) {
    await scroller.evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForTimeout(100);
  }
  await scroller.locator(".item", { hasText: "step 666" }).first().waitFor();
  // Filtering 2,000 events by tool is immediate too.
  await page.getByLabel("filter by tool").selectOption("Bash");
  await count.filter({ hasText: /^667 \/ 2001/ }).waitFor();
  await shot(page, "machine-session");
  await page.context().close();
});
