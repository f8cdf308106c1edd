// A native session: its live timeline, a composer (slash commands with autocomplete, a
// context-usage gauge), interrupt, fork ("branch from here"), resume, delete, export; its code
// changes and its tool calls.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, download, get, missing, post, postStream, send, text } from "../api";
import { useConversation } from "../live";
import { go } from "../router";
import { edits, type Item } from "../timeline";
import { TimelineView } from "./TimelineView";
import { Diff, EditDiff } from "./Diff";
import { ToolCallTable, rowsFromTimeline, type ToolCallRow } from "./ToolCalls";

interface SessionInfo {
  id: string;
  title?: string | null;
  model: string;
  status: string;
  workspace: string;
  workspace_is_temp: boolean;
  agent?: string | null;
  permission_mode?: string | null;
  tools: string[];
  live: boolean;
  created_at: string;
  forked_from?: string | null;
}

interface Command {
  name: string;
  description?: string;
  argument_hint?: string;
  aliases?: string[];
}

/** What headless Claude Code runs, when the gateway cannot list its commands. */
const FALLBACK_COMMANDS: Command[] = [
  { name: "compact", description: "Summarise the conversation to free context", argument_hint: "[instructions]" },
  { name: "context", description: "Show context usage" },
  { name: "cost", description: "Show cost and usage" },
  { name: "clear", description: "Start the conversation afresh" },
  { name: "init", description: "Write CLAUDE.md for this workspace" },
  { name: "review", description: "Review the changes" },
  { name: "help", description: "List the commands" },
  { name: "model", description: "Switch the model", argument_hint: "NAME" },
  { name: "agents", description: "List the agents" },
];

function listOf<T>(v: any): T[] {
  return Array.isArray(v) ? v : Array.isArray(v?.data) ? v.data : Array.isArray(v?.commands) ? v.commands : [];
}

function Gauge({ used, max, estimated }: { used: number; max: number; estimated: boolean }) {
  const pct = max ? Math.min(100, (used / max) * 100) : 0;
  return (
    <div class="gauge" title={`${used} of ${max} tokens${estimated ? " (estimated from the last turn)" : ""}`}>
      <meter min={0} max={max || 1} value={used} low={max * 0.6} high={max * 0.85} optimum={0} aria-label="context used" />
      <span class="muted small">
        context {pct.toFixed(0)}%{estimated ? " (est.)" : ""}
      </span>
    </div>
  );
}

function Composer({ id, busy, onSend, commands }: { id: string; busy: boolean; onSend: (t: string) => void; commands: Command[] }) {
  const [value, setValue] = useState("");
  const [pick, setPick] = useState(0);
  const area = useRef<HTMLTextAreaElement>(null);
  const slash = /^\/(\S*)$/.exec(value);
  // A command is found by its name or one of its aliases (e.g. /cost for the CLI's /usage).
  const options = slash
    ? commands
        .flatMap((c) =>
          c.name.startsWith(slash[1])
            ? [c]
            : (c.aliases ?? []).filter((a) => a.startsWith(slash[1])).slice(0, 1).map((a) => ({ ...c, name: a, description: `/${c.name}: ${c.description ?? ""}` })),
        )
        .slice(0, 8)
    : [];
  useEffect(() => setPick(0), [slash?.[1]]);
  const submit = () => {
    const t = value.trim();
    if (!t) return;
    onSend(t);
    setValue("");
  };
  const onKey = (e: KeyboardEvent) => {
    if (options.length && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      setPick((pick + (e.key === "ArrowDown" ? 1 : options.length - 1)) % options.length);
    } else if (options.length && (e.key === "Tab" || (e.key === "Enter" && value !== `/${options[pick].name}`))) {
      e.preventDefault();
      setValue(`/${options[pick].name} `);
    } else if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      submit();
    } else if (e.key === "Escape") setValue("");
  };
  return (
    <div class="composer">
      {options.length > 0 && (
        <ul class="autocomplete" role="listbox" aria-label="slash commands">
          {options.map((c, i) => (
            <li key={c.name} role="option" aria-selected={i === pick} class={i === pick ? "on" : ""} onMouseDown={(e) => (e.preventDefault(), setValue(`/${c.name} `), area.current?.focus())}>
              <b>/{c.name}</b> {c.argument_hint && <span class="muted">{c.argument_hint}</span>} <span class="muted small">{c.description}</span>
            </li>
          ))}
        </ul>
      )}
      <textarea
        ref={area}
        rows={2}
        placeholder="Message, or / for a command (Enter sends, Shift+Enter for a new line)"
        aria-label={`message to session ${id}`}
        value={value}
        onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)}
        onKeyDown={onKey}
      />
      <button class="primary" onClick={submit} disabled={!value.trim()}>
        {busy ? "Queue" : "Send"}
      </button>
    </div>
  );
}

