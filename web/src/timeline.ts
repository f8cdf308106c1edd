// A conversation's timeline: live events and recorded history folded into items (one per user
// message, thinking block, text, tool call with its result, permission request, retry, error,
// model step, turn result). Pure: no DOM, so a view can fold thousands of events cheaply and
// re-render only what is on screen.

export type Ev = { type: string; [k: string]: any };

export interface Item {
  key: string;
  kind:
    | "user"
    | "thinking"
    | "text"
    | "tool"
    | "permission"
    | "retry"
    | "error"
    | "step"
    | "result"
    | "notice";
  /** Server time (unix ms), when known. */
  ts?: number;
  /** History sequence number of the entry this came from, when known. */
  seq?: number;
  turn?: string;
  text?: string;
  streaming?: boolean;
  content?: any;
  // tools
  id?: string;
  name?: string;
  input?: any;
  partial?: string;
  client?: boolean;
  result?: any;
  isError?: boolean;
  done?: boolean;
  children?: Item[];
  task?: { status?: string; description?: string; summary?: string };
  // permissions
  requestId?: string;
  toolUseId?: string;
  decision?: "allowed" | "denied" | "expired";
  // steps and results
  usage?: any;
  costUsd?: number | null;
  durationMs?: number | null;
  stopReason?: any;
  attempt?: number;
  errorStatus?: number | null;
  /** A key decision point: a tool choice, a permission decision, an error, an interrupt. */
  marker?: string;
}

/** A history entry (`/api/sessions/{id}/history`, `/admin/api/conversations/{id}/events`). */
export interface HistoryEntry {
  seq: number;
  kind: string;
  payload: any;
  at: string;
}

/** A history entry as the event it was recorded from. */
export function historyEvent(h: HistoryEntry): Ev | null {
  const p = h.payload ?? {};
  switch (h.kind) {
    case "user":
      return { type: "user_message", content: p.content };
    case "assistant":
      return { type: "text_delta", text: p.text ?? "", whole: true };
    case "thinking":
      return { type: "thinking_delta", text: p.text ?? "", whole: true };
    case "tool_call":
      return { type: "tool_call", ...p };
    case "tool_result":
      return { type: "tool_result", ...p };
    case "permission_request":
      return { type: "permission_request", ...p };
    case "result":
      return { type: "done", ...p };
    case "error":
      return { type: "error", ...(p.error ?? {}), message: p.message };
    case "retry":
      return { type: "retry", ...p };
    case "step_end":
      return { type: "step_end", ...p };
    default:
      return { type: h.kind, ...p };
  }
}

export function textOf(content: any): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content
      .map((b) => (typeof b === "string" ? b : b?.text ?? (b?.type === "image" ? "[image]" : "")))
      .filter(Boolean)
      .join("\n");
  if (content == null) return "";
  return JSON.stringify(content);
}

function stopLabel(s: any): string {
  if (s == null) return "";
  if (typeof s === "string") return s;
  return Object.keys(s)[0] ?? JSON.stringify(s);
}

/** Folds events into items. Keep one per conversation and push events in order. */
export class Timeline {
  items: Item[] = [];
  /** Bumped on every change, for views. */
  version = 0;
  private tools = new Map<string, Item>();
  private permissions = new Map<string, Item>();
  private open: Item | null = null;
  private n = 0;
  private turn = "";

  private add(item: Omit<Item, "key">, parent?: Item): Item {
    const it = { key: `i${this.n++}`, turn: this.turn, ...item } as Item;
    if (parent) (parent.children ??= []).push(it);
    else this.items.push(it);
    return it;
  }

  /** The tool call a subagent's event belongs to, when it names one. */
  private parentOf(ev: Ev): Item | undefined {
    const p = ev.parent_tool_use_id;
    return p ? this.tools.get(p) : undefined;
  }

