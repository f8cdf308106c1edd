// The gateway's health, live: request rate, latency (overhead and time to first token, p50,
// p95, p99), errors by status, processes, memory, top models and keys. Fed by
// /admin/api/stats (the same numbers as /metrics, with an in-memory series of the last hour).
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { get } from "../api";
import { tokens } from "../format";

interface Sample {
  t: number;
  requests_per_s: number;
  errors: Record<string, number>;
  overhead_ms: { p50: number | null; p95: number | null; p99: number | null };
  ttft_ms: { p50: number | null; p95: number | null; p99: number | null };
  live_processes: number;
  warm_processes: number;
  queue_depth: number;
  process_starts: number;
  rss_bytes: number;
}

const COLORS = ["#2f6fde", "#e0862a", "#c7344f", "#2b9a66", "#8a55c9", "#6b7785"];

type Series = { label: string; get: (s: Sample) => number | null | undefined; bars?: boolean };

function Chart({ title, series, samples, unit }: { title: string; series: Series[]; samples: Sample[]; unit?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = (): uPlot.AlignedData => [samples.map((s) => s.t / 1000), ...series.map((se) => samples.map((s) => se.get(s) ?? null))] as any;
  useEffect(() => {
    const el = box.current!;
    const opts: uPlot.Options = {
      width: el.clientWidth || 400,
      height: 180,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{ stroke: "var(--muted)" as any, grid: { stroke: "var(--grid)" as any } }, { stroke: "var(--muted)" as any, grid: { stroke: "var(--grid)" as any }, size: 50, values: (_u, v) => v.map((x) => `${+x.toFixed(2)}${unit ?? ""}`) }],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          spanGaps: false,
          ...(s.bars ? { paths: uPlot.paths.bars!({ size: [0.6, 20] }), fill: COLORS[i % COLORS.length] + "88" } : {}),
        })),
      ],
    };
    plot.current = new uPlot(opts, data(), el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [series.map((s) => s.label).join()]);
  useEffect(() => {
    plot.current?.setData(data());
  }, [samples]);
  return (
    <figure class="chart" data-chart={title} data-points={samples.length}>
      <figcaption>{title}</figcaption>
      <div ref={box} />
    </figure>
  );
}

function Top({ title, rows }: { title: string; rows: any[] }) {
  const max = Math.max(1, ...rows.map((r) => r.requests));
  return (
    <div class="top">
      <h2>{title}</h2>
      <table class="list">
        <tbody>
          {rows.map((r) => (
            <tr key={r.name}>
              <td>{r.name}</td>
              <td class="barcell">
                <span class="hbar" style={{ width: `${(r.requests / max) * 100}%` }} /> {r.requests} req
              </td>
              <td class="num">
                {tokens(r.input_tokens)} / {tokens(r.output_tokens)} tok
              </td>
            </tr>
          ))}
          {!rows.length && (
            <tr>
              <td class="muted">no requests yet</td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

export function Dashboard() {
  const [samples, setSamples] = useState<Sample[]>([]);
  const [now, setNow] = useState<any>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    let last = 0;
    let all: Sample[] = [];
    let stop = false;
    const tick = async () => {
      try {
        const r = await get(`/admin/api/stats?since=${last}`);
        if (stop) return;
        if (r.series.length) {
          all = [...all, ...r.series].slice(-1800);
          last = all[all.length - 1].t;
          setSamples(all);
        }
        setNow(r);
        setErr("");
      } catch (e: any) {
        setErr(e.message);
      }
    };
    tick();
    const h = setInterval(tick, 2000);
    return () => {
      stop = true;
      clearInterval(h);
    };
  }, []);
  const statuses = [...new Set(samples.flatMap((s) => Object.keys(s.errors)))].sort();
  return (
    <section>
      <div class="bar">
        <h1>Dashboard</h1>
        {now && (
          <span class="muted">
            up {Math.floor(now.uptime_secs / 60)} min · CLI {now.cli_version} · {now.live_processes}/{now.max_live_processes} processes · {now.warm_processes} warm ·{" "}
            {(now.rss_bytes / 1048576).toFixed(0)} MB{now.demo ? " · demo mode" : ""}
          </span>
        )}
      </div>
      {err && <div class="error">{err}</div>}
      <div class="charts" data-testid="charts">
        <Chart title="Requests per second" samples={samples} series={[{ label: "req/s", get: (s) => s.requests_per_s }]} />
        <Chart
          title="Gateway overhead (ms)"
          unit=""
          samples={samples}
          series={[
            { label: "p50", get: (s) => s.overhead_ms.p50 },
            { label: "p95", get: (s) => s.overhead_ms.p95 },
            { label: "p99", get: (s) => s.overhead_ms.p99 },
          ]}
        />
        <Chart
          title="Time to first token (ms)"
          samples={samples}
          series={[
            { label: "p50", get: (s) => s.ttft_ms.p50 },
            { label: "p95", get: (s) => s.ttft_ms.p95 },
            { label: "p99", get: (s) => s.ttft_ms.p99 },
          ]}
        />
        <Chart
          title="Errors by status"
          samples={samples}
          series={(statuses.length ? statuses : ["5xx"]).map((st) => ({ label: st, get: (s: Sample) => s.errors[st] ?? 0, bars: true }))}
        />
        <Chart
          title="Processes"
          samples={samples}
          series={[
            { label: "live", get: (s) => s.live_processes },
            { label: "warm", get: (s) => s.warm_processes },
            { label: "queued", get: (s) => s.queue_depth },
            { label: "starts", get: (s) => s.process_starts, bars: true },
          ]}
        />
        <Chart title="Gateway memory (MB)" samples={samples} series={[{ label: "RSS", get: (s) => s.rss_bytes / 1048576 }]} />
      </div>
      <div class="grid2">
        <Top title="Top models" rows={now?.top_models ?? []} />
        <Top title="Top keys" rows={now?.top_keys ?? []} />
      </div>
    </section>
  );
}