/** A point of the timeline: a message or the end of a turn. */
function PointSelect({ label, points, value, onChange, now }: { label: string; points: Item[]; value: number; onChange: (i: number) => void; now?: boolean }) {
  return (
    <label>
      {label}{" "}
      <select value={value} onChange={(e) => onChange(+(e.target as HTMLSelectElement).value)}>
        {now && <option value={-1}>now</option>}
        {points.map((p, i) => (
          <option key={p.key} value={i}>
            {i + 1}. {p.kind === "user" ? "message" : "turn end"} {p.ts ? new Date(p.ts).toLocaleTimeString() : ""}
          </option>
        ))}
      </select>
    </label>
  );
}

function Changes({ id, items }: { id: string; items: Item[] }) {
  const [files, setFiles] = useState<any[] | null>(null);
  const [note, setNote] = useState("");
  const points = items.filter((it) => it.kind === "user" || it.kind === "result");
  const [from, setFrom] = useState(0);
  const [to, setTo] = useState(-1);
  useEffect(() => {
    get(`/api/sessions/${id}/changes`)
      .then((r) => setFiles(listOf(r.files ?? r)))
      .catch((e) => {
        setFiles([]);
        setNote(missing(e) ? "This gateway has no /api/sessions/{id}/changes yet: the changes below come from the timeline's edits." : e.message);
      });
  }, [id]);
  const start = points[from] ? items.indexOf(points[from]) : 0;
  const end = to >= 0 && points[to] ? items.indexOf(points[to]) + 1 : items.length;
  const between = edits(items.slice(start, end));
  return (
    <div class="changes">
      <h2>Files changed</h2>
      {note && <p class="muted">{note}</p>}
      {files?.map((f) => (
        <div key={f.path} class="file">
          <div class="path">
            <span class={`badge ${f.status ?? f.change}`}>{f.status ?? f.change}</span> {f.path}
          </div>
          {f.diff ? <Diff patch={f.diff} /> : null}
        </div>
      ))}
      <h2>Compare two points</h2>
      <div class="bar">
        <PointSelect label="from" points={points} value={from} onChange={setFrom} />
        <PointSelect label="to" points={points} value={to} onChange={setTo} now />
      </div>
      {between.map((e, n) => (
        <div key={n} class="file">
          <div class="path">
            <span class="badge">{e.tool}</span> {e.path}
          </div>
          <EditDiff path={e.path} before={e.before} after={e.after} />
        </div>
      ))}
      {!between.length && <p class="muted">No edits between these points.</p>}
    </div>
  );
}

function ToolCalls({ id, items }: { id: string; items: Item[] }) {
  const [rows, setRows] = useState<ToolCallRow[] | null>(null);
  useEffect(() => {
    get(`/api/sessions/${id}/tool-calls`)
      .then((r) => setRows(listOf(r)))
      .catch(() => setRows(null));
  }, [id]);
  return <ToolCallTable rows={rows ?? rowsFromTimeline(items)} />;
}

