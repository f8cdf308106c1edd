// One renderer per kind of timeline item, and per tool: Bash (command and output), Read (path
// and excerpt), Edit/MultiEdit/Write (a highlighted diff), Glob/Grep (the results), TodoWrite
// (a checklist), Task/Agent (a nested container with the subagent's own events), the client's
// function tools (arguments and the client's result), MCP tools, and anything else as JSON.
import { useState } from "preact/hooks";
import type { Item } from "../timeline";
import { textOf } from "../timeline";
import { highlight, langFor } from "../highlight";
import { EditDiff } from "./Diff";
import { post } from "../api";

export function Code({ code, lang, max }: { code: string; lang?: string; max?: number }) {
  const lines = code.split("\n");
  const cut = max && lines.length > max;
  const shown = cut ? lines.slice(0, max).join("\n") : code;
  return (
    <pre class="code">
      <code class="hljs" dangerouslySetInnerHTML={{ __html: highlight(shown, lang) }} />
      {cut && <div class="muted">… {lines.length - max!} more lines</div>}
    </pre>
  );
}

function Json({ value }: { value: any }) {
  return <Code code={JSON.stringify(value, null, 2) ?? "null"} lang="json" max={60} />;
}

function resultText(r: any): string {
  return textOf(r);
}

function Status({ it }: { it: Item }) {
  if (!it.done) return <span class="badge run">running</span>;
  return it.isError ? <span class="badge err">error</span> : <span class="badge ok">ok</span>;
}

function Bash({ it }: { it: Item }) {
  return (
    <>
      <Code code={`$ ${it.input?.command ?? it.partial ?? ""}`} lang="bash" />
      {it.input?.description && <div class="muted">{it.input.description}</div>}
      {it.done && <pre class={`out ${it.isError ? "err" : ""}`}>{resultText(it.result) || "(no output)"}</pre>}
    </>
  );
}

function Read({ it }: { it: Item }) {
  const path = it.input?.file_path ?? "";
  // The CLI numbers Read's lines ("   1→text"); show the text.
  const text = resultText(it.result).replace(/^ *\d+[→\t]/gm, "");
  return (
    <>
      <div class="path">{path}{it.input?.offset ? ` from line ${it.input.offset}` : ""}</div>
      {it.done && (it.isError ? <pre class="out err">{resultText(it.result)}</pre> : <Code code={text} lang={langFor(path)} max={40} />)}
    </>
  );
}

function Edits({ it }: { it: Item }) {
  const i = it.input ?? {};
  const path = i.file_path ?? "";
  const list =
    it.name === "Write"
      ? [{ before: "", after: i.content ?? "" }]
      : it.name === "MultiEdit"
        ? (i.edits ?? []).map((e: any) => ({ before: e.old_string ?? "", after: e.new_string ?? "" }))
        : [{ before: i.old_string ?? "", after: i.new_string ?? "" }];
  return (
    <>
      <div class="path">{path}{i.replace_all ? " (every occurrence)" : ""}</div>
      {it.input ? list.map((e: { before: string; after: string }, n: number) => <EditDiff key={n} path={path} before={e.before} after={e.after} />) : <pre class="out">{it.partial}</pre>}
      {it.done && it.isError && <pre class="out err">{resultText(it.result)}</pre>}
    </>
  );
}

function Search({ it }: { it: Item }) {
  const lines = resultText(it.result).split("\n").filter(Boolean);
  return (
    <>
      <div class="path">
        <code>{it.input?.pattern}</code>
        {it.input?.path ? ` in ${it.input.path}` : ""}
        {it.input?.glob ? ` (${it.input.glob})` : ""}
      </div>
      {it.done && (
        <ul class="results">
          {lines.slice(0, 50).map((l, n) => (
            <li key={n}>{l}</li>
          ))}
          {lines.length > 50 && <li class="muted">… {lines.length - 50} more</li>}
          {!lines.length && <li class="muted">no matches</li>}
        </ul>
      )}
    </>
  );
}