  push(ev: Ev, ts?: number, seq?: number, turn?: string): void {
    this.version++;
    if (turn) this.turn = turn;
    const parent = this.parentOf(ev);
    const streamKind = ev.type === "text_delta" ? "text" : ev.type === "thinking_delta" ? "thinking" : null;
    if (streamKind) {
      const o = this.open;
      if (!ev.whole && o && o.kind === streamKind && o.streaming && !parent) {
        o.text += ev.text ?? "";
        return;
      }
      if (this.open) this.open.streaming = false;
      this.open = this.add({ kind: streamKind, text: ev.text ?? "", streaming: !ev.whole, ts, seq }, parent);
      return;
    }
    if (this.open) this.open.streaming = false;
    this.open = null;
    switch (ev.type) {
      case "user_message": {
        const blocks = Array.isArray(ev.content) ? ev.content : null;
        const results = blocks?.filter((b: any) => b?.type === "tool_result") ?? [];
        // A client's answers to its function tools continue those calls.
        for (const r of results) this.toolResult({ type: "tool_result", tool_use_id: r.tool_use_id, content: r.content, is_error: r.is_error, client: true });
        const rest = blocks ? blocks.filter((b: any) => b?.type !== "tool_result") : ev.content;
        if (!blocks || rest.length) this.add({ kind: "user", content: rest, ts, seq }, parent);
        return;
      }
      case "tool_call_start": {
        if (this.tools.has(ev.id)) return;
        const it = this.add({ kind: "tool", id: ev.id, name: ev.name, client: ev.client, partial: "", ts, seq, marker: "tool" }, parent);
        this.tools.set(ev.id, it);
        return;
      }
      case "tool_call_delta": {
        const it = this.tools.get(ev.id);
        if (it && it.input === undefined) it.partial = (it.partial ?? "") + (ev.partial_json ?? "");
        return;
      }
      case "tool_call": {
        let it = this.tools.get(ev.id);
        if (!it) {
          it = this.add({ kind: "tool", id: ev.id, name: ev.name, client: ev.client, ts, seq, marker: "tool" }, parent);
          this.tools.set(ev.id, it);
        }
        it.input = ev.input;
        it.name = ev.name ?? it.name;
        it.partial = undefined;
        if (seq !== undefined) it.seq = seq;
        return;
      }
      case "tool_result":
        this.toolResult(ev);
        return;
      case "permission_request": {
        const it = this.add(
          { kind: "permission", requestId: ev.request_id, name: ev.tool_name, input: ev.input, toolUseId: ev.tool_use_id, ts, seq, marker: "permission" },
          parent,
        );
        this.permissions.set(ev.request_id, it);
        return;
      }
      case "permission_decision":
      case "permission_answered": {
        const it = this.permissions.get(ev.request_id);
        if (it) it.decision = ev.behavior === "allow" ? "allowed" : "denied";
        return;
      }
      case "task_started":
      case "task_progress":
      case "task_notification":
      case "task_updated": {
        const it = ev.tool_use_id ? this.tools.get(ev.tool_use_id) : undefined;
        if (it) it.task = { ...(it.task ?? {}), status: ev.status ?? ev.type.slice(5), description: ev.description ?? it.task?.description, summary: ev.summary ?? it.task?.summary };
        return;
      }
      case "retry":
        this.add({ kind: "retry", attempt: ev.attempt, errorStatus: ev.error_status, text: ev.error, ts, seq, marker: "retry" }, parent);
        return;
      case "step_end":
        this.add({ kind: "step", usage: ev.usage, stopReason: ev.stop_reason, ts, seq }, parent);
        return;
      case "done": {
        const stop = stopLabel(ev.stop_reason);
        this.add(
          { kind: "result", usage: ev.usage, costUsd: ev.cost_usd, durationMs: ev.duration_ms, stopReason: stop, ts, seq, marker: stop === "interrupted" ? "interrupt" : undefined },
          parent,
        );
        // Requests nobody answered are over with the turn.
        for (const p of this.permissions.values()) if (!p.decision) p.decision = "expired";
        return;
      }
      case "error":
        this.add({ kind: "error", text: ev.message ?? ev.kind ?? "error", content: ev, ts, seq, marker: "error" }, parent);
        for (const p of this.permissions.values()) if (!p.decision) p.decision = "expired";
        return;
      case "lagged":
        this.add({ kind: "notice", text: `${ev.skipped} live events were missed (this browser fell behind)`, ts });
        return;
      default:
        return;
    }
  }

  private toolResult(ev: Ev) {
    const it = this.tools.get(ev.tool_use_id);
    if (it) {
      it.result = ev.content;
      it.isError = !!ev.is_error;
      it.done = true;
      if (it.task) it.task.status = it.task.status ?? "completed";
    } else {
      this.add({ kind: "tool", id: ev.tool_use_id, name: "tool", result: ev.content, isError: !!ev.is_error, done: true, client: ev.client });
    }
    // A permission that led to a result was allowed, one that led to an error denied.
    for (const p of this.permissions.values())
      if (p.toolUseId === ev.tool_use_id && !p.decision) p.decision = ev.is_error ? "denied" : "allowed";
  }

  /** Mark a permission request answered from this console. */
  decide(requestId: string, allowed: boolean) {
    const it = this.permissions.get(requestId);
    if (it) {
      it.decision = allowed ? "allowed" : "denied";
      this.version++;
    }
  }

  tool(id: string): Item | undefined {
    return this.tools.get(id);
  }
}

export interface Filter {
  kinds: Set<string>;
  tool: string;
  text: string;
}

/** The kinds a filter can show, as their labels. */
export const KINDS: Record<string, string> = {
  user: "User",
  thinking: "Thinking",
  text: "Text",
  tool: "Tools",
  permission: "Permissions",
  error: "Errors & retries",
  step: "Steps & results",
};

function kindGroup(k: Item["kind"]): string {
  if (k === "retry" || k === "notice") return "error";
  if (k === "result") return "step";
  return k;
}

export function matches(it: Item, f: Filter): boolean {
  if (!f.kinds.has(kindGroup(it.kind))) return false;
  if (f.tool && !(it.kind === "tool" || it.kind === "permission")) return false;
  if (f.tool && it.name !== f.tool) return false;
  if (f.text) {
    const hay = `${it.text ?? ""} ${textOf(it.content)} ${it.name ?? ""} ${it.input ? JSON.stringify(it.input) : ""} ${
      it.result ? textOf(it.result) : ""
    }`.toLowerCase();
    if (!hay.includes(f.text.toLowerCase())) return false;
  }
  return true;
}

/** Edits (Edit, MultiEdit, Write) made by the tool calls of these items, as [path, old, new]. */
export function edits(items: Item[]): { path: string; before: string; after: string; tool: string }[] {
  const out: { path: string; before: string; after: string; tool: string }[] = [];
  const walk = (list: Item[]) => {
    for (const it of list) {
      if (it.kind === "tool" && it.input && !it.isError) {
        const i = it.input;
        if (it.name === "Edit") out.push({ path: i.file_path, before: i.old_string ?? "", after: i.new_string ?? "", tool: "Edit" });
        else if (it.name === "Write") out.push({ path: i.file_path, before: "", after: i.content ?? "", tool: "Write" });
        else if (it.name === "MultiEdit")
          for (const e of i.edits ?? []) out.push({ path: i.file_path, before: e.old_string ?? "", after: e.new_string ?? "", tool: "MultiEdit" });
      }
      if (it.children) walk(it.children);
    }
  };
  walk(items);
  return out;
}
