// A conversation's timeline: a virtualized list (only the rows on screen exist in the DOM, so
// thousands of events scroll smoothly), search and filters by kind, tool and text, and a
// follow mode that keeps the newest event in view while a turn streams.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { useVirtualizer } from "@tanstack/react-virtual";
import { KINDS, matches, type Filter, type Item, type Timeline } from "../timeline";
import { ItemView, type Ctx } from "./renderers";

function toolNames(items: Item[]): string[] {
  const s = new Set<string>();
  for (const it of items) if ((it.kind === "tool" || it.kind === "permission") && it.name) s.add(it.name);
  return [...s].sort();
}

export function TimelineView({ timeline, version, ctx }: { timeline: Timeline; version: number; ctx: Ctx }) {
  const [kinds, setKinds] = useState(() => new Set(Object.keys(KINDS)));
  const [tool, setTool] = useState("");
  const [text, setText] = useState("");
  const [follow, setFollow] = useState(true);
  const scroller = useRef<HTMLDivElement>(null);
  const filter: Filter = { kinds, tool, text };
  const all = timeline.items;
  const shown = useMemo(() => {
    const everything = kinds.size === Object.keys(KINDS).length && !tool && !text;
    return everything ? all.slice() : all.filter((it) => matches(it, filter));
    // `version` changes whenever the timeline does.
  }, [version, kinds, tool, text, all.length]);
  const tools = useMemo(() => toolNames(all), [all.length]);

  const v = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 56,
    overscan: 8,
    getItemKey: (i) => shown[i].key,
  });

  useEffect(() => {
    const el = scroller.current;
    if (!follow || !el) return;
    // After the rows are measured: the end of the list is where the newest event is.
    const f = requestAnimationFrame(() => (el.scrollTop = el.scrollHeight));
    return () => cancelAnimationFrame(f);
  }, [version, shown.length, follow]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    if (atEnd !== follow) setFollow(atEnd);
  };

  const toggle = (k: string) => {
    const next = new Set(kinds);
    if (next.has(k)) next.delete(k);
    else next.add(k);
    setKinds(next);
  };

  return (
    <div class="timeline">
      <div class="filters" role="search">
        <input
          type="search"
          placeholder="Search the timeline"
          aria-label="search the timeline"
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
        />
        <select aria-label="filter by tool" value={tool} onChange={(e) => setTool((e.target as HTMLSelectElement).value)}>
          <option value="">all tools</option>
          {tools.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        <div class="chips" role="group" aria-label="filter by kind">
          {Object.entries(KINDS).map(([k, label]) => (
            <button key={k} class={`chip ${kinds.has(k) ? "on" : ""}`} aria-pressed={kinds.has(k)} onClick={() => toggle(k)}>
              {label}
            </button>
          ))}
        </div>
        <span class="muted count">
          {shown.length} / {all.length}
        </span>
      </div>
      <div class="scroller" ref={scroller} onScroll={onScroll} data-testid="timeline" tabIndex={0} aria-label="timeline">
        <div style={{ height: `${v.getTotalSize()}px`, position: "relative" }}>
          {v.getVirtualItems().map((row) => {
            const it = shown[row.index];
            return (
              <div
                key={row.key}
                data-index={row.index}
                ref={v.measureElement}
                style={{ position: "absolute", top: 0, left: 0, width: "100%", transform: `translateY(${row.start}px)` }}
              >
                <ItemView it={it} ctx={ctx} />
              </div>
            );
          })}
        </div>
        {!all.length && <div class="empty muted">No events yet.</div>}
      </div>
      {!follow && (
        <button class="follow" onClick={() => setFollow(true)}>
          ↓ newest
        </button>
      )}
    </div>
  );
}
