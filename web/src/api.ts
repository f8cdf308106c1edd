// Talking to the gateway: the public native API and /admin/api, with the signed-in key sent
// only in headers (or, for WebSockets, in the subprotocol or a single-use ticket). The key is
// never shown and never put in a URL.
import { signal } from "@preact/signals";

const STORE = "ccgw.key";

export const apiKey = signal<string | null>(
  sessionStorage.getItem(STORE) ?? localStorage.getItem(STORE),
);
/** True once a request came back 401: the console shows its sign-in. */
export const needsKey = signal(false);

export function signIn(key: string, remember: boolean) {
  sessionStorage.setItem(STORE, key);
  if (remember) localStorage.setItem(STORE, key);
  else localStorage.removeItem(STORE);
  apiKey.value = key;
  needsKey.value = false;
}

export function signOut() {
  sessionStorage.removeItem(STORE);
  localStorage.removeItem(STORE);
  apiKey.value = null;
  needsKey.value = true;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public body: any,
  ) {
    super(message);
  }
}

function headers(extra?: Record<string, string>): Record<string, string> {
  const h: Record<string, string> = { ...(extra ?? {}) };
  if (apiKey.value) h["authorization"] = `Bearer ${apiKey.value}`;
  return h;
}

async function check(resp: Response): Promise<Response> {
  if (resp.status === 401) needsKey.value = true;
  if (!resp.ok) {
    let body: any = null;
    try {
      body = await resp.json();
    } catch {
      /* not JSON */
    }
    const msg = body?.error?.message ?? `${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, msg, body);
  }
  return resp;
}

export async function get<T = any>(path: string, signal?: AbortSignal): Promise<T> {
  const r = await check(await fetch(path, { headers: headers(), signal }));
  return r.json();
}

export async function send<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await check(
    await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  const text = await r.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const post = <T = any>(path: string, body?: unknown) => send<T>("POST", path, body ?? {});

/** The raw text of a response (exports). */
export async function text(method: string, path: string): Promise<string> {
  const r = await check(await fetch(path, { method, headers: headers() }));
  return r.text();
}

/** A POST that answers with SSE: calls `onEvent(type, data)` for each frame until the end. */
export async function postStream(
  path: string,
  body: unknown,
  onEvent: (type: string, data: any) => void,
  abort?: AbortSignal,
): Promise<void> {
  const r = await check(
    await fetch(path, {
      method: "POST",
      headers: headers({ "content-type": "application/json", accept: "text/event-stream" }),
      body: JSON.stringify(body),
      signal: abort,
    }),
  );
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = "message";
      const data: string[] = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) {
        try {
          onEvent(type, JSON.parse(data.join("\n")));
        } catch {
          onEvent(type, data.join("\n"));
        }
      }
    }
  }
}

// Characters a subprotocol token may hold (RFC 7230 tchar).
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** Open a WebSocket on this origin, authenticated the way a browser can. */
export async function openSocket(path: string): Promise<WebSocket> {
  const base = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
  const key = apiKey.value;
  if (!key) return new WebSocket(base + path);
  if (TOKEN.test(key)) return new WebSocket(base + path, ["ccgw", `ccgw.bearer.${key}`]);
  const { ticket } = await post<{ ticket: string }>("/api/ws-tickets");
  const sep = path.includes("?") ? "&" : "?";
  return new WebSocket(`${base}${path}${sep}ticket=${encodeURIComponent(ticket)}`, ["ccgw"]);
}

/** Whether an endpoint exists on this gateway (some views use endpoints that may be absent). */
export function missing(e: unknown): boolean {
  if (!(e instanceof ApiError)) return false;
  const msg: string = e.body?.error?.message ?? "";
  return e.status === 405 || (e.status === 404 && msg.startsWith("No route"));
}

export function download(name: string, body: string, type: string) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
