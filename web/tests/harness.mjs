// Test and benchmark harness: the real gateway binary (demo mode: the real Claude Code CLI
// against the project's scripted mock model), and Debian's Chromium driven by playwright-core
// (never a downloaded browser).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function gatewayBin() {
  if (process.env.CCGW_BIN) return process.env.CCGW_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, "target");
  return path.join(target, "debug", "ccgw");
}

export function toolsDir() {
  return process.env.CCGW_TOOLS_DIR ?? path.join(ROOT, ".tools");
}

export function python() {
  return path.join(toolsDir(), "venv", "bin", "python");
}

/** Start `ccgw serve --demo` on a free port with a fresh data dir. */
export async function startGateway({ env = {}, args = [] } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), "ccgw-console-"));
  mkdirSync(path.join(dataDir, "workspaces"), { recursive: true });
  const cli = path.join(toolsDir(), "cli", "node_modules", ".bin", "claude");
  const child = spawn(gatewayBin(), ["serve", "--demo", "--port", "0", "--data-dir", dataDir, ...args], {
    env: {
      ...process.env,
      CCGW_LOG_FORMAT: "json",
      CCGW_LOG: process.env.CCGW_LOG ?? "info",
      ...(existsSync(cli) && !process.env.CCGW_CLAUDE_BIN ? { CCGW_CLAUDE_BIN: cli } : {}),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // Never leave it behind: a gateway that did not say it listens is stopped.
      child.kill("SIGTERM");
      reject(new Error(`the gateway did not start:\n${log}`));
    }, 60_000);
    const onData = (d) => {
      log += d;
      const m = /"addr":"([^"]+)"[^\n]*ccgw listening|ccgw listening[^\n]*"addr":"([^"]+)"/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1] ?? m[2]}`);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`the gateway exited (${code}):\n${log}`)));
  });
  return {
    url,
    dataDir,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await Promise.race([gone, new Promise((r) => setTimeout(r, 15_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with a fresh profile and no background traffic. (Playwright
 * gives every launch a fresh `--user-data-dir` of its own in the temp dir and refuses one in
 * `args`; it is removed when the browser closes.) */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CCGW_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Run a Python snippet with the test virtualenv (the official SDKs). */
export function runPython(code, env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(python(), ["-c", code], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`python exited ${code}: ${err}`))));
  });
}

export async function api(gw, key, method, p, body) {
  const r = await fetch(gw.url + p, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A Claude Code transcript (the CLI's JSONL format) whose timeline has at least `rows` rows
 * (a user message, a text and a Bash call with its result, over and over), as the machine's
 * own sessions are found: `<dir>/projects/<project>/<id>.jsonl`. */
export function writeTranscript(dir, id, rows, cwd = "/srv/app") {
  const project = path.join(dir, "projects", cwd.replace(/[^A-Za-z0-9]/g, "-"));
  mkdirSync(project, { recursive: true });
  const lines = [];
  const t0 = Date.now() - rows * 1000;
  let parent = null;
  const line = (obj, i) => {
    const uuid = `u-${i}-${lines.length}`;
    lines.push(JSON.stringify({ parentUuid: parent, isSidechain: false, cwd, sessionId: id, uuid, timestamp: new Date(t0 + lines.length * 1000).toISOString(), ...obj }));
    parent = uuid;
  };
  for (let i = 0; i * 3 < rows; i++) {
    line({ type: "user", message: { role: "user", content: `step ${i}: list the files and count them` } }, i);
    line({ type: "assistant", message: { role: "assistant", content: [{ type: "text", text: `Listing the files for step ${i}.` }, { type: "tool_use", id: `toolu_${i}`, name: "Bash", input: { command: `ls -la src/part${i}` } }] } }, i);
    line({ type: "user", message: { role: "user", content: [{ type: "tool_result", tool_use_id: `toolu_${i}`, content: `total ${i}\nfile-a.rs\nfile-b.rs` }] } }, i);
  }
  writeFileSync(path.join(project, `${id}.jsonl`), lines.join("\n") + "\n");
}
