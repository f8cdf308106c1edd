#!/usr/bin/env python3
"""Figures 1 and 2: time to first content token through the gateway vs calling the CLI directly.

Real Claude Code CLI, and `ccgw mock-upstream` as the model for both sides (same prompts, same
upstream, measured alternately in one run):

1. New conversation: a streamed chat completion with a never-seen prompt, served from the warm
   pool (the script waits until a warm process is ready, as it would be between requests in
   steady use), vs spawning
   `claude -p --output-format stream-json --verbose --include-partial-messages PROMPT`.
2. Follow-up turn: the same conversation's next message (the history is sent, so the gateway
   continues the live CLI process), vs spawning `claude -p ... --resume SESSION PROMPT`, which
   is how one continues a session with the CLI directly.

TTFT is from sending the request (or spawning the CLI) to the first non-empty text delta.

usage: bench/ttft.py [--runs 7]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

# The gateway's warm pool is kept for this model (its default `warm_models`); both sides use it.
MODEL = "sonnet"


def gateway_turn(port, messages, timeout=60.0):
    """Stream one chat completion; returns (ttft seconds, full reply text)."""
    _, ttft, text = b.stream_turn(port, "openai", messages, MODEL, timeout)
    return ttft, text


def direct_turn(env, cwd, prompt, extra=(), timeout=60.0):
    return b.direct_turn(env, cwd, prompt, MODEL, extra, timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    b.time_limit(120 + args.runs * 40)
    if not os.path.exists(b.REAL_CLI):
        b.die(f"the real CLI is not installed at {b.REAL_CLI}: run scripts/setup.sh --cli")
    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()

    _, up_port = b.start_mock_upstream()
    upstream = b.mock_upstream_env(up_port)
    gw, port, _ = b.start_gateway(b.REAL_CLI, {**upstream, "CCGW_CLI_MAX_RETRIES": "0"})

    direct_env = b.direct_env(upstream)
    cwd = b.tmpdir("ccgw-bench-cwd-")

    # One unmeasured run of each: first-start work (config dir creation) is not what we compare.
    gateway_turn(port, [{"role": "user", "content": "warm-up [[words:5]]"}])
    direct_turn(direct_env, cwd, "warm-up [[words:5]]")

    def health():
        return json.loads(b.http_request(port, "GET", "/health")[1])

    def wait_warm():
        deadline = time.time() + 30
        while time.time() < deadline:
            if health()["warm_processes"] > 0:
                return True
            time.sleep(0.05)
        return False

    h0 = health()
    new_gw, new_direct, fu_gw, fu_direct = [], [], [], []
    for i in range(args.runs):
        tag = uuid.uuid4().hex[:8]
        p1 = f"bench {tag} first question [[words:20]]"
        p2 = f"bench {tag} follow-up question [[words:20]]"
        order = ["gw", "direct"] if i % 2 == 0 else ["direct", "gw"]
        for side in order:
            if side == "gw":
                if not wait_warm():
                    b.log("no warm process after 30 s: this run is a cold start")
                t1, reply = gateway_turn(port, [{"role": "user", "content": p1}])
                t2, _ = gateway_turn(port, [
                    {"role": "user", "content": p1},
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": p2},
                ])
                new_gw.append(t1)
                fu_gw.append(t2)
            else:
                session = str(uuid.uuid4())
                t1 = direct_turn(direct_env, cwd, p1, ["--session-id", session])
                t2 = direct_turn(direct_env, cwd, p2, ["--resume", session])
                new_direct.append(t1)
                fu_direct.append(t2)
        b.log(f"run {i + 1}/{args.runs}: gateway new "
              f"{new_gw[-1] * 1000:.0f} / follow-up {fu_gw[-1] * 1000:.0f} ms; direct new "
              f"{new_direct[-1] * 1000:.0f} / resume {fu_direct[-1] * 1000:.0f} ms")
    h1 = health()
    warm_hits = h1["warm_hits"] - h0["warm_hits"]
    cold = h1["cold_spawns"] - h0["cold_spawns"]
    b.stop(gw)

    def ms(v):
        return f"{b.median(v) * 1000:.0f} ms (min {min(v) * 1000:.0f}, max {max(v) * 1000:.0f})"

    r1 = b.median(new_gw) / b.median(new_direct)
    r2 = b.median(fu_gw) / b.median(fu_direct)
    rows = [
        ("1. new conversation, gateway: median TTFT", ms(new_gw), "", ""),
        ("1. new conversation, `claude -p` spawned directly", ms(new_direct), "", ""),
        ("1. ratio gateway / direct (medians)", f"{r1:.2f}", "≤ 0.25", b.verdict(r1 <= 0.25)),
        ("2. follow-up turn, gateway (live process): median TTFT", ms(fu_gw), "", ""),
        ("2. follow-up turn, `claude -p --resume` spawned directly", ms(fu_direct), "", ""),
        ("2. ratio gateway / direct (medians)", f"{r2:.3f}", "≤ 0.10", b.verdict(r2 <= 0.10)),
    ]
    b.append_results(
        "Figures 1 and 2: time to first token, gateway vs the CLI spawned directly",
        rows,
        details=[
            f"{args.runs} runs of each, alternating; real CLI `{os.path.relpath(b.REAL_CLI, b.ROOT)}` "
            f"({subprocess.run([b.REAL_CLI, '--version'], capture_output=True, text=True).stdout.strip()}); "
            "upstream: `ccgw mock-upstream` on 127.0.0.1, prompt directive `[[words:20]]`",
            "direct: `claude " + " ".join(b.DIRECT_FLAGS) + f" --model {MODEL} [--session-id ID | --resume ID] PROMPT` "
            "with a fresh CLAUDE_CONFIG_DIR, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, "
            "CLAUDE_CODE_MAX_RETRIES=0",
            f"gateway: {warm_hits} of {args.runs} new conversations served by a warm process, "
            f"{cold} processes started on a request's path; follow-ups reuse their process; "
            f"model `{MODEL}` on both sides",
            "raw TTFT (ms): gateway new " + str([round(x * 1000) for x in new_gw])
            + "; direct new " + str([round(x * 1000) for x in new_direct])
            + "; gateway follow-up " + str([round(x * 1000) for x in fu_gw])
            + "; direct resume " + str([round(x * 1000) for x in fu_direct]),
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
