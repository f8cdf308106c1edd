#!/usr/bin/env python3
"""Figure 11: the memory of live CLI processes, and whether the CLI runs lighter.

The Claude Code CLI is a Bun executable. Bun reads extra runtime flags from `BUN_OPTIONS`, and
`--smol` makes its JavaScriptCore heap smaller and collects more often. JSC's own options come
through `BUN_JSC_*` variables. This script measures, in one run, each variant through the
gateway (the real CLI, `ccgw mock-upstream` as the model, the gateway's defaults otherwise):

- `--conversations` compatible conversations of `--turns` streamed turns each, with long
  replies (`[[words:N]]`), so each process has parsed and kept a real history;
- then, after a short idle, each live CLI process's RSS and PSS (`/proc/PID/smaps_rollup`).
  That gateway runs without a warm pool, so every process it holds served a conversation;
  the warm processes (never used) are read from another gateway, with the default pool of two;
- every turn's time to first token and to its end, and every failure.

The variants are measured one after another, each on a fresh gateway, in one run. PSS is what a
process costs the machine (shared pages divided among their users); RSS counts
the shared executable once per process. The gateway sizes its default budget from PSS.

usage: bench/cli_memory.py [--conversations 6] [--turns 4] [--words 1500]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

MODEL = "sonnet"

# name -> the extra environment of the gateway (passed on to the CLI by `cli_extra_env`).
VARIANTS = [
    ("default", {}),
    ("BUN_OPTIONS=--smol", {"BUN_OPTIONS": "--smol"}),
    ("--smol, JSC forceRAMSize 512 MiB", {"BUN_OPTIONS": "--smol",
                                          "BUN_JSC_forceRAMSize": str(512 << 20)}),
    ("JSC JIT off", {"BUN_JSC_useJIT": "0"}),
]


def smaps_rollup(pid):
    """{Rss, Pss, ...} of a process in kB, or {} when it is gone."""
    return b.proc_status(pid, "smaps_rollup")


def cli_pids(gateway_pid):
    """The CLI processes: each is the child of a `ccgw supervise` child of the gateway."""
    return [cli for sup in b.children_of(gateway_pid) for cli in b.children_of(sup)]


def start(env, up_env, warm):
    extra = {**up_env, **env, "CCGW_CLI_MAX_RETRIES": "0", "CCGW_WARM_POOL_SIZE": str(warm)}
    if env:
        extra["CCGW_CLI_EXTRA_ENV"] = ",".join(sorted(env))
    return b.start_gateway(b.REAL_CLI, extra)


def run_variant(name, env, up_env, args):
    # Warm processes: the defaults' pool of two, idle, never used.
    gw, port, _ = start(env, up_env, 2)
    try:
        deadline = time.time() + 60
        while len(cli_pids(gw.pid)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(args.idle)
        mem_warm = [smaps_rollup(p) for p in cli_pids(gw.pid)]
    finally:
        b.stop(gw)
    # Served processes: no warm pool, so every live CLI is one that served a conversation.
    gw, port, _ = start(env, up_env, 0)
    try:
        ttft, total, failures = [], [], 0
        histories = [[] for _ in range(args.conversations)]
        for turn in range(args.turns):
            for i, messages in enumerate(histories):
                messages.append({"role": "user",
                                 "content": f"conversation {i} turn {turn} [[words:{args.words}]]"})
                t0 = time.perf_counter()
                try:
                    _, first, text = b.stream_turn(port, "openai", messages, MODEL)
                except SystemExit:
                    failures += 1
                    messages.pop()
                    continue
                total.append(time.perf_counter() - t0)
                ttft.append(first)
                messages.append({"role": "assistant", "content": text})
        time.sleep(args.idle)
        mem_used = [smaps_rollup(p) for p in cli_pids(gw.pid)]
    finally:
        b.stop(gw)
    return {
        "name": name,
        "used_pss": [m.get("Pss", 0) for m in mem_used if m],
        "used_rss": [m.get("Rss", 0) for m in mem_used if m],
        "warm_pss": [m.get("Pss", 0) for m in mem_warm if m],
        "warm_rss": [m.get("Rss", 0) for m in mem_warm if m],
        "ttft": ttft,
        "total": total,
        "failures": failures,
    }


def mb(kb_values):
    return f"{b.median(kb_values) / 1024:.0f} MB" if kb_values else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=6)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--words", type=int, default=1500)
    ap.add_argument("--idle", type=float, default=3.0)
    args = ap.parse_args()
    b.time_limit(900)
    load0 = b.loadavg()
    b.build()
    mock, up_port = b.start_mock_upstream()
    up_env = b.mock_upstream_env(up_port)
    results = []
    for name, env in VARIANTS:
        b.log(f"variant: {name}")
        r = run_variant(name, env, up_env, args)
        b.log(f"  used PSS {mb(r['used_pss'])}, RSS {mb(r['used_rss'])}; warm PSS "
              f"{mb(r['warm_pss'])}; ttft p50 {b.fmt_ms(1000 * b.median(r['ttft'])) if r['ttft'] else 'n/a'}; "
              f"failures {r['failures']}")
        results.append(r)
    b.stop(mock)

    base = results[0]
    rows = []
    for r in results:
        n = r["name"]
        ratio = (b.median(r["used_pss"]) / b.median(base["used_pss"])
                 if r["used_pss"] and base["used_pss"] else None)
        ms = lambda xs, p=None: b.fmt_ms(1000 * (b.percentile(xs, p) if p else b.median(xs))) \
            if xs else "n/a"
        rows += [
            (f"{n}: a process that served turns, PSS / RSS (median of {len(r['used_pss'])})",
             f"{mb(r['used_pss'])} / {mb(r['used_rss'])}", "", ""),
            (f"{n}: a warm process, PSS / RSS (median of {len(r['warm_pss'])})",
             f"{mb(r['warm_pss'])} / {mb(r['warm_rss'])}", "", ""),
            (f"{n}: served-process PSS over the default's", f"{ratio:.2f}" if ratio else "n/a",
             "", ""),
            (f"{n}: TTFT p50 / p95; whole turn p50",
             f"{ms(r['ttft'])} / {ms(r['ttft'], 95)}; {ms(r['total'])}", "", ""),
            (f"{n}: turns answered / failed", f"{len(r['ttft'])} / {r['failures']}", "0 failed",
             b.verdict(r["failures"] == 0)),
        ]
    b.append_results(
        "Figure 11: memory of live CLI processes, and lighter runtime flags",
        rows,
        details=[f"{args.conversations} compatible conversations x {args.turns} streamed turns "
                 f"of {args.words} words each, real CLI, mock upstream, gateway defaults but no "
                 f"warm pool (warm processes: a gateway with the default pool of two, no "
                 f"traffic); memory read {args.idle:.0f} s after the last turn"],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