function Todos({ it }: { it: Item }) {
  const todos: any[] = it.input?.todos ?? [];
  return (
    <ul class="todos" role="list">
      {todos.map((t, n) => (
        <li key={n} class={t.status}>
          <input type="checkbox" checked={t.status === "completed"} disabled aria-label={t.status} />
          <span>{t.status === "in_progress" ? t.activeForm ?? t.content : t.content}</span>
          {t.status === "in_progress" && <span class="badge run">in progress</span>}
        </li>
      ))}
    </ul>
  );
}

function Task({ it, ctx }: { it: Item; ctx: Ctx }) {
  const i = it.input ?? {};
  return (
    <div class="task">
      <div>
        <b>{i.subagent_type ?? "subagent"}</b> {i.description}
        {it.task?.status && <span class="badge">{it.task.status}</span>}
      </div>
      {i.prompt && <details><summary>prompt</summary><pre class="out">{i.prompt}</pre></details>}
      <div class="nested" aria-label="subagent events">
        {(it.children ?? []).map((c) => (
          <ItemView key={c.key} it={c} ctx={ctx} />
        ))}
        {!it.children?.length && <div class="muted">{it.done ? "(its events were not reported)" : "working…"}</div>}
      </div>
      {it.done && <pre class={`out ${it.isError ? "err" : ""}`}>{resultText(it.result)}</pre>}
    </div>
  );
}

function Generic({ it, label }: { it: Item; label?: string }) {
  return (
    <>
      {label && <div class="muted">{label}</div>}
      {it.input !== undefined ? <Json value={it.input} /> : it.partial ? <pre class="out">{it.partial}</pre> : null}
      {it.done && (
        <>
          <div class="muted">{it.client ? "the client's result" : "result"}</div>
          <pre class={`out ${it.isError ? "err" : ""}`}>{resultText(it.result)}</pre>
        </>
      )}
    </>
  );
}

function toolBody(it: Item, ctx: Ctx) {
  const n = it.name ?? "";
  if (n === "Bash") return <Bash it={it} />;
  if (n === "Read") return <Read it={it} />;
  if (n === "Edit" || n === "MultiEdit" || n === "Write") return <Edits it={it} />;
  if (n === "Glob" || n === "Grep") return <Search it={it} />;
  if (n === "TodoWrite") return <Todos it={it} />;
  if (n === "Task" || n === "Agent") return <Task it={it} ctx={ctx} />;
  if (n.startsWith("mcp__")) {
    const [, server, tool] = n.split("__");
    return <Generic it={it} label={`MCP server ${server}, tool ${tool}`} />;
  }
  return <Generic it={it} label={it.client ? "client function tool: arguments" : undefined} />;
}

function Tool({ it, ctx }: { it: Item; ctx: Ctx }) {
  const n = it.name ?? "tool";
  const kind = it.client ? "client" : n.startsWith("mcp__") ? "mcp" : "builtin";
  return (
    <div class={`tool tool-${kind}`} data-tool={n}>
      <div class="head">
        <span class="marker" title="tool choice">◆</span>
        <b>{n}</b> <span class="muted">{kind === "client" ? "client function" : kind === "mcp" ? "MCP" : ""}</span>
        <Status it={it} />
      </div>
      {toolBody(it, ctx)}
    </div>
  );
}

