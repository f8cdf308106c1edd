// The live home: every conversation of every source (native sessions and the OpenAI and
// Anthropic APIs' conversations), updating as their events arrive, and the newest events.
import { useEffect, useRef, useState } from "preact/hooks";
import { get } from "../api";
import { recentItems, subscribe } from "../feed";
import { href } from "../router";
import { ago, dur, money, tokens } from "../format";

export interface Row {
  id: string;
  source: string;
  model: string;
  key?: string | null;
  user?: string | null;
  status: string;
  title?: string | null;
  started_at: number;
  updated_at: number;
  turns: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  duration_ms: number;
  tool_calls: number;
  live: boolean;
}

export function conversationHref(r: { id: string; source: string }) {
  return href(r.source === "native" ? `/sessions/${r.id}` : `/c/${r.id}`);
}

export function Home() {
  const [rows, setRows] = useState<Row[]>([]);
  const [source, setSource] = useState("");
  const [error, setError] = useState("");
  const timer = useRef<number | undefined>();
  const known = useRef(new Set<string>());
  const load = () =>
    get<{ data: Row[] }>(`/admin/api/conversations?limit=200${source ? `&source=${source}` : ""}`)
      .then((r) => {
        setRows(r.data);
        setError("");
      })
      .catch((e) => setError(e.message));
  // At most one reload every 250 ms, however many events arrive (a streaming turn sends
  // dozens a second; postponing the reload for each would hold it back until the stream ends).
  const reload = () => {
    if (timer.current !== undefined) return;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      load();
    }, 250);
  };
  useEffect(() => {
    load();
    const unsub = subscribe((item) => {
      const t = item.event.type;
      if (!known.current.has(item.conversation_id)) return reload();
      setRows((rs) => {
        const i = rs.findIndex((r) => r.id === item.conversation_id);
        if (i < 0) return rs;
        const r = { ...rs[i], updated_at: item.ts };
        if (t === "user_message" || t === "tool_result") r.status = "running";
        else if (t === "permission_request") r.status = "awaiting_permission";
        else if (t === "done" || t === "error") {
          r.status = t === "error" ? "error" : "idle";
          // Its tokens, cost and duration: from the gateway.
          setTimeout(reload);
        } else return rs;
        r.live = r.status !== "idle" && r.status !== "error";
        const next = rs.slice();
        next.splice(i, 1);
        return [r, ...next];
      });
    });
    return () => {
      unsub();
      clearTimeout(timer.current);
      timer.current = undefined;
    };
  }, [source]);
  known.current = new Set(rows.map((r) => r.id));

  const live = rows.filter((r) => r.live).length;
  return (
    <section>
      <div class="bar">
        <h1>Live</h1>
        <span class="muted">
          {live} running · {rows.length} recent
        </span>
        <select aria-label="filter by source" value={source} onChange={(e) => setSource((e.target as HTMLSelectElement).value)}>
          <option value="">every source</option>
          <option value="native">native</option>
          <option value="openai">openai</option>
          <option value="anthropic">anthropic</option>
        </select>
      </div>
      {error && <div class="error">{error}</div>}
      <div class="grid2">
        <table class="list" data-testid="conversations">
          <thead>
            <tr>
              <th>Conversation</th>
              <th>Status</th>
              <th>Model</th>
              <th class="num">Tokens in/out</th>
              <th class="num">Cost</th>
              <th class="num">Time</th>
              <th>Key · user</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-id={r.id} class={r.live ? "live" : ""}>
                <td>
                  <span class={`src ${r.source}`}>{r.source}</span>{" "}
                  <a href={conversationHref(r)}>{r.title || r.id.slice(0, 8)}</a>
                  <div class="muted small">{ago(r.updated_at)}</div>
                </td>
                <td>
                  <span class={`status ${r.status}`}>{r.status}</span>
                </td>
                <td>{r.model}</td>
                <td class="num">
                  {tokens(r.input_tokens)} / {tokens(r.output_tokens)}
                </td>
                <td class="num">{money(r.cost_usd)}</td>
                <td class="num">{dur(r.duration_ms)}</td>
                <td class="small">
                  {r.key ?? "—"}
                  {r.user ? ` · ${r.user}` : ""}
                </td>
              </tr>
            ))}
            {!rows.length && (
              <tr>
                <td colSpan={7} class="muted">
                  No conversations yet. Send a request to /v1/chat/completions, /v1/messages or create a session.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        <aside class="ticker" aria-label="newest events">
          <h2>Newest events</h2>
          <ol>
            {recentItems.value.slice(0, 30).map((it) => (
              <li key={it.id}>
                <time>{new Date(it.ts).toLocaleTimeString()}</time> <span class={`src ${it.source}`}>{it.source}</span>{" "}
                <a href={conversationHref({ id: it.conversation_id, source: it.source })}>{it.event.type}</a>
                {it.event.name ? ` ${it.event.name}` : it.event.tool_name ? ` ${it.event.tool_name}` : ""}
              </li>
            ))}
          </ol>
        </aside>
      </div>
    </section>
  );
}
