#!/usr/bin/env python3
"""Figure 6: throughput of `GET /v1/models` with wrk on the same machine.

wrk (Debian's package; installed with apt-get when missing) runs on the same cores as the
gateway, so the figure is what two cores give to both together. Several wrk shapes are tried
(threads x connections), each once; the best is the figure and all are listed.

usage: bench/models_throughput.py [--duration 10] [--shapes 1x50,2x100]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402


def ensure_wrk():
    if shutil.which("wrk"):
        return
    b.log("wrk is not installed: installing Debian's package (apt-get install -y wrk)")
    if os.geteuid() != 0:
        b.die("wrk is missing and this user cannot apt-get install it: install wrk and re-run")
    r = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)


def parse_rate(text):
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return float(m.group(1)) if m else 0.0


def parse_latency(text, pct):
    m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return "?"
    return f"{m.group(1)} {m.group(2).replace('us', 'µs')}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--shapes", default="1x50,2x100", help="wrk threads x connections, comma-separated")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    b.time_limit(300 + (len(shapes) * 2 + 1) * (args.duration + 15))
    ensure_wrk()
    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()

    gw, port, _ = b.start_gateway(b.FAKE)
    status, body, _ = b.http_request(port, "GET", "/v1/models")
    if status != 200:
        b.die(f"GET /v1/models answered {status}")
    # The same bytes from the bare HTTP stack: what this machine allows at all.
    body_file = os.path.join(b.tmpdir(), "models.json")
    with open(body_file, "wb") as f:
        f.write(body)
    base_port = b.free_port()
    base = b.spawn([b.BASELINE, str(base_port), body_file])
    b.wait_ready_tcp(base_port)

    def run_wrk(p, threads, conns, duration):
        url = f"http://127.0.0.1:{p}/v1/models"
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", url]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sock = re.search(r"Socket errors: (.*)", out)
        return {
            "cmd": " ".join(cmd[:-1]) + " URL",
            "rate": parse_rate(out),
            "p50": parse_latency(out, 50),
            "p99": parse_latency(out, 99),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sock.group(1) if sock else "none",
        }

    # Short unmeasured runs warm the allocators and connection paths.
    run_wrk(port, 1, 10, 2)
    run_wrk(base_port, 1, 10, 2)
    results = []
    for threads, conns in shapes:
        g = run_wrk(port, threads, conns, args.duration)
        bl = run_wrk(base_port, threads, conns, args.duration)
        b.log(f"wrk -t{threads} -c{conns}: gateway {g['rate']:.0f} req/s, bare stack {bl['rate']:.0f} req/s")
        results.append((g, bl))
    rss = b.proc_status(gw.pid)
    b.stop(gw)
    # The same with logging above `info`: the request span of every request is then skipped.
    gw, port, _ = b.start_gateway(b.FAKE, {"CCGW_LOG": "warn"})
    run_wrk(port, 1, 10, 2)
    quiet = run_wrk(port, shapes[0][0], shapes[0][1], args.duration)
    b.log(f"CCGW_LOG=warn: {quiet['rate']:.0f} req/s")
    b.stop(gw)
    b.stop(base)

    best, best_base = max(results, key=lambda r: r[0]["rate"])
    rows = [("gateway, best: `" + best["cmd"] + "`", f"{best['rate']:,.0f} req/s", "≥ 50,000 req/s",
             b.verdict(best["rate"] >= 50000))]
    for g, bl in results:
        rows.append((f"gateway `{g['cmd']}`", f"{g['rate']:,.0f} req/s; latency p50 {g['p50']}, p99 "
                     f"{g['p99']}; non-2xx {g['non2xx']}; socket errors {g['socket_errors']}", "", ""))
        rows.append((f"bare axum stack, same bytes, `{bl['cmd']}`", f"{bl['rate']:,.0f} req/s; "
                     f"latency p50 {bl['p50']}, p99 {bl['p99']}", "", ""))
        rows.append(("gateway / bare stack", f"{g['rate'] / bl['rate']:.2f}" if bl["rate"] else "?", "", ""))
    rows.append((f"gateway with CCGW_LOG=warn, `{quiet['cmd']}`", f"{quiet['rate']:,.0f} req/s; "
                 f"latency p50 {quiet['p50']}, p99 {quiet['p99']}", "", ""))
    rows.append(("gateway peak RSS (VmHWM)", f"{rss.get('VmHWM', 0) / 1024:.1f} MB", "", ""))
    b.append_results(
        "Figure 6: `GET /v1/models` throughput (wrk, same machine)",
        rows,
        details=[
            f"wrk {subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.split(chr(10))[0].strip()}"
            f" against `ccgw serve` (fake CLI, no API keys, default log level `info` into a file "
            f"unless noted); {len(body)} bytes per response",
            "bare stack: `target/release/examples/baseline` (bench/baseline.rs: axum + tokio, one route "
            "answering the same bytes), measured right after the gateway with each wrk shape",
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
