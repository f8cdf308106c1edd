// A conversation's timeline: a virtualized list (only the rows on screen exist in the DOM, so
// thousands of events scroll smoothly), search and filters by kind, tool and text, and a
// follow mode that keeps the newest event in view while a turn streams.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { useVirtualizer, type Virtualizer } from "@tanstack/react-virtual";
import { KINDS, matches, type Filter, type Item, type Timeline } from "../timeline";
import { ItemView, type Ctx } from "./renderers";

function toolNames(items: Item[]): string[] {
  const s = new Set<string>();
  for (const it of items) if ((it.kind === "tool" || it.kind === "permission") && it.name) s.add(it.name);
  return [...s].sort();
}

const ESTIMATE = 56;
/** Typical heights by kind (a text line, a tool card with its result), so a long list's
 * estimated length is close to its real one and the first rows drawn are the last ones. */
const ESTIMATES: Record<string, number> = { text: 34, user: 62, tool: 150, result: 40, step: 34 };
const estimate = (it: Item | undefined) => (it && ESTIMATES[it.kind]) ?? ESTIMATE;

/** A row's height from its ResizeObserver entry. A row just put in the DOM keeps its known (or
 * estimated) height until the observer reports it after layout: reading `offsetHeight` there,
 * as the list does by default, forces one layout per new row: the largest script cost of a
 * long timeline's first render (about 20 ms of 2,001 rows' under load). */
function sizeFromObserver(el: Element, entry: ResizeObserverEntry | undefined, v: Virtualizer<HTMLDivElement, Element>): number {
  const box = entry?.borderBoxSize?.[0];
  if (box) return Math.round(box.blockSize);
  const i = Number((el as HTMLElement).dataset.index);
  return v.measurementsCache[i]?.size ?? ESTIMATE;
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
    estimateSize: (i) => estimate(shown[i]),
    overscan: 8,
    getItemKey: (i) => shown[i].key,
    measureElement: sizeFromObserver,
  });

  // Following, the first rows drawn are the newest ones: the list's offset is put at its end
  // before its rows are chosen, and the scroller is moved there before the frame is painted.
  // Otherwise a long timeline is laid out and drawn at its top, then scrolled and drawn again.
  const primed = useRef<Timeline | null>(null);
  const priming = follow && shown.length > 0 && primed.current !== timeline;
  if (priming) {
    primed.current = timeline;
    v.scrollOffset = Math.max(0, v.getTotalSize() - (v.scrollRect?.height ?? 0));
  }
  useLayoutEffect(() => {
    if (priming && scroller.current) scroller.current.scrollTop = v.scrollOffset ?? 0;
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
