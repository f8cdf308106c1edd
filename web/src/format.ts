export function ago(ms: number | string | undefined): string {
  if (!ms) return "";
  const t = typeof ms === "string" ? Date.parse(ms) : ms;
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

export function tokens(n: number | undefined): string {
  if (!n) return "0";
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

export function dur(ms: number | undefined): string {
  if (!ms) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function money(usd: number | undefined | null): string {
  return usd ? `$${usd.toFixed(4)}` : "—";
}
