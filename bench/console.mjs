#!/usr/bin/env node
// Console speed (a benchmark script, never a timed test): the real gateway in demo mode (the
// real Claude Code CLI against the scripted mock model) and Debian's Chromium (headless,
// playwright-core), on this machine.
//
//   7. CLI line → screen: for every live event of a streamed turn, the time from the gateway
//      reading the CLI's line (the feed item's server timestamp) to the frame that shows it
//      (same machine, same clock). Target: p99 < 50 ms.
//   8. A view's first render: from an in-app navigation to the view's data on screen, for each
//      main view (10 times each), and for a timeline of 2,001 rows. Target: < 100 ms.
//   9. Scrolling a 2,001-row timeline: frame intervals while it scrolls end to end.
//
// Usage: node bench/console.mjs [--turns N] [--words N] [--slow MS] [--no-append]
// Needs `cargo build` (debug, as the tests use; CCGW_BIN=target/release/ccgw for release),
// `scripts/setup.sh --console --browser` and the CLI. Appends its section to bench/RESULTS.md.
import { execSync } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { api, gatewayBin, launchBrowser, startGateway, writeTranscript } from "../web/tests/harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const TURNS = arg("turns", 5);
const WORDS = arg("words", 300);
const SLOW = arg("slow", 10);
const APPEND = !process.argv.includes("--no-append");

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");

const load0 = loadavg().map((x) => x.toFixed(2)).join(" ");
const machine = mkdtempSync(path.join(tmpdir(), "ccgw-bench-machine-"));
writeTranscript(machine, "long-session", 2000);
const gw = await startGateway({ env: { CCGW_CLAUDE_SESSIONS_DIR: machine, CCGW_LOG: "warn,ccgw::server=info" } });
const browser = await launchBrowser();
const key = "";
const rows = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(`${gw.url}/admin/`);
  await page.getByLabel("live feed live").waitFor();

  // 7. CLI line → screen.
  const s = await api(gw, key, "POST", "/api/sessions", { model: "sonnet", title: "latency" });
  await page.evaluate((id) => window.__ccgw.go(`/sessions/${id}`), s.id);
  await page.getByTestId("timeline").waitFor();
  await page.waitForTimeout(500);
  const perTurn = [];
  for (let t = 0; t < TURNS; t++) {
    await page.evaluate(() => (window.__ccgw.latencies.length = 0));
    await api(gw, key, "POST", `/api/sessions/${s.id}/messages`, { content: `turn ${t} [[words:${WORDS}]] [[slow:${SLOW}]]` });
    // The reply is back when the turn ended; its last events reach the page right after.
    await page.locator(".item.k-result").last().waitFor({ timeout: 60_000 });
    await page.waitForTimeout(300);
    perTurn.push(await page.evaluate(() => window.__ccgw.latencies.slice()));
  }
  const lat = perTurn.flat();
  rows.push(["7. CLI line → screen, events measured", `${lat.length} (${TURNS} turns of ${WORDS} words, ${SLOW} ms apart)`, "", ""]);
  rows.push(["7. CLI line → screen p50 / p95", `${f1(pct(lat, 50))} ms / ${f1(pct(lat, 95))} ms`, "", ""]);
  rows.push(["7. CLI line → screen p99 (max)", `${f1(pct(lat, 99))} ms (${f1(Math.max(...lat))} ms)`, "< 50 ms", pct(lat, 99) < 50 ? "yes" : "**no**"]);

  // 8. First render of each view.
  await api(gw, key, "POST", "/v1/chat/completions", { model: "sonnet", messages: [{ role: "user", content: "for the list [[words:20]]" }] });
  const convs = await api(gw, key, "GET", "/admin/api/conversations?source=openai");
  const views = [
    ["Live (home)", "/", "[data-testid=conversations] tbody tr[data-id]"],
    ["Sessions", "/sessions", "[data-testid=sessions] tbody tr"],
    ["Session timeline", `/sessions/${s.id}`, ".scroller .item"],
    ["OpenAI conversation timeline", `/c/${convs.data[0].id}`, ".scroller .item"],
    ["Machine sessions", "/machine", "[data-testid=machine-sessions] tbody tr"],
    ["Agents & tools", "/agents", "[data-testid=tools]"],
    ["Dashboard", "/dashboard", "figure.chart canvas"],
    ["Timeline of 2,001 rows", "/machine/long-session", ".scroller .item"],
  ];
  const renders = [];
  for (const [name, to, sel] of views) {
    const times = [];
    for (let i = 0; i < 10; i++) {
      await page.evaluate(() => window.__ccgw.go("/nowhere"));
      await page.waitForTimeout(50);
      times.push(
        await page.evaluate(
          async ([to, sel]) => {
            const t0 = performance.now();
            window.__ccgw.go(to);
            while (!document.querySelector(sel)) await new Promise((r) => requestAnimationFrame(r));
            // Painted: the frame after the one the content was committed in.
            await new Promise((r) => requestAnimationFrame(r));
            return performance.now() - t0;
          },
          [to, sel],
        ),
      );
    }
    renders.push(...times);
    rows.push([`8. first render: ${name}, median (max)`, `${f1(pct(times, 50))} ms (${f1(Math.max(...times))} ms)`, "< 100 ms", Math.max(...times) < 100 ? "yes" : pct(times, 50) < 100 ? "median yes, max **no**" : "**no**"]);
  }

  // 9. Scrolling 2,001 rows.
  await page.evaluate(() => window.__ccgw.go("/machine/long-session"));
  await page.locator(".scroller .item").first().waitFor();
  const frames = await page.getByTestId("timeline").evaluate(async (el) => {
    const gaps = [];
    el.scrollTop = 0;
    await new Promise((r) => requestAnimationFrame(r));
    let last = performance.now();
    for (let i = 0; i < 300; i++) {
      el.scrollTop += el.scrollHeight / 300;
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    return { gaps, rows: el.querySelectorAll(".item").length };
  });
  rows.push(["9. scrolling 2,001 rows: frame interval p50 / p99 (max)", `${f1(pct(frames.gaps, 50))} / ${f1(pct(frames.gaps, 99))} ms (${f1(Math.max(...frames.gaps))} ms)`, "", ""]);
  rows.push(["9. rows in the DOM while scrolling", String(frames.rows), "", ""]);
} finally {
  await browser.close();
  await gw.stop();
  rmSync(machine, { recursive: true, force: true });
}

const load1 = loadavg().map((x) => x.toFixed(2)).join(" ");
let commit = "unknown";
try {
  commit = execSync("git rev-parse --short=12 HEAD", { cwd: ROOT }).toString().trim();
} catch {}
const chromium = execSync("/usr/bin/chromium --version 2>/dev/null || true").toString().trim();
const table = ["| figure | value | target | met |", "| --- | --- | --- | --- |", ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
const section = `
## Figures 7–9: the web console (CLI line → screen, first render, scrolling)

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; commit: \`${commit}\`; cores: ${cpus().length}; load average before/after: ${load0} / ${load1}
- command: \`node bench/console.mjs --turns ${TURNS} --words ${WORDS} --slow ${SLOW}\`
- gateway: \`${path.relative(ROOT, gatewayBin())} serve --demo\` (the real CLI against the mock model; defaults: warm pool on); browser: ${chromium}, headless, driven by playwright-core
- 7 is measured in the page: the feed item's server time (set when the gateway reads the CLI's line) to the first task after the animation frame that paints its row; 8 from \`history.pushState\` navigation to the frame after the view's data is in the DOM

${table}
`;
console.log(section);
if (APPEND) appendFileSync(path.join(ROOT, "bench", "RESULTS.md"), section);
