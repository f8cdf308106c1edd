// One conversation's timeline kept live: its recorded history, then the feed's events for it.
import { useEffect, useRef, useState } from "preact/hooks";
import { subscribe, type FeedItem } from "./feed";
import { historyEvent, Timeline, type HistoryEntry } from "./timeline";

/** Milliseconds from the gateway reading the CLI's line (the feed item's server time) to its
 * row being painted here: the benchmark reads them (same machine, same clock). */
export const latencies: number[] = [];

/** A conversation's recorded history and, for a turn still running, its feed items so far. */
export type Loaded = HistoryEntry[] | { data: HistoryEntry[]; live?: FeedItem[] };

export function useConversation(id: string | undefined, load: (id: string) => Promise<Loaded>) {
  const [tl, setTl] = useState(() => new Timeline());
  const [version, setVersion] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const queued = useRef(false);
  const arrivals = useRef<number[]>([]);

  useEffect(() => {
    if (!id) return;
    const t = new Timeline();
    setTl(t);
    setError(null);
    let loaded = false;
    const early: FeedItem[] = [];
    // Events are rendered as soon as the current batch of socket messages is handled (a
    // microtask), not on the next animation frame: a frame later is up to 16 ms later.
    const bump = () => {
      if (queued.current) return;
      queued.current = true;
      queueMicrotask(() => {
        queued.current = false;
        setVersion(t.version);
        const got = arrivals.current.splice(0);
        if (!got.length) return;
        // On screen: the frame that paints the change has run once a task queued from its
        // animation-frame callback runs.
        requestAnimationFrame(() => {
          const ch = new MessageChannel();
          ch.port1.onmessage = () => {
            const now = Date.now();
            for (const a of got) latencies.push(now - a);
            if (latencies.length > 10_000) latencies.splice(0, latencies.length - 10_000);
          };
          ch.port2.postMessage(0);
        });
      });
    };
    const unsub = subscribe((item) => {
      if (item.conversation_id !== id) return;
      if (!loaded) return void early.push(item);
      arrivals.current.push(item.ts);
      t.push(item.event, item.ts, item.seq, item.turn_id);
      bump();
    });
    load(id)
      .then((answer) => {
        let history = Array.isArray(answer) ? answer : answer.data;
        const live = Array.isArray(answer) ? [] : answer.live ?? [];
        if (live.length) {
          // A turn is running: what the history has of it so far, the live items have whole.
          let end = history.length;
          while (end > 0 && history[end - 1].kind !== "result" && history[end - 1].kind !== "error") end--;
          history = history.slice(0, end);
        }
        let last = 0;
        for (const h of history) {
          const ev = historyEvent(h);
          const at = Date.parse(h.at);
          if (at > last) last = at;
          if (ev) t.push(ev, at, h.seq);
        }
        let seen = 0;
        for (const item of live) {
          t.push(item.event, item.ts, item.seq, item.turn_id);
          seen = Math.max(seen, item.id);
        }
        // What arrived live while it loaded, unless the answer had it already.
        for (const item of early)
          if (seen ? item.id > seen : item.ts > last) t.push(item.event, item.ts, item.seq, item.turn_id);
        loaded = true;
        bump();
      })
      .catch((e) => {
        loaded = true;
        setError(e.message);
      });
    return unsub;
  }, [id]);

  return { timeline: tl, version, error, refresh: () => setVersion(tl.version + 1) };
}
