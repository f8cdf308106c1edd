// Client-side routes under /admin (the gateway answers every path there with the app).
import { signal } from "@preact/signals";

const BASE = "/admin";
export const path = signal(strip(location.pathname));

function strip(p: string): string {
  const s = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return s === "" ? "/" : s;
}

export function go(to: string) {
  history.pushState(null, "", BASE + to);
  path.value = to;
  window.scrollTo(0, 0);
}

addEventListener("popstate", () => (path.value = strip(location.pathname)));

/** `/sessions/:id` against "/sessions/abc" gives {id: "abc"}; null when it does not match. */
export function match(pattern: string, p: string): Record<string, string> | null {
  const a = pattern.split("/");
  const b = p.split("/");
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(":")) out[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return out;
}

/** Clicks on in-app links navigate without reloading. */
export function onLinkClick(e: MouseEvent) {
  const a = (e.target as HTMLElement).closest("a");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  const href = a.getAttribute("href");
  if (!href || !href.startsWith(BASE) || a.target) return;
  e.preventDefault();
  go(strip(href));
}

export const href = (to: string) => BASE + to;