function Permission({ it, ctx }: { it: Item; ctx: Ctx }) {
  const [edit, setEdit] = useState(false);
  const [input, setInput] = useState(() => JSON.stringify(it.input ?? {}, null, 2));
  const [msg, setMsg] = useState("");
  const [err, setErr] = useState("");
  const [busy, setBusy] = useState(false);
  const answer = async (allow: boolean) => {
    setErr("");
    let body: any;
    if (allow) {
      body = { behavior: "allow" };
      if (edit) {
        try {
          body.updated_input = JSON.parse(input);
        } catch (e) {
          setErr(`The input is not JSON: ${e}`);
          return;
        }
      } else body.updated_input = it.input;
    } else body = { behavior: "deny", message: msg || "Denied from the console." };
    setBusy(true);
    try {
      await post(`/api/sessions/${ctx.sessionId}/permissions/${it.requestId}`, body);
      ctx.decide(it.requestId!, allow);
    } catch (e: any) {
      setErr(e.message);
    } finally {
      setBusy(false);
    }
  };
  const open = !it.decision && ctx.sessionId;
  return (
    <div class={`perm ${it.decision ?? "pending"}`} role="group" aria-label={`permission request for ${it.name}`}>
      <div class="head">
        <span class="marker" title="permission decision">⚑</span>
        <b>Permission:</b> {it.name}
        {it.decision && <span class={`badge ${it.decision === "allowed" ? "ok" : "err"}`}>{it.decision}</span>}
      </div>
      {edit && open ? (
        <textarea class="json" rows={6} value={input} onInput={(e) => setInput((e.target as HTMLTextAreaElement).value)} aria-label="tool input to allow" />
      ) : (
        <Json value={it.input} />
      )}
      {open && (
        <div class="actions">
          <button class="allow" disabled={busy} onClick={() => answer(true)}>
            {edit ? "Allow with this input" : "Allow"}
          </button>
          <button disabled={busy} onClick={() => setEdit(!edit)}>{edit ? "Cancel edit" : "Edit input"}</button>
          <input placeholder="reason (optional)" value={msg} onInput={(e) => setMsg((e.target as HTMLInputElement).value)} aria-label="reason to deny" />
          <button class="deny" disabled={busy} onClick={() => answer(false)}>
            Deny
          </button>
        </div>
      )}
      {err && <div class="error">{err}</div>}
    </div>
  );
}

function usageLine(u: any): string {
  if (!u) return "";
  const inTok = (u.input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
  return `${inTok} in · ${u.output_tokens ?? 0} out${u.cache_read_input_tokens ? ` (${u.cache_read_input_tokens} cached)` : ""}`;
}

export interface Ctx {
  /** The native session, when permissions can be answered and forks made. */
  sessionId?: string;
  decide: (requestId: string, allowed: boolean) => void;
  /** "Branch from here". */
  fork?: (it: Item) => void;
}

export function ItemView({ it, ctx }: { it: Item; ctx: Ctx }) {
  const time = it.ts ? new Date(it.ts).toLocaleTimeString() : "";
  let body;
  switch (it.kind) {
    case "user":
      body = (
        <div class="user">
          <div class="who">User</div>
          <div class="msg">{textOf(it.content)}</div>
        </div>
      );
      break;
    case "thinking":
      body = (
        <details class="thinking" open={it.streaming}>
          <summary>Thinking{it.streaming ? "…" : ""}</summary>
          <div class="msg">{it.text}</div>
        </details>
      );
      break;
    case "text":
      body = <div class="text msg">{it.text}</div>;
      break;
    case "tool":
      body = <Tool it={it} ctx={ctx} />;
      break;
    case "permission":
      body = <Permission it={it} ctx={ctx} />;
      break;
    case "retry":
      body = (
        <div class="retry">
          <span class="marker">↻</span> Retry {it.attempt}: upstream {it.errorStatus ?? "error"} {it.text}
        </div>
      );
      break;
    case "error":
      body = (
        <div class="error" role="alert">
          <span class="marker">✖</span> {it.text}
        </div>
      );
      break;
    case "step":
      body = <div class="step muted">model step: {String(it.stopReason ?? "")} · {usageLine(it.usage)}</div>;
      break;
    case "result":
      body = (
        <div class={`result ${it.marker === "interrupt" ? "interrupted" : ""}`}>
          {it.marker === "interrupt" && <span class="marker">⏹ interrupted</span>} turn {it.stopReason} · {usageLine(it.usage)}
          {it.costUsd != null && ` · $${Number(it.costUsd).toFixed(4)}`}
          {it.durationMs != null && ` · ${(it.durationMs / 1000).toFixed(2)} s`}
        </div>
      );
      break;
    case "notice":
      body = <div class="notice">{it.text}</div>;
      break;
  }
  return (
    <div class={`item k-${it.kind}`} data-kind={it.kind} data-key={it.key}>
      <div class="gutter">
        <time>{time}</time>
        {ctx.fork && it.seq !== undefined && (it.kind === "result" || it.kind === "text") && (
          <button class="link" title="branch from here" onClick={() => ctx.fork!(it)}>
            branch
          </button>
        )}
      </div>
      <div class="body">{body}</div>
    </div>
  );
}
