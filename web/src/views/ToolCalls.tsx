// A tool-call history table (`GET /api/sessions/{id}/tool-calls`, or a timeline's tool calls).
import type { Item } from "../timeline";
import { ago, dur } from "../format";

export interface ToolCallRow {
  tool: string;
  kind?: string;
  is_error?: boolean;
  outcome?: string;
  status?: string;
  decision?: string;
  permission?: { decision?: string };
  duration_ms?: number;
  started_at?: string | number;
  created_at?: string | number;
}

/** The same rows from a timeline, when the gateway has no tool-call history. */
export function rowsFromTimeline(items: Item[]): ToolCallRow[] {
  return items
    .filter((i) => i.kind === "tool")
    .map((t) => ({
      tool: t.name ?? "tool",
      kind: t.client ? "client" : t.name?.startsWith("mcp__") ? "mcp" : "built-in",
      status: !t.done ? "running" : t.isError ? "error" : "ok",
      is_error: t.isError,
      created_at: t.ts,
    }));
}

export function ToolCallTable({ rows }: { rows: ToolCallRow[] }) {
  return (
    <table class="list" data-testid="tool-calls">
      <thead>
        <tr>
          <th>Tool</th>
          <th>Kind</th>
          <th>Status</th>
          <th>Decision</th>
          <th class="num">Duration</th>
          <th>When</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((c, n) => (
          <tr key={n}>
            <td>{c.tool}</td>
            <td>{c.kind}</td>
            <td>{c.is_error ? <span class="badge err">error</span> : <span class="badge ok">{c.outcome ?? c.status ?? "ok"}</span>}</td>
            <td>{c.permission?.decision ?? c.decision ?? "—"}</td>
            <td class="num">{dur(c.duration_ms)}</td>
            <td>{ago(c.started_at ?? c.created_at)}</td>
          </tr>
        ))}
        {!rows.length && (
          <tr>
            <td colSpan={6} class="muted">
              No tool calls.
            </td>
          </tr>
        )}
      </tbody>
    </table>
  );
}
