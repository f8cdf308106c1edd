// Agents (list, create, edit), the tools with the deployment's policy, and tool-call history.
import { useEffect, useState } from "preact/hooks";
import { get, missing, post, send } from "../api";
import { ToolCallTable } from "./ToolCalls";

function listOf(v: any): any[] {
  return Array.isArray(v) ? v : Array.isArray(v?.data) ? v.data : [];
}

const EMPTY = { name: "", description: "", prompt: "", tools: "", model: "" };

function AgentForm({ initial, onSaved, editing }: { initial: typeof EMPTY; onSaved: () => void; editing: boolean }) {
  const [f, setF] = useState(initial);
  const [err, setErr] = useState("");
  const set = (k: keyof typeof EMPTY) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const save = async (e: Event) => {
    e.preventDefault();
    const body: any = { name: f.name, description: f.description, prompt: f.prompt };
    if (f.tools.trim()) body.tools = f.tools.split(",").map((s) => s.trim()).filter(Boolean);
    if (f.model.trim()) body.model = f.model.trim();
    try {
      if (editing) await send("PUT", `/api/agents/${encodeURIComponent(f.name)}/config`, body);
      else await post("/api/agents", body);
      setErr("");
      onSaved();
    } catch (x: any) {
      setErr(missing(x) ? "This gateway has no /api/agents yet." : x.message);
    }
  };
  return (
    <form class="card" onSubmit={save} aria-label={editing ? `edit agent ${f.name}` : "create an agent"}>
      <h2>{editing ? `Edit ${f.name}` : "New agent"}</h2>
      <label>
        Name <input value={f.name} onInput={set("name")} pattern="[a-z0-9-]{1,64}" required disabled={editing} />
      </label>
      <label>
        Description <input value={f.description} onInput={set("description")} required />
      </label>
      <label>
        Prompt <textarea rows={4} value={f.prompt} onInput={set("prompt")} required />
      </label>
      <label>
        Tools <input value={f.tools} onInput={set("tools")} placeholder="comma-separated; empty: inherit" />
      </label>
      <label>
        Model <input value={f.model} onInput={set("model")} placeholder="inherit" />
      </label>
      <button class="primary" type="submit">
        Save
      </button>
      {err && <div class="error">{err}</div>}
    </form>
  );
}

export function Agents() {
  const [agents, setAgents] = useState<any[] | null>(null);
  const [tools, setTools] = useState<any[] | null>(null);
  const [notes, setNotes] = useState<string[]>([]);
  const [editing, setEditing] = useState<typeof EMPTY | null>(null);
  const [sessions, setSessions] = useState<any[]>([]);
  const [sid, setSid] = useState("");
  const [calls, setCalls] = useState<any[] | null>(null);
  const note = (n: string) => setNotes((ns) => [...ns.filter((x) => x !== n), n]);
  const load = () => {
    get("/api/agents")
      .then((r) => setAgents(listOf(r)))
      .catch((e) => (setAgents([]), note(missing(e) ? "Agents: this gateway has no /api/agents yet." : e.message)));
    get("/api/tools")
      .then((r) => setTools(listOf(r)))
      .catch((e) => (setTools([]), note(missing(e) ? "Tools: this gateway has no /api/tools yet." : e.message)));
    get("/api/sessions?limit=100").then((r) => setSessions(r.data)).catch(() => {});
  };
  useEffect(load, []);
  useEffect(() => {
    if (!sid) return setCalls(null);
    get(`/api/sessions/${sid}/tool-calls`)
      .then((r) => setCalls(listOf(r)))
      .catch((e) => (setCalls([]), note(missing(e) ? "Tool calls: this gateway has no /api/sessions/{id}/tool-calls yet." : e.message)));
  }, [sid]);
  const edit = async (a: any) => {
    let cfg = a;
    try {
      cfg = await get(`/api/agents/${encodeURIComponent(a.name)}/config`);
    } catch {
      /* the listing has it */
    }
    setEditing({ name: a.name, description: cfg.description ?? "", prompt: cfg.prompt ?? "", tools: (cfg.tools ?? []).join(", "), model: cfg.model ?? "" });
  };
  const remove = async (name: string) => {
    if (!confirm(`Delete the agent ${name}?`)) return;
    await send("DELETE", `/api/agents/${encodeURIComponent(name)}`).catch((e) => note(e.message));
    load();
  };
  return (
    <section>
      <div class="bar">
        <h1>Agents &amp; tools</h1>
      </div>
      {notes.map((n) => (
        <p key={n} class="muted">
          {n}
        </p>
      ))}
      <div class="grid2">
        <div>
          <h2>Agents</h2>
          <table class="list" data-testid="agents">
            <thead>
              <tr>
                <th>Name</th>
                <th>Source</th>
                <th>Model</th>
                <th>Tools</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {agents?.map((a) => (
                <tr key={a.name}>
                  <td>
                    <b>{a.name}</b>
                    <div class="muted small">{a.description}</div>
                  </td>
                  <td>{a.source}</td>
                  <td>{a.model ?? "inherit"}</td>
                  <td class="small">{(a.tools ?? []).join(", ") || "all"}</td>
                  <td>
                    {a.source === "custom" && (
                      <>
                        <button onClick={() => edit(a)}>Edit</button> <button class="deny" onClick={() => remove(a.name)}>Delete</button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <AgentForm key={editing?.name ?? "new"} initial={editing ?? EMPTY} editing={!!editing} onSaved={() => (setEditing(null), load())} />
        </div>
        <div>
          <h2>Tools</h2>
          <table class="list" data-testid="tools">
            <thead>
              <tr>
                <th>Tool</th>
                <th>Policy</th>
              </tr>
            </thead>
            <tbody>
              {tools?.map((t) => (
                <tr key={t.name}>
                  <td>
                    <b>{t.name}</b>
                    <div class="muted small">{t.description}</div>
                  </td>
                  <td>{t.allowed ? <span class="badge ok">allowed</span> : <span class="badge">not allowed</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Tool-call history</h2>
          <select aria-label="session" value={sid} onChange={(e) => setSid((e.target as HTMLSelectElement).value)}>
            <option value="">choose a session</option>
            {sessions.map((s) => (
              <option key={s.id} value={s.id}>
                {s.title || s.id.slice(0, 8)}
              </option>
            ))}
          </select>
          {calls && <ToolCallTable rows={calls} />}
        </div>
      </div>
    </section>
  );
}
