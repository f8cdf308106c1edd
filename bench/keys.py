#!/usr/bin/env python3
"""What the key check and the per-key limits cost per request (issue 11), with the fake CLI.

Two gateways at once, measured in one run and interleaved request by request: one with no
keys (no key check, no limits), one where every request presents a stored user key with rpm,
tpm, max_concurrency and a budget set (high enough never to refuse), so each request pays the
key's hash and lookup, the rpm limiter, the tpm window, the budget sum and the concurrency
slot, and carries the x-ratelimit-* headers back. Two kinds of request, sequential on a
kept-alive connection per gateway:

- `GET /v1/models` (a key check, no limits: it runs no turn);
- a non-streamed chat completion continuing a live conversation (the fake CLI answers at
  once), whose CLI time (`Server-Timing: cli;dur=`) is subtracted from the client latency.

The difference of the two gateways' latencies is what keys and limits cost; the keyed
gateway's overhead (client latency minus CLI time) is checked against the project target
(p99 < 1 ms).

usage: bench/keys.py [--requests 2000] [--turns 600] [--conversations 20]
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

ADMIN = "bench-admin-key-0123456789"


class Client:
    """One kept-alive connection to a gateway, with an optional key."""

    def __init__(self, port, key=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"content-type": "application/json"}
        if key:
            self.headers["authorization"] = f"Bearer {key}"

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        t0 = time.perf_counter()
        self.conn.request(method, path, body=data, headers=self.headers)
        r = self.conn.getresponse()
        payload = r.read()
        elapsed = time.perf_counter() - t0
        return r.status, payload, r.headers, elapsed


def cli_ms(headers):
    """The `cli;dur=` of a Server-Timing header, in ms (0 when absent)."""
    for part in (headers.get("server-timing") or "").split(","):
        name, _, rest = part.strip().partition(";")
        if name == "cli" and rest.startswith("dur="):
            return float(rest[4:])
    return 0.0


def build(profile):
    """The gateway and fake CLI only (no load generator needed here); their paths."""
    out = os.path.join(b.ROOT, "target", profile)
    bins = (os.path.join(out, "ccgw"), os.path.join(out, "ccgw-fake-claude"))
    if os.environ.get("CCGW_BENCH_NO_BUILD") == "1":
        for p in bins:
            if not os.path.exists(p):
                b.die(f"{p} is missing and CCGW_BENCH_NO_BUILD=1")
        return bins
    cmd = ["cargo", "build", "--bin", "ccgw", "--bin", "ccgw-fake-claude"]
    if profile == "release":
        cmd.insert(2, "--release")
    b.log("building: " + " ".join(cmd))
    subprocess.run(cmd, cwd=b.ROOT, check=True)
    return bins


def make_user_key(port):
    status, body, _ = b.http_request(
        port,
        "POST",
        "/admin/api/keys",
        {
            "name": "bench",
            "role": "user",
            "rpm": 1_000_000,
            "tpm": 1_000_000_000,
            "max_concurrency": 1000,
            "budget_usd": 1_000_000.0,
            "budget_period": "month",
        },
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    if status != 201:
        b.die(f"creating the user key: {status} {body[:200]!r}")
    return json.loads(body)["secret"]


def summary(samples):
    s = sorted(samples)
    return {
        "p50": b.percentile(s, 50),
        "p90": b.percentile(s, 90),
        "p99": b.percentile(s, 99),
        "mean": sum(s) / len(s),
    }


def us(x_ms):
    return f"{x_ms * 1000:.0f} µs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="GET /v1/models per gateway")
    ap.add_argument("--turns", type=int, default=600, help="chat turns per gateway")
    ap.add_argument("--conversations", type=int, default=20)
    ap.add_argument("--profile", choices=["release", "debug"], default="release",
                    help="the build measured (the target holds for release)")
    args = ap.parse_args()
    b.time_limit(300 + args.turns * 0.2)
    ccgw, fake = build(args.profile)
    b.warn_if_busy()
    load0 = b.loadavg()

    env = {
        "FAKE_CLAUDE_CHUNKS": "5",
        "FAKE_CLAUDE_CHUNK_DELAY_MS": "0",
        "FAKE_CLAUDE_FIRST_DELAY_MS": "0",
        "CCGW_MAX_LIVE_PROCESSES": str(args.conversations + 20),
        # The request log line at INFO is the same on both sides; warn keeps the disk out.
        "CCGW_LOG": "warn",
    }
    plain, plain_port, _ = b.start_gateway(fake, env, binary=ccgw)
    keyed, keyed_port, _ = b.start_gateway(fake, dict(env, CCGW_API_KEYS=ADMIN), binary=ccgw)
    secret = make_user_key(keyed_port)
    sides = {
        "no keys": Client(plain_port),
        "user key + limits": Client(keyed_port, secret),
    }

    # GET /v1/models, interleaved.
    models = {name: [] for name in sides}
    for i in range(args.requests + 100):
        for name, c in sides.items():
            status, _, _, t = c.call("GET", "/v1/models")
            if status != 200:
                b.die(f"{name}: /v1/models gave {status}")
            if i >= 100:  # the first ones warm the connection and caches
                models[name].append(t * 1000)

    # Chat turns continuing live conversations, round robin, interleaved.
    histories = {name: [[] for _ in range(args.conversations)] for name in sides}
    overhead = {name: [] for name in sides}
    total = {name: [] for name in sides}
    headers_seen = {}
    warm = args.conversations  # every conversation's first turn spawns its process
    for i in range(args.turns + warm):
        conv = i % args.conversations
        for name, c in sides.items():
            h = histories[name][conv]
            h.append({"role": "user", "content": f"turn {i}"})
            body = {"model": "sonnet", "messages": h}
            status, payload, hdrs, t = c.call("POST", "/v1/chat/completions", body)
            if status != 200:
                b.die(f"{name}: chat gave {status}: {payload[:200]!r}")
            reply = json.loads(payload)["choices"][0]["message"]["content"]
            h.append({"role": "assistant", "content": reply})
            if i >= warm:
                total[name].append(t * 1000)
                overhead[name].append(t * 1000 - cli_ms(hdrs))
            headers_seen[name] = hdrs.get("x-ratelimit-remaining-requests")
    b.stop(plain)
    b.stop(keyed)

    mp, mk = summary(models["no keys"]), summary(models["user key + limits"])
    op, ok_ = summary(overhead["no keys"]), summary(overhead["user key + limits"])
    if headers_seen["user key + limits"] is None:
        b.die("the keyed gateway's turns carried no x-ratelimit headers: limits not applied")
    rows = [
        ("`GET /v1/models` p50: no keys / user key", f"{us(mp['p50'])} / {us(mk['p50'])}",
         "", ""),
        ("`GET /v1/models` p99: no keys / user key", f"{us(mp['p99'])} / {us(mk['p99'])}",
         "", ""),
        ("`GET /v1/models` key check cost (p50 difference; ratio)",
         f"{us(mk['p50'] - mp['p50'])}; {mk['p50'] / mp['p50']:.3f}", "", ""),
        ("turn overhead (client − CLI) p50: no keys / user key + limits",
         f"{us(op['p50'])} / {us(ok_['p50'])}", "", ""),
        ("turn overhead p99: no keys / user key + limits",
         f"{us(op['p99'])} / {us(ok_['p99'])}", "< 1 ms",
         b.verdict(ok_["p99"] < 1.0)),
        ("key check + limits cost per turn (p50 difference; mean difference; p50 ratio)",
         f"{us(ok_['p50'] - op['p50'])}; {us(ok_['mean'] - op['mean'])}; "
         f"{ok_['p50'] / op['p50']:.3f}", "", ""),
    ]
    b.append_results(
        f"Keys and limits: what the key check and per-key limits cost per request (fake CLI, "
        f"{args.profile} build)",
        rows,
        details=[
            f"{args.requests} `GET /v1/models` and {args.turns} chat turns per gateway "
            f"({args.conversations} live conversations round robin, warm-up excluded), "
            "sequential on one kept-alive connection each, the two gateways interleaved",
            "the user key: rpm 1,000,000, tpm 1,000,000,000, max_concurrency 1000, "
            "budget_usd 1,000,000 per month (never refusing); every turn got x-ratelimit-* "
            "headers back",
            f"gateway env: {' '.join(f'{k}={v}' for k, v in env.items())}",
            "client: Python http.client; its own time is in both sides alike and cancels "
            "out of the differences",
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
