// Unit tests of the timeline's fold (web/src/timeline.ts, pure TypeScript), compiled with the
// project's own TypeScript compiler.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src/timeline.ts");
const js = ts.transpileModule(readFileSync(src, "utf8"), {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
}).outputText;
const out = path.join(mkdtempSync(path.join(tmpdir(), "ccgw-timeline-")), "timeline.mjs");
writeFileSync(out, js);
const { Timeline, historyEvent, matches, edits, KINDS } = await import(pathToFileURL(out).href);
rmSync(path.dirname(out), { recursive: true, force: true });

test("deltas stream into one item; a new kind starts another", () => {
  const t = new Timeline();
  t.push({ type: "user_message", content: [{ type: "text", text: "hi" }] });
  t.push({ type: "thinking_delta", text: "hm" });
  t.push({ type: "thinking_delta", text: "m" });
  t.push({ type: "text_delta", text: "Hel" });
  t.push({ type: "text_delta", text: "lo" });
  assert.deepEqual(
    t.items.map((i) => [i.kind, i.text ?? null]),
    [["user", null], ["thinking", "hmm"], ["text", "Hello"]],
  );
  assert.equal(t.items[2].streaming, true);
  t.push({ type: "done", stop_reason: "end_turn", usage: { input_tokens: 1, output_tokens: 2 } });
  assert.equal(t.items[2].streaming, false);
  assert.equal(t.items.at(-1).kind, "result");
});

test("a tool call gathers its input and result; the client's results continue its calls", () => {
  const t = new Timeline();
  t.push({ type: "tool_call_start", id: "t1", name: "get_weather", client: true });
  t.push({ type: "tool_call_delta", id: "t1", partial_json: '{"city":' });
  assert.equal(t.items[0].partial, '{"city":');
  t.push({ type: "tool_call", id: "t1", name: "get_weather", input: { city: "Paris" }, client: true });
  t.push({ type: "done", stop_reason: "tool_use" });
  // The follow-up request carries the client's result as a user message.
  t.push({ type: "user_message", content: [{ type: "tool_result", tool_use_id: "t1", content: "sunny" }] });
  const tool = t.items[0];
  assert.deepEqual(tool.input, { city: "Paris" });
  assert.equal(tool.result, "sunny");
  assert.equal(tool.done, true);
  assert.equal(t.items.filter((i) => i.kind === "user").length, 0, "no empty user bubble");
});

test("permissions are decided by their outcome, or expire with the turn", () => {
  const t = new Timeline();
  t.push({ type: "tool_call", id: "a", name: "Bash", input: { command: "ls" } });
  t.push({ type: "permission_request", request_id: "r1", tool_name: "Bash", input: {}, tool_use_id: "a" });
  t.push({ type: "tool_result", tool_use_id: "a", content: "x", is_error: false });
  t.push({ type: "permission_request", request_id: "r2", tool_name: "Edit", input: {}, tool_use_id: "b" });
  t.push({ type: "done", stop_reason: "end_turn" });
  const perms = t.items.filter((i) => i.kind === "permission");
  assert.deepEqual(perms.map((p) => p.decision), ["allowed", "expired"]);
  assert.ok(perms.every((p) => p.marker === "permission"));
});

test("a subagent's events nest in its Task", () => {
  const t = new Timeline();
  t.push({ type: "tool_call", id: "task1", name: "Task", input: { description: "look", subagent_type: "Explore" } });
  t.push({ type: "task_started", tool_use_id: "task1", description: "look" });
  t.push({ type: "tool_call", id: "sub1", name: "Read", input: { file_path: "/a" }, parent_tool_use_id: "task1" });
  t.push({ type: "text_delta", text: "found", parent_tool_use_id: "task1" });
  t.push({ type: "tool_result", tool_use_id: "task1", content: "done" });
  assert.equal(t.items.length, 1);
  assert.deepEqual(t.items[0].children.map((c) => c.kind), ["tool", "text"]);
  assert.equal(t.items[0].task.status, "started");
});

test("history entries fold like the live events they came from", () => {
  const t = new Timeline();
  const h = [
    { seq: 1, kind: "user", payload: { content: "q" }, at: "2026-01-01T00:00:00Z" },
    { seq: 2, kind: "assistant", payload: { text: "a" }, at: "2026-01-01T00:00:01Z" },
    { seq: 3, kind: "assistant", payload: { text: "b" }, at: "2026-01-01T00:00:02Z" },
    { seq: 4, kind: "error", payload: { message: "boom", error: { kind: "upstream" } }, at: "2026-01-01T00:00:03Z" },
  ];
  for (const e of h) t.push(historyEvent(e), Date.parse(e.at), e.seq);
  assert.deepEqual(t.items.map((i) => [i.kind, i.seq]), [["user", 1], ["text", 2], ["text", 3], ["error", 4]]);
  assert.equal(t.items[3].text, "boom");
  assert.equal(t.items[3].marker, "error");
});

test("filters by kind, tool and text; edits come out as diffs to draw", () => {
  const t = new Timeline();
  t.push({ type: "user_message", content: "fix greet" });
  t.push({ type: "tool_call", id: "e", name: "Edit", input: { file_path: "/w/a.py", old_string: "a", new_string: "b" } });
  t.push({ type: "tool_result", tool_use_id: "e", content: "ok" });
  t.push({ type: "tool_call", id: "w", name: "Write", input: { file_path: "/w/b.py", content: "x" } });
  t.push({ type: "tool_result", tool_use_id: "w", content: "ok" });
  const all = new Set(Object.keys(KINDS));
  assert.equal(t.items.filter((i) => matches(i, { kinds: all, tool: "Edit", text: "" })).length, 1);
  assert.equal(t.items.filter((i) => matches(i, { kinds: new Set(["user"]), tool: "", text: "" })).length, 1);
  assert.equal(t.items.filter((i) => matches(i, { kinds: all, tool: "", text: "b.py" })).length, 1);
  assert.deepEqual(
    edits(t.items).map((e) => [e.path, e.before, e.after, e.tool]),
    [["/w/a.py", "a", "b", "Edit"], ["/w/b.py", "", "x", "Write"]],
  );
});
