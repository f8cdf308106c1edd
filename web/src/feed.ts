// The gateway-wide live feed (/admin/ws): one socket for the whole console, reconnected with
// backoff; views subscribe to the items they care about.
import { signal } from "@preact/signals";
import { apiKey, openSocket } from "./api";

export interface FeedItem {
  id: number;
  ts: number;
  conversation_id: string;
  source: "openai" | "anthropic" | "native";
  model: string;
  key?: string | null;
  user?: string | null;
  turn_id: string;
  seq?: number;
  event: { type: string; [k: string]: any };
}

type Listener = (item: FeedItem) => void;

export const feedState = signal<"connecting" | "live" | "down">("connecting");
/** Items lost because this browser fell behind (the gateway never waits for it). */
export const feedLagged = signal(0);
/** The newest items, for the home page's ticker. */
export const recentItems = signal<FeedItem[]>([]);

const listeners = new Set<Listener>();
let socket: WebSocket | null = null;
let retry = 500;
let started = false;
let tickerQueued = false;
const ticker: FeedItem[] = [];

export function subscribe(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

function deliver(item: FeedItem) {
  for (const l of listeners) {
    try {
      l(item);
    } catch (e) {
      console.error(e);
    }
  }
  if (item.event.type !== "text_delta" && item.event.type !== "thinking_delta" && item.event.type !== "tool_call_delta") {
    ticker.unshift(item);
    ticker.length = Math.min(ticker.length, 50);
    if (!tickerQueued) {
      tickerQueued = true;
      requestAnimationFrame(() => {
        tickerQueued = false;
        recentItems.value = ticker.slice();
      });
    }
  }
}

async function connect() {
  feedState.value = "connecting";
  try {
    socket = await openSocket("/admin/ws");
  } catch {
    return schedule();
  }
  socket.onopen = () => {
    feedState.value = "live";
    retry = 500;
  };
  socket.onmessage = (m) => {
    const v = JSON.parse(m.data);
    if (v.type === "lagged") {
      feedLagged.value += v.skipped;
      return;
    }
    deliver(v as FeedItem);
  };
  socket.onclose = () => {
    feedState.value = "down";
    socket = null;
    schedule();
  };
}

function schedule() {
  setTimeout(connect, retry);
  retry = Math.min(retry * 2, 10_000);
}

export function startFeed() {
  if (started) return;
  started = true;
  connect();
  // A new key: reconnect with it.
  apiKey.subscribe(() => socket?.close());
}
