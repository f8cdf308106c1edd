// Native sessions: list (filter by status, model and key; search by title) and create (model,
// agent, workspace, tools, permission mode, system prompt).
import { useEffect, useState } from "preact/hooks";
import { get, post } from "../api";
import { go, href } from "../router";
import { ago } from "../format";

const MODES = ["default", "acceptEdits", "plan", "dontAsk", "auto"];

function Create({ onDone }: { onDone: () => void }) {
  const [models, setModels] = useState<string[]>(["sonnet"]);
  const [agents, setAgents] = useState<string[]>([]);
  const [tools, setTools] = useState<{ name: string; allowed: boolean }[]>([]);
  const [f, setF] = useState({ model: "sonnet", agent: "", workspace: "", permission_mode: "default", system_prompt: "", title: "", tools: [] as string[] });
  const [err, setErr] = useState("");
  useEffect(() => {
    get("/v1/models").then((r) => setModels(r.data.map((m: any) => m.id))).catch(() => {});
    get("/api/agents").then((r) => setAgents((r.data ?? r).map((a: any) => a.name))).catch(() => {});
    get("/api/tools").then((r) => setTools((r.data ?? r).map((t: any) => ({ name: t.name, allowed: t.allowed !== false })))).catch(() => {});
  }, []);
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setErr("");
    const body: any = { model: f.model, permission_mode: f.permission_mode };
    if (f.agent) body.agent = f.agent;
    if (f.workspace) body.workspace = f.workspace;
    if (f.system_prompt) body.system_prompt = f.system_prompt;
    if (f.title) body.title = f.title;
    if (f.tools.length) body.tools = f.tools;
    try {
      const s = await post("/api/sessions", body);
      onDone();
      go(`/sessions/${s.id}`);
    } catch (x: any) {
      setErr(x.body?.error?.param ? `${x.body.error.param}: ${x.message}` : x.message);
    }
  };
  return (
    <form class="card create" onSubmit={submit} aria-label="create a session">
      <h2>New session</h2>
      <label>
        Model
        <select value={f.model} onChange={set("model")}>
          {models.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      <label>
        Agent
        <input list="agents" value={f.agent} onInput={set("agent")} placeholder="none" />
        <datalist id="agents">
          {agents.map((a) => (
            <option key={a} value={a} />
          ))}
        </datalist>
      </label>
      <label>
        Workspace
        <input value={f.workspace} onInput={set("workspace")} placeholder="temporary (or a directory inside the workspace roots)" />
      </label>
      <label>
        Permission mode
        <select value={f.permission_mode} onChange={set("permission_mode")}>
          {MODES.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      <fieldset>
        <legend>Built-in tools</legend>
        {tools.length ? (
          tools.map((t) => (
            <label key={t.name} class="row">
              <input
                type="checkbox"
                disabled={!t.allowed}
                checked={f.tools.includes(t.name)}
                onChange={(e) => setF({ ...f, tools: (e.target as HTMLInputElement).checked ? [...f.tools, t.name] : f.tools.filter((x) => x !== t.name) })}
              />
              {t.name}
            </label>
          ))
        ) : (
          <input
            placeholder="comma-separated, e.g. Read, Edit, Bash"
            aria-label="built-in tools"
            onInput={(e) => setF({ ...f, tools: (e.target as HTMLInputElement).value.split(",").map((s) => s.trim()).filter(Boolean) })}
          />
        )}
      </fieldset>
      <label>
        System prompt
        <textarea rows={3} value={f.system_prompt} onInput={set("system_prompt")} />
      </label>
      <label>
        Title
        <input value={f.title} onInput={set("title")} />
      </label>
      <button class="primary" type="submit">
        Create
      </button>
      {err && <div class="error" role="alert">{err}</div>}
    </form>
  );
}

export function Sessions() {
  const [rows, setRows] = useState<any[]>([]);
  const [keys, setKeys] = useState<Record<string, string>>({});
  const [status, setStatus] = useState("");
  const [model, setModel] = useState("");
  const [key, setKey] = useState("");
  const [q, setQ] = useState("");
  const [creating, setCreating] = useState(false);
  const [err, setErr] = useState("");
  const load = () => {
    const qs = new URLSearchParams({ limit: "200" });
    if (status) qs.set("status", status);
    if (model) qs.set("model", model);
    get(`/api/sessions?${qs}`)
      .then((r) => setRows(r.data))
      .catch((e) => setErr(e.message));
    // Which key drives each session comes from the live overview.
    get(`/admin/api/conversations?source=native&limit=500`)
      .then((r) => setKeys(Object.fromEntries(r.data.filter((c: any) => c.key).map((c: any) => [c.id, c.key]))))
      .catch(() => {});
  };
  useEffect(load, [status, model]);
  const shown = rows.filter((r) => (!q || (r.title ?? r.id).toLowerCase().includes(q.toLowerCase())) && (!key || keys[r.id] === key));
  const models = [...new Set(rows.map((r) => r.model))];
  return (
    <section>
      <div class="bar">
        <h1>Sessions</h1>
        <input type="search" placeholder="Search titles" aria-label="search sessions by title" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
        <select aria-label="filter by status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
          <option value="">any status</option>
          {["idle", "running", "awaiting_tools", "error"].map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <select aria-label="filter by model" value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)}>
          <option value="">any model</option>
          {models.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
        <select aria-label="filter by key" value={key} onChange={(e) => setKey((e.target as HTMLSelectElement).value)}>
          <option value="">any key</option>
          {[...new Set(Object.values(keys))].map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
        <button class="primary" onClick={() => setCreating(!creating)} aria-expanded={creating}>
          New session
        </button>
      </div>
      {err && <div class="error">{err}</div>}
      {creating && <Create onDone={() => setCreating(false)} />}
      <table class="list" data-testid="sessions">
        <thead>
          <tr>
            <th>Title</th>
            <th>Status</th>
            <th>Model</th>
            <th>Key</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.id}>
              <td>
                <a href={href(`/sessions/${r.id}`)}>{r.title || r.id.slice(0, 8)}</a>
                {r.forked_from && <span class="muted small"> fork</span>}
              </td>
              <td>
                <span class={`status ${r.status}`}>{r.status}</span>
                {r.live && <span class="badge run">live</span>}
              </td>
              <td>{r.model}</td>
              <td class="small">{keys[r.id] ?? "—"}</td>
              <td>{ago(r.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
