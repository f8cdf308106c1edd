#!/usr/bin/env python3
"""Figure 13: many idle keep-alive connections while `GET /v1/models` is served at load.

`--connections` client connections are opened, each makes one `GET /v1/models` and then stays
open, idle, as an HTTP/1.1 keep-alive connection. wrk then drives `GET /v1/models` for
`--duration` seconds on 64 more connections, once before the idle ones are opened and once
while they are held. Afterwards every idle connection must still answer a second request.

Reported: the gateway's memory per idle connection (RSS before and after opening them), its
open files, its open-file limit, the throughput and latency p99 without and with the idle
connections, and how many idle connections still answered. The gateway runs with the fake CLI
(no turn is made) and `max_connections` raised to fit.

usage: bench/connections.py [--connections 10000] [--duration 10]
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402
from models_throughput import ensure_wrk, parse_latency, parse_rate  # noqa: E402

REQUEST = b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def read_response(sock):
    """Reads one response with a Content-Length body; returns its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def wrk(port, duration):
    """(requests per second, p99 in ms) of wrk on `GET /v1/models`, 64 connections."""
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{int(duration)}s", "--latency",
         f"http://127.0.0.1:{port}/v1/models"],
        capture_output=True, text=True, timeout=duration + 60,
    ).stdout
    return parse_rate(out), parse_latency(out, 99)


def open_files(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    b.time_limit(600 + args.duration * 2)
    b.raise_open_files(args.connections + 1024)
    ensure_wrk()
    if not shutil.which("wrk"):
        b.die("wrk is not installed")
    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()
    env = {
        "CCGW_MAX_CONNECTIONS": str(args.connections + 256),
        "CCGW_KEEP_ALIVE_TIMEOUT_SECS": "600",
        "CCGW_LOG": "warn",
    }
    gw, port, _ = b.start_gateway(b.FAKE, env)
    time.sleep(2)
    rss0 = b.proc_status(gw.pid).get("VmRSS", 0)
    files0 = open_files(gw.pid)
    rps_alone, p99_alone = wrk(port, args.duration)

    t0 = time.perf_counter()
    socks, failed_open = [], 0
    for _ in range(args.connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            s.sendall(REQUEST)
            if read_response(s) != 200:
                failed_open += 1
        except OSError:
            failed_open += 1
        socks.append(s)
    open_s = time.perf_counter() - t0
    time.sleep(2)
    rss1 = b.proc_status(gw.pid).get("VmRSS", 0)
    files1 = open_files(gw.pid)
    rps_held, p99_held = wrk(port, args.duration)

    # Every idle connection answers a second request.
    answered = 0
    for s in socks:
        try:
            s.sendall(REQUEST)
            if read_response(s) == 200:
                answered += 1
        except OSError:
            pass
        s.close()
    hwm = b.proc_status(gw.pid).get("VmHWM", 0)
    limit = open(f"/proc/{gw.pid}/limits").read()
    nofile = re.search(r"Max open files\s+(\d+)\s+(\d+)", limit)
    b.stop(gw)

    n = args.connections
    per_conn_kb = (rss1 - rss0) / n if n else 0
    rows = [
        ("idle connections opened (one request each) / failed",
         f"{n - failed_open} / {failed_open} in {open_s:.1f} s", "all", b.verdict(failed_open == 0)),
        ("idle connections answering a second request afterwards", f"{answered} of {n}", "all",
         b.verdict(answered == n)),
        ("gateway RSS before / with them (peak)",
         f"{rss0 / 1024:.1f} MB / {rss1 / 1024:.1f} MB ({hwm / 1024:.1f} MB)", "", ""),
        ("memory per idle connection", f"{per_conn_kb:.1f} kB", "", ""),
        ("gateway open files before / with them; its open-file limit (soft / hard)",
         f"{files0} / {files1}; {nofile.group(1)} / {nofile.group(2)}", "", ""),
        ("`GET /v1/models` (wrk, 64 connections): alone", f"{rps_alone:,.0f} req/s, p99 "
         f"{p99_alone}", "", ""),
        (f"`GET /v1/models` with {n} idle connections held", f"{rps_held:,.0f} req/s, p99 "
         f"{p99_held}", "", ""),
    ]
    b.append_results(
        f"Figure 13: {n} idle keep-alive connections while `GET /v1/models` is served",
        rows,
        details=[f"gateway env: {' '.join(f'{k}={v}' for k, v in env.items())} (fake CLI, no "
                 f"turns); wrk -t2 -c64 -d{args.duration:.0f}s on the same 2 cores"],
        started_load=load0,
    )
    if failed_open or answered != n:
        sys.exit(1)


if __name__ == "__main__":
    main()
