#!/usr/bin/env python3
"""Figure 5: the gateway's idle memory and its start-to-ready time.

Start-to-ready: from spawning `ccgw serve` (fresh data dir, the fake CLI so that its
`--version` check is cheap) until `GET /health` first answers 200, polled every millisecond;
repeated, median reported. Idle RSS: VmRSS two seconds after ready, and again after it served
a little traffic (1,000 `GET /v1/models` and 20 chat turns) and sat idle for two seconds.

usage: bench/startup.py [--runs 10]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    b.time_limit(180 + args.runs * 10)
    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()

    ready_ms, idle_kb, hwm_kb = [], [], []
    for i in range(args.runs):
        data = b.tmpdir("ccgw-bench-data-")
        port = b.free_port()
        env = b.gateway_env(b.FAKE, data, port)
        t0 = time.perf_counter()
        p = b.spawn([b.CCGW, "serve"], env=env)
        t1 = b.wait_ready(port, p)
        ready_ms.append((t1 - t0) * 1000)
        time.sleep(2)
        st = b.proc_status(p.pid)
        idle_kb.append(st.get("VmRSS", 0))
        hwm_kb.append(st.get("VmHWM", 0))
        if i < args.runs - 1:
            b.stop(p)
        else:
            # The last one serves some traffic first, then idles again.
            for _ in range(1000):
                b.http_request(port, "GET", "/v1/models")
            messages = []
            for n in range(20):
                messages.append({"role": "user", "content": f"question {n}"})
                status, body, _ = b.http_request(
                    port, "POST", "/v1/chat/completions",
                    {"model": "default", "messages": messages},
                )
                if status != 200:
                    b.die(f"chat completion failed: {status} {body[:200]!r}")
                import json

                reply = json.loads(body)["choices"][0]["message"]["content"]
                messages.append({"role": "assistant", "content": reply})
            time.sleep(2)
            after = b.proc_status(p.pid)
            b.stop(p)
        b.log(f"run {i + 1}: ready in {ready_ms[-1]:.1f} ms, idle RSS {idle_kb[-1] / 1024:.1f} MB")

    med_ready = b.median(ready_ms)
    med_idle = b.median(idle_kb) / 1024
    rows = [
        ("start-to-ready, median", f"{med_ready:.1f} ms", "< 100 ms", b.verdict(med_ready < 100)),
        ("start-to-ready, min / max", f"{min(ready_ms):.1f} / {max(ready_ms):.1f} ms", "", ""),
        ("idle RSS after start, median", f"{med_idle:.1f} MB", "< 20 MB",
         b.verdict(med_idle < 20)),
        ("peak RSS during start (VmHWM), median", f"{b.median(hwm_kb) / 1024:.1f} MB", "", ""),
        ("idle RSS after 1,000 `/v1/models` + 20 chat turns", f"{after.get('VmRSS', 0) / 1024:.1f} MB",
         "< 20 MB", b.verdict(after.get("VmRSS", 0) / 1024 < 20)),
    ]
    b.append_results(
        "Figure 5: idle RSS and start-to-ready time",
        rows,
        details=[
            f"{args.runs} starts of `target/release/ccgw serve` with "
            "CCGW_CLAUDE_BIN=target/release/ccgw-fake-claude and a fresh CCGW_DATA_DIR; ready = "
            "first 200 from GET /health (polled every 1 ms, includes the `claude --version` check)",
            "raw start-to-ready (ms): " + str([round(x, 1) for x in ready_ms]),
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
