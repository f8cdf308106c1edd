// The machine's own Claude Code sessions (when the gateway is given a Claude Code config
// dir): list, view read-only in the same timeline, continue as a native session.
import { useEffect, useState } from "preact/hooks";
import { get, post } from "../api";
import { go, href } from "../router";
import { ago } from "../format";
import { useConversation } from "../live";
import { TimelineView } from "./TimelineView";

export function Machine() {
  const [rows, setRows] = useState<any[] | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    get("/api/claude-sessions")
      .then((r) => setRows(r.data))
      .catch((e) => setErr(e.status === 404 ? "Not enabled: start the gateway with claude_sessions_dir (CCGW_CLAUDE_SESSIONS_DIR) naming a Claude Code config dir, e.g. ~/.claude." : e.message));
  }, []);
  return (
    <section>
      <div class="bar">
        <h1>This machine's Claude Code sessions</h1>
      </div>
      {err && <p class="muted">{err}</p>}
      {rows && (
        <table class="list" data-testid="machine-sessions">
          <thead>
            <tr>
              <th>Session</th>
              <th>Directory</th>
              <th>Changed</th>
              <th class="num">Size</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>
                  <a href={href(`/machine/${r.id}`)}>{r.title || r.id}</a>
                </td>
                <td class="small">
                  {r.cwd}
                  {!r.continuable && <span class="muted"> (outside the workspace roots)</span>}
                </td>
                <td>{ago(r.updated_at)}</td>
                <td class="num">{Math.ceil(r.size_bytes / 1024)} KB</td>
              </tr>
            ))}
            {!rows.length && (
              <tr>
                <td colSpan={4} class="muted">
                  No sessions found.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function MachineSession({ id }: { id: string }) {
  const [info, setInfo] = useState<any>(null);
  const [err, setErr] = useState("");
  const { timeline, version, error } = useConversation(id, (id) =>
    get(`/api/claude-sessions/${id}`).then((r) => {
      setInfo(r.session);
      return r.history;
    }),
  );
  const resume = async () => {
    try {
      const s = await post(`/api/claude-sessions/${id}/continue`, {});
      go(`/sessions/${s.id}`);
    } catch (e: any) {
      setErr(e.message);
    }
  };
  return (
    <section class="page">
      <div class="bar">
        <h1>{info?.title ?? id}</h1>
        <span class="muted">read-only · {info?.cwd}</span>
        <button class="primary" onClick={resume} disabled={info && !info.continuable} title={info && !info.continuable ? "its directory is outside the workspace roots" : ""}>
          Continue as a session
        </button>
      </div>
      {(err || error) && <div class="error">{err || error}</div>}
      <TimelineView timeline={timeline} version={version} ctx={{ decide: () => {} }} />
    </section>
  );
}