export function SessionPage({ id }: { id: string }) {
  const [info, setInfo] = useState<SessionInfo | null>(null);
  const [tab, setTab] = useState<"timeline" | "changes" | "tools">("timeline");
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState("");
  const [commands, setCommands] = useState<Command[]>(FALLBACK_COMMANDS);
  const [ctxUse, setCtxUse] = useState<{ used: number; max: number; estimated: boolean } | null>(null);
  const { timeline, version, error } = useConversation(id, (id) => get(`/admin/api/conversations/${id}/events`));
  const refresh = () => get<SessionInfo>(`/api/sessions/${id}`).then(setInfo).catch((e) => setNote(e.message));
  const lastKind = timeline.items.at(-1)?.kind;
  useEffect(() => {
    refresh();
  }, [id, lastKind === "result" || lastKind === "error" ? version : 0]);
  useEffect(() => {
    get(`/api/sessions/${id}/commands`)
      .catch(() => get(`/api/commands`))
      .then((r) => {
        const list = listOf<Command>(r).map((c: any) => ({ ...c, name: String(c.name).replace(/^\//, "") }));
        if (list.length) setCommands(list);
      })
      .catch(() => {});
  }, [id]);
  // The context gauge: the session's real usage when the gateway reports it, else the last
  // turn's input tokens against the window.
  const lastResult = useMemo(() => [...timeline.items].reverse().find((i) => i.kind === "result"), [version]);
  useEffect(() => {
    const estimate = () => {
      const u = lastResult?.usage;
      if (u) setCtxUse({ used: (u.input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + (u.output_tokens ?? 0), max: 200_000, estimated: true });
    };
    // Only a session with a live process is asked: asking one without starts its process and
    // holds the session meanwhile, so a message sent right after opening it would be refused.
    if (!info?.live) return estimate();
    get(`/api/sessions/${id}/context-usage`)
      .then((r) => setCtxUse({ used: r.totalTokens ?? r.total_tokens ?? 0, max: r.maxTokens ?? r.max_tokens ?? 200_000, estimated: false }))
      .catch(estimate);
  }, [id, lastResult?.key, info?.live]);

  const sendMessage = async (content: string) => {
    setBusy(true);
    setNote("");
    try {
      // The events reach the timeline through the live feed; this stream keeps the turn ours.
      await postStream(`/api/sessions/${id}/messages`, { content, stream: true }, (type, data) => {
        if (type === "error") setNote(data?.message ?? "the turn failed");
      });
    } catch (e: any) {
      setNote(e.message);
    } finally {
      setBusy(false);
      refresh();
    }
  };
  const act = async (what: string, fn: () => Promise<any>) => {
    setNote("");
    try {
      await fn();
    } catch (e: any) {
      setNote(missing(e) ? `${what} is not available on this gateway yet.` : `${what}: ${e.message}`);
    }
  };
  const interrupt = () => act("Interrupt", () => post(`/api/sessions/${id}/interrupt`));
  const fork = () => act("Fork", async () => go(`/sessions/${(await post(`/api/sessions/${id}/fork`)).id}`));
  const branch = (it: Item) =>
    act("Branch", async () => {
      try {
        const r = await post(`/api/sessions/${id}/rewind`, { to_seq: it.seq, conversation: true });
        const nid = r?.session?.id ?? r?.fork?.id ?? r?.id;
        if (nid && nid !== id) go(`/sessions/${nid}`);
        else setNote(`Rewound to entry ${it.seq}.`);
      } catch (e) {
        if (!(e instanceof ApiError) || !missing(e)) throw e;
        // Without rewind: a fork of the whole conversation so far.
        const r = await post(`/api/sessions/${id}/fork`);
        go(`/sessions/${r.id}`);
      }
    });
  const resume = () => act("Resume", () => post(`/api/sessions/${id}/resume`).then(refresh));
  const remove = () =>
    act("Delete", async () => {
      if (!confirm("Delete this session? Its process stops and a temporary workspace is removed.")) return;
      await send("DELETE", `/api/sessions/${id}`);
      go("/sessions");
    });
  const exportAs = (format: "markdown" | "json") =>
    act("Export", async () => {
      const body = await text("POST", `/api/sessions/${id}/export?format=${format}`);
      download(`session-${id}.${format === "json" ? "json" : "md"}`, body, format === "json" ? "application/json" : "text/markdown");
    });

  const running = busy || info?.status === "running";
  const ctx = { sessionId: id, decide: (r: string, a: boolean) => timeline.decide(r, a), fork: branch };
  return (
    <section class="page">
      <div class="bar">
        <h1>{info?.title || `Session ${id.slice(0, 8)}`}</h1>
        {info && (
          <span class="muted">
            {info.model} · <span class={`status ${info.status}`}>{running ? "running" : info.status}</span>
            {info.agent ? ` · agent ${info.agent}` : ""} · {info.workspace_is_temp ? "temporary workspace" : info.workspace}
            {info.forked_from ? " · fork" : ""}
          </span>
        )}
        {ctxUse && <Gauge {...ctxUse} />}
      </div>
      <div class="bar actions" role="toolbar" aria-label="session actions">
        <button onClick={interrupt} disabled={!running}>
          Interrupt
        </button>
        <button onClick={fork}>Fork</button>
        <button onClick={resume}>Resume</button>
        <button onClick={() => exportAs("markdown")}>Export Markdown</button>
        <button onClick={() => exportAs("json")}>Export JSON</button>
        <button class="deny" onClick={remove}>
          Delete
        </button>
        <span class="tabs" role="tablist">
          {(["timeline", "changes", "tools"] as const).map((t) => (
            <button key={t} role="tab" aria-selected={tab === t} class={tab === t ? "on" : ""} onClick={() => setTab(t)}>
              {t === "tools" ? "tool calls" : t}
            </button>
          ))}
        </span>
      </div>
      {(note || error) && <div class="error" role="status">{note || error}</div>}
      {tab === "timeline" && <TimelineView timeline={timeline} version={version} ctx={ctx} />}
      {tab === "changes" && <Changes id={id} items={timeline.items} />}
      {tab === "tools" && <ToolCalls id={id} items={timeline.items} />}
      <Composer id={id} busy={running} onSend={sendMessage} commands={commands} />
    </section>
  );
}
