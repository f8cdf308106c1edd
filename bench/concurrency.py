#!/usr/bin/env python3
"""Figure 4: 1,000 concurrent streaming requests held open (fake CLI, slow stream).

Every request is a new conversation, and every conversation needs its own CLI process, so the
live-process budget is set to the concurrency and the open-file limit is raised (each process
costs the gateway three pipes). The fake streams FAKE_CLAUDE_CHUNKS deltas with
FAKE_CLAUDE_CHUNK_DELAY_MS between them. All streams must end with every chunk and `[DONE]`.
Reports the gateway's peak RSS (VmHWM) and, for scale, the fake processes' memory.

usage: bench/concurrency.py [--concurrency 1000] [--chunks 20] [--chunk-delay-ms 250]
"""

import argparse
import json
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--concurrency", type=int, default=1000)
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--chunk-delay-ms", type=int, default=250)
    args = ap.parse_args()
    stream_secs = args.chunks * args.chunk_delay_ms / 1000.0
    b.time_limit(300 + stream_secs * 3)

    b.raise_open_files(args.concurrency * 5 + 1024)

    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()
    env = {
        # Room for every stream's process, plus the (default) warm pool's.
        "CCGW_MAX_LIVE_PROCESSES": str(args.concurrency + 10),
        "CCGW_QUEUE_TIMEOUT_SECS": "60",
        "FAKE_CLAUDE_CHUNKS": str(args.chunks),
        "FAKE_CLAUDE_CHUNK_DELAY_MS": str(args.chunk_delay_ms),
        "FAKE_CLAUDE_FIRST_DELAY_MS": "0",
    }
    gw, port, _ = b.start_gateway(b.FAKE, env)
    idle = b.proc_status(gw.pid)

    peak = {"rss": 0, "children": 0, "children_rss": 0}
    stop_sampling = threading.Event()

    def sample():
        while not stop_sampling.wait(0.2):
            st = b.proc_status(gw.pid)
            kids = b.children_of(gw.pid)
            peak["rss"] = max(peak["rss"], st.get("VmRSS", 0))
            if len(kids) >= peak["children"]:
                peak["children"] = len(kids)
                peak["children_rss"] = sum(b.proc_status(k).get("VmRSS", 0) for k in kids)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    r, cmd = b.run_loadgen(
        port,
        ["hold", "--concurrency", str(args.concurrency), "--expect-chunks", str(args.chunks),
         "--timeout-secs", str(120 + stream_secs * 2)],
        timeout=180 + stream_secs * 3,
    )
    stop_sampling.set()
    sampler.join()
    final = b.proc_status(gw.pid)
    health = json.loads(b.http_request(port, "GET", "/health")[1])
    time.sleep(1)
    b.stop(gw)

    if "error" in r:
        b.die(f"the load generator gave up: {r}")
    all_ok = r["complete"] == args.concurrency and r["failed"] == 0 and r["incomplete"] == 0
    per_kid = peak["children_rss"] / peak["children"] if peak["children"] else 0
    rows = [
        ("streams complete (all chunks + `[DONE]`)", f"{r['complete']} / {args.concurrency}",
         "all", b.verdict(all_ok)),
        ("failed / incomplete (dropped)", f"{r['failed']} / {r['incomplete']}", "0 / 0",
         b.verdict(r["failed"] == 0 and r["incomplete"] == 0)),
        ("wall time for all streams", f"{r['wall_secs']:.1f} s",
         f"stream itself {stream_secs:.1f} s", ""),
        ("time to response headers p50 / p99 / max",
         f"{b.fmt_ms(r['ttfb_ms']['p50'])} / {b.fmt_ms(r['ttfb_ms']['p99'])} / "
         f"{b.fmt_ms(r['ttfb_ms']['max'])}", "", ""),
        ("stream duration p50 / max",
         f"{r['total_ms']['p50'] / 1000:.2f} s / {r['total_ms']['max'] / 1000:.2f} s", "", ""),
        ("gateway peak RSS (VmHWM)", f"{final.get('VmHWM', 0) / 1024:.1f} MB", "", ""),
        ("gateway RSS idle before / after", f"{idle.get('VmRSS', 0) / 1024:.1f} MB / "
         f"{final.get('VmRSS', 0) / 1024:.1f} MB", "", ""),
        ("CLI processes at peak (their RSS, total and each)",
         f"{peak['children']} ({peak['children_rss'] / 1024:.0f} MB, "
         f"{per_kid / 1024:.1f} MB each)", "", ""),
    ]
    b.append_results(
        f"Figure 4: {args.concurrency} concurrent streams held open (fake CLI)",
        rows,
        details=[
            "load generator: `" + " ".join(os.path.relpath(x, b.ROOT) if x.startswith(b.ROOT)
                                          else x for x in cmd) + "`",
            f"gateway env: {' '.join(f'{k}={v}' for k, v in env.items())}; "
            f"open-file limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}",
            f"gateway after the run: {health['live_processes']} live processes, "
            f"{health['spawned_processes']} spawned, queue depth {health['queue_depth']}",
        ],
        started_load=load0,
    )
    if not all_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
