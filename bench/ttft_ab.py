#!/usr/bin/env python3
"""Time to first token of this tree's gateway against an earlier commit's, side by side.

For a change on the streaming path (for example holding a stream's response until the turn is
under way), this answers "does the first token come any later?" in one run: both gateways run
at once against one `ccgw mock-upstream`, with the real CLI, and are measured alternately with
the same prompts. Per side and turn kind (a new conversation from the warm pool, and a
follow-up in the live process) it reports the median time to the response's status line and to
the first content token of a streamed chat completion, and the ratio this tree / baseline.

The baseline is built from `git archive REV` in `target/bench-baseline/` (release; cached per
commit, sharing one target dir), so the working tree is never touched.

usage: bench/ttft_ab.py --baseline REV [--runs 9] [--endpoint openai|anthropic]
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

MODEL = "sonnet"
# The gateways' default warm pool.
POOL = 2
BASE_DIR = os.path.join(b.ROOT, "target", "bench-baseline")


def baseline_binary(rev):
    """The release `ccgw` of commit `rev`, built once from its archive."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=b.ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    out = os.path.join(BASE_DIR, f"ccgw-{sha[:12]}")
    if os.path.exists(out):
        return sha, out
    src = os.path.join(BASE_DIR, f"src-{sha[:12]}")
    os.makedirs(src, exist_ok=True)
    b.log(f"exporting {sha[:12]} into {os.path.relpath(src, b.ROOT)}")
    archive = subprocess.Popen(["git", "archive", sha], cwd=b.ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        b.die(f"git archive {sha} failed")
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(BASE_DIR, "target"))
    b.log(f"building the baseline {sha[:12]} (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "ccgw"], cwd=src, env=env, check=True)
    os.replace(os.path.join(BASE_DIR, "target", "release", "ccgw"), out)
    return sha, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="the commit to compare with (e.g. HEAD~1)")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--endpoint", choices=["openai", "anthropic"], default="openai")
    args = ap.parse_args()
    b.time_limit(1800 + args.runs * 30)
    if not os.path.exists(b.REAL_CLI):
        b.die(f"the real CLI is not installed at {b.REAL_CLI}: run scripts/setup.sh --cli")
    b.build()
    sha, old_bin = baseline_binary(args.baseline)
    b.warn_if_busy()
    load0 = b.loadavg()

    _, up_port = b.start_mock_upstream()
    upstream = {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{up_port}",
        "ANTHROPIC_API_KEY": "sk-ccgw-bench",
        "ANTHROPIC_AUTH_TOKEN": "",
        "CCGW_CLI_MAX_RETRIES": "0",
        # A finished run's conversations are stopped soon, so their processes do not take the
        # room the warm pool refills into (warm processes use only spare room).
        "CCGW_PROCESS_IDLE_TTL_SECS": "2",
    }
    sides = {}
    for name, binary in (("baseline", old_bin), ("this tree", b.CCGW)):
        gw, port, _ = b.start_gateway(b.REAL_CLI, upstream, binary=binary)
        sides[name] = {"proc": gw, "port": port, "new": [], "fu": [], "new_h": [], "fu_h": []}

    def settled():
        """Every side's warm pool full again: no process start runs while a side is measured
        (a refill costs ~0.6 s of CPU, which the other side would pay for)."""
        deadline = time.time() + 60
        while time.time() < deadline:
            healths = [json.loads(b.http_request(s["port"], "GET", "/health")[1]) for s in sides.values()]
            if all(h["warm_processes"] >= POOL for h in healths):
                time.sleep(0.3)
                return True
            time.sleep(0.05)
        return False

    for side in sides.values():
        b.stream_turn(side["port"], args.endpoint, [{"role": "user", "content": "warm-up [[words:5]]"}], MODEL)
    names = list(sides)
    for i in range(args.runs):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            side = sides[name]
            tag = uuid.uuid4().hex[:8]
            p1 = f"ab {tag} first question [[words:20]]"
            p2 = f"ab {tag} follow-up question [[words:20]]"
            if not settled():
                b.log("the warm pools did not refill within 60 s: this run may be a cold start")
            h1, t1, reply = b.stream_turn(side["port"], args.endpoint,
                                          [{"role": "user", "content": p1}], MODEL)
            h2, t2, _ = b.stream_turn(side["port"], args.endpoint, [
                {"role": "user", "content": p1},
                {"role": "assistant", "content": reply},
                {"role": "user", "content": p2},
            ], MODEL)
            side["new"].append(t1)
            side["fu"].append(t2)
            side["new_h"].append(h1)
            side["fu_h"].append(h2)
        b.log(f"run {i + 1}/{args.runs}: " + "; ".join(
            f"{n} new {sides[n]['new'][-1] * 1000:.0f} / follow-up {sides[n]['fu'][-1] * 1000:.0f} ms"
            for n in names))
    for side in sides.values():
        b.stop(side["proc"])

    def ms(v):
        return f"{b.median(v) * 1000:.0f} ms (min {min(v) * 1000:.0f}, max {max(v) * 1000:.0f})"

    old, new = sides["baseline"], sides["this tree"]
    r_new = b.median(new["new"]) / b.median(old["new"])
    r_fu = b.median(new["fu"]) / b.median(old["fu"])
    rows = []
    for kind, label in (("new", "new conversation (warm pool)"), ("fu", "follow-up (live process)")):
        for name in names:
            side = sides[name]
            rows.append((f"{label}, {name} `{'HEAD' if name == 'this tree' else sha[:12]}`: "
                         "status line / first token",
                         f"{b.median(side[kind + '_h']) * 1000:.0f} ms / {ms(side[kind])}", "", ""))
    rows += [
        ("first token, ratio this tree / baseline, new conversation", f"{r_new:.2f}", "≈ 1 (≤ 1.10)",
         b.verdict(r_new <= 1.10)),
        ("first token, ratio this tree / baseline, follow-up", f"{r_fu:.2f}", "≈ 1 (≤ 1.10)",
         b.verdict(r_fu <= 1.10)),
    ]
    b.append_results(
        f"Time to first token, this tree vs `{sha[:12]}` ({args.endpoint} streaming)",
        rows,
        details=[
            f"{args.runs} runs of each turn kind per side, alternating sides; both gateways at once "
            f"against one `ccgw mock-upstream`, real CLI, prompt directive `[[words:20]]`, model `{MODEL}`; "
            f"each measurement starts once both warm pools are full ({POOL} each), so no process start "
            "overlaps it; `CCGW_PROCESS_IDLE_TTL_SECS=2` so finished conversations free their room",
            "raw first-token ms: " + "; ".join(
                f"{n} new {[round(x * 1000) for x in sides[n]['new']]} "
                f"follow-up {[round(x * 1000) for x in sides[n]['fu']]}" for n in names),
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
