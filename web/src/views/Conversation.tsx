// The timeline of any conversation (the compatible APIs' ones included), live.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api";
import { useConversation } from "../live";
import { TimelineView } from "./TimelineView";
import type { Row } from "./Home";
import { dur, money, tokens } from "../format";

export function ConversationPage({ id }: { id: string }) {
  const [info, setInfo] = useState<Row | null>(null);
  const { timeline, version, error } = useConversation(id, (id) =>
    get(`/admin/api/conversations/${id}/events`),
  );
  useEffect(() => {
    get<Row>(`/admin/api/conversations/${id}`).then(setInfo).catch(() => {});
  }, [id, version > 0 && timeline.items.at(-1)?.kind === "result"]);
  return (
    <section class="page">
      <div class="bar">
        <h1>{info?.title ?? id}</h1>
        {info && (
          <span class="muted">
            <span class={`src ${info.source}`}>{info.source}</span> {info.model} · <span class={`status ${info.status}`}>{info.status}</span> ·{" "}
            {tokens(info.input_tokens)}/{tokens(info.output_tokens)} tokens · {money(info.cost_usd)} · {dur(info.duration_ms)}
            {info.key ? ` · ${info.key}` : ""}
            {info.user ? ` · user ${info.user}` : ""}
          </span>
        )}
      </div>
      {error && <div class="error">{error}</div>}
      <TimelineView timeline={timeline} version={version} ctx={{ decide: (r, a) => timeline.decide(r, a) }} />
    </section>
  );
}
