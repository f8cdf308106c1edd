#!/usr/bin/env python3
"""Figure 3: the gateway's own overhead at a constant request rate, with the fake CLI.

Overhead = client-side latency of a non-streamed chat completion minus the time the gateway
spent waiting on the CLI (reported per response in `Server-Timing: cli;dur=`), at an open-loop
constant rate. Every measured request continues a live conversation, so no process is spawned
while measuring. The gateway's own `ccgw_gateway_overhead_seconds` histogram over the same
window is read from /metrics and reported beside it.

usage: bench/overhead.py [--rate 500] [--duration 10] [--conversations 250] [--env K=V ...]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402


def histogram(lines):
    """{le: count}, sum and count from the exporter's histogram lines."""
    buckets, total, count = {}, 0.0, 0
    for line in lines:
        name, _, value = line.rpartition(" ")
        if name.startswith("ccgw_gateway_overhead_seconds_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(value)
        elif name == "ccgw_gateway_overhead_seconds_sum":
            total = float(value)
        elif name == "ccgw_gateway_overhead_seconds_count":
            count = float(value)
    return buckets, total, count


def bucket_quantile(buckets, count, q):
    """The upper bound of the bucket holding quantile q (what Prometheus can say)."""
    want = q * count
    for le, c in sorted(
        buckets.items(), key=lambda kv: float("inf") if kv[0] == "+Inf" else float(kv[0])
    ):
        if c >= want:
            return le
    return "+Inf"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--conversations", type=int, default=250)
    ap.add_argument("--chunks", type=int, default=10, help="text deltas per fake turn")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra gateway setting, e.g. CCGW_LOG=warn (repeatable)")
    args = ap.parse_args()
    b.time_limit(240 + args.duration * 2)
    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()

    env = {
        "CCGW_MAX_LIVE_PROCESSES": str(args.conversations + 50),
        "FAKE_CLAUDE_CHUNKS": str(args.chunks),
        "FAKE_CLAUDE_CHUNK_DELAY_MS": "0",
        "FAKE_CLAUDE_FIRST_DELAY_MS": "0",
    }
    env.update(kv.split("=", 1) for kv in args.env)
    gw, port, _ = b.start_gateway(b.FAKE, env)
    r, cmd = b.run_loadgen(
        port,
        [
            "rate",
            "--rate", str(args.rate),
            "--duration-secs", str(args.duration),
            "--conversations", str(args.conversations),
        ],
        timeout=180 + args.duration * 2,
    )
    b.stop(gw)

    o, c, t = r["overhead_ms"], r["cli_ms"], r["total_ms"]
    hb, hs, hc = histogram(r["metrics_before"])
    ha, has, hac = histogram(r["metrics_after"])
    delta = {le: ha.get(le, 0) - hb.get(le, 0) for le in ha}
    n = hac - hc
    mean_us = (has - hs) / n * 1e6 if n else float("nan")
    p50_le = bucket_quantile(delta, n, 0.50)
    p99_le = bucket_quantile(delta, n, 0.99)
    ok = r["errors"] == 0 and r["ok"] > 0
    rows = [
        ("requests measured (errors, skipped for want of an idle conversation)",
         f"{r['ok']} ({r['errors']}, {r['skipped_no_idle_conversation']})", "0 errors",
         b.verdict(ok)),
        ("achieved rate", f"{r['achieved_rate']:.0f} req/s", f"{args.rate:.0f} req/s",
         b.verdict(r["achieved_rate"] >= 0.95 * args.rate)),
        ("overhead p50 (client latency − CLI time)", b.fmt_ms(o["p50"]), "", ""),
        ("overhead p90", b.fmt_ms(o["p90"]), "", ""),
        ("overhead p99", b.fmt_ms(o["p99"]), "< 1 ms", b.verdict(o["p99"] < 1.0)),
        ("overhead max", b.fmt_ms(o["max"]), "", ""),
        ("client latency p50 / p99", f"{b.fmt_ms(t['p50'])} / {b.fmt_ms(t['p99'])}", "", ""),
        ("CLI (fake) time p50 / p99", f"{b.fmt_ms(c['p50'])} / {b.fmt_ms(c['p99'])}", "", ""),
        ("of the overhead, inside the handler (`Server-Timing: gw`) p50 / p99",
         f"{b.fmt_ms(r['gateway_overhead_ms']['p50'])} / {b.fmt_ms(r['gateway_overhead_ms']['p99'])}",
         "", ""),
        ("of the overhead, outside it (HTTP, loopback, client) p50 / p99",
         f"{b.fmt_ms(r['outside_handler_ms']['p50'])} / {b.fmt_ms(r['outside_handler_ms']['p99'])}",
         "", ""),
        ("/metrics `ccgw_gateway_overhead_seconds`: count, mean",
         f"{n:.0f}, {mean_us:.0f} µs", "", ""),
        ("/metrics histogram p50 / p99 bucket (upper bound)", f"≤ {p50_le} s / ≤ {p99_le} s",
         "p99 < 0.001 s", b.verdict(p99_le not in ("+Inf",) and float(p99_le) <= 0.001)),
    ]
    b.append_results(
        f"Figure 3: gateway overhead at {args.rate:.0f} req/s (fake CLI)",
        rows,
        details=[
            "load generator: `" + " ".join(os.path.relpath(x, b.ROOT) if x.startswith(b.ROOT)
                                          else x for x in cmd) + "`",
            f"gateway env: {' '.join(f'{k}={v}' for k, v in env.items())}",
            f"{r['conversations']} live conversations, each request a follow-up (longest "
            f"history at the end: {r['max_history_messages']} messages); measured for "
            f"{r['duration_secs']:.1f} s",
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
