#!/usr/bin/env python3
"""Figure 0: mixed traffic, time to first token, gateway vs the CLI spawned per request.

What users see: new conversations and follow-ups of earlier ones arrive at random (open loop,
exponential gaps), across more conversations than the default budget has process slots. The
real Claude Code CLI, `ccgw mock-upstream` as the model, the gateway's defaults (warm pool of
two, the live-process budget sized from the machine's memory). The same arrival schedule (same seed) is played twice in one run:
through the gateway (streamed chat completions, the whole history sent each time), then
against `claude -p` spawned for every turn (`--session-id` for a new conversation, `--resume`
for a follow-up), which is what a wrapper without a pool does.

`--conversations` new conversations are opened; each arrival is a new one with probability
`--new-share` (until all are open), otherwise a follow-up of an earlier conversation chosen
uniformly among those not mid-turn. Reports p50/p95 TTFT of each kind on both sides, their
ratios against the targets, and the gateway's warm hits, cold spawns, resumes and evictions.

usage: bench/mixed.py [--conversations 50] [--new-share 0.3] [--mean-gap 1.0] [--seed 7]
                      [--trace FILE]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

# The model of the gateway's default `warm_models`.
MODEL = "sonnet"


def schedule(args):
    """[(arrival second, kind, conversation index)]: a follow-up's conversation is chosen when
    it arrives (the one it names may still be mid-turn), so only the kind is fixed here."""
    rng = random.Random(args.seed)
    t, opened, plan = 0.0, 0, []
    while opened < args.conversations:
        t += rng.expovariate(1.0 / args.mean_gap)
        new = opened == 0 or rng.random() < args.new_share
        if new:
            plan.append((t, "new", opened))
            opened += 1
        else:
            plan.append((t, "follow-up", rng.random()))
    return plan


class Play:
    """One side's run of the schedule: `turn(kind, conv, prompt)` returns the TTFT."""

    def __init__(self, turn):
        self.turn = turn
        self.lock = threading.Lock()
        self.busy = set()
        self.opened = []
        self.times = {"new": [], "follow-up": []}
        self.errors = []
        # (second of the run it started, kind, conversation, TTFT), for --trace.
        self.trace = []
        self.t0 = time.perf_counter()

    def pick(self, u):
        with self.lock:
            free = [c for c in self.opened if c not in self.busy]
            if not free:
                return None
            c = free[min(int(u * len(free)), len(free) - 1)]
            self.busy.add(c)
            return c

    def one(self, kind, arg):
        conv = None
        try:
            if kind == "new":
                conv = arg
                with self.lock:
                    self.busy.add(conv)
            else:
                conv = self.pick(arg)
                if conv is None:
                    return
            started = time.perf_counter() - self.t0
            ttft = self.turn(kind, conv)
            with self.lock:
                self.times[kind].append(ttft)
                self.trace.append((round(started, 3), kind, conv, round(ttft, 4)))
                if kind == "new":
                    self.opened.append(conv)
        except BaseException as e:  # noqa: BLE001 (reported, the run goes on)
            self.errors.append(f"{kind} {arg}: {e}")
        finally:
            with self.lock:
                self.busy.discard(conv)

    def run(self, plan):
        t0 = self.t0 = time.perf_counter()
        threads = []
        for at, kind, arg in plan:
            delay = at - (time.perf_counter() - t0)
            if delay > 0:
                time.sleep(delay)
            th = threading.Thread(target=self.one, args=(kind, arg), daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            th.join(timeout=120)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversations", type=int, default=50)
    ap.add_argument("--new-share", type=float, default=0.3)
    ap.add_argument("--mean-gap", type=float, default=1.0, help="mean seconds between arrivals")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--trace", help="write every turn (start second, kind, conversation, TTFT) "
                    "of both sides to this file, as JSON lines")
    args = ap.parse_args()
    plan = schedule(args)
    span = plan[-1][0]
    b.time_limit(300 + span * 4)
    if not os.path.exists(b.REAL_CLI):
        b.die(f"the real CLI is not installed at {b.REAL_CLI}: run scripts/setup.sh --cli")
    b.build()
    b.warn_if_busy()
    load0 = b.loadavg()
    news = sum(1 for p in plan if p[1] == "new")
    b.log(f"{len(plan)} arrivals over {span:.0f} s: {news} new, {len(plan) - news} follow-ups")

    _, up_port = b.start_mock_upstream()
    upstream = b.mock_upstream_env(up_port)
    gw, port, _ = b.start_gateway(b.REAL_CLI, {**upstream, "CCGW_CLI_MAX_RETRIES": "0"})
    env = b.direct_env(upstream)
    cwd = b.tmpdir("ccgw-bench-cwd-")

    def health():
        return json.loads(b.http_request(port, "GET", "/health")[1])

    # One unmeasured turn of each: first-start work (config dir creation) is not compared.
    b.stream_turn(port, "openai", [{"role": "user", "content": "warm-up [[words:5]]"}], MODEL)
    b.direct_turn(env, cwd, "warm-up [[words:5]]", MODEL)
    deadline = time.time() + 30
    while health()["warm_processes"] < 2 and time.time() < deadline:
        time.sleep(0.05)

    tag = uuid.uuid4().hex[:8]
    histories = {}

    def gateway(kind, conv):
        prompt = f"mixed {tag} conversation {conv} turn {len(histories.get(conv, [])) // 2} [[words:20]]"
        messages = histories.get(conv, []) + [{"role": "user", "content": prompt}]
        _, ttft, text = b.stream_turn(port, "openai", messages, MODEL)
        histories[conv] = messages + [{"role": "assistant", "content": text}]
        return ttft

    sessions = {}

    def direct(kind, conv):
        prompt = f"mixed {tag} direct conversation {conv} [[words:20]]"
        if kind == "new":
            sessions[conv] = str(uuid.uuid4())
            return b.direct_turn(env, cwd, prompt, MODEL, ["--session-id", sessions[conv]])
        return b.direct_turn(env, cwd, prompt, MODEL, ["--resume", sessions[conv]])

    h0 = health()
    gw_play = Play(gateway)
    gw_wall = gw_play.run(plan)
    h1 = health()
    b.stop(gw)
    direct_play = Play(direct)
    direct_wall = direct_play.run(plan)
    for side, play in (("gateway", gw_play), ("direct", direct_play)):
        if play.errors:
            b.die(f"{side}: {len(play.errors)} turns failed, e.g. {play.errors[:3]}")

    if args.trace:
        with open(args.trace, "w") as f:
            for side, play in (("gateway", gw_play), ("direct", direct_play)):
                for row in sorted(play.trace):
                    f.write(json.dumps([side, *row]) + "\n")
    delta = {k: h1[k] - h0[k] for k in ("warm_hits", "cold_spawns", "resumes", "evictions")}
    rows = []
    targets = {"new": (0.25, 0.5), "follow-up": (0.10, 0.5)}
    for kind in ("new", "follow-up"):
        g, d = gw_play.times[kind], direct_play.times[kind]
        for p, target in zip((50, 95), targets[kind]):
            gp, dp = b.percentile(g, p), b.percentile(d, p)
            r = gp / dp
            rows.append((f"{kind}: TTFT p{p}, gateway / direct", f"{gp * 1000:.0f} ms / "
                         f"{dp * 1000:.0f} ms = {r:.2f}", f"≤ {target}", b.verdict(r <= target)))
    rows += [
        ("gateway: warm hits / cold spawns (of which resumes) / evictions",
         f"{delta['warm_hits']} / {delta['cold_spawns']} ({delta['resumes']}) / "
         f"{delta['evictions']}", "", ""),
    ]
    counts = {k: (len(gw_play.times[k]), len(direct_play.times[k])) for k in gw_play.times}
    b.append_results(
        "Figure 0: mixed traffic, time to first token, gateway vs the CLI spawned per turn",
        rows,
        details=[
            f"{len(plan)} arrivals over {span:.0f} s (seed {args.seed}, exponential gaps of mean "
            f"{args.mean_gap} s): {args.conversations} new conversations, the rest follow-ups of "
            f"an earlier one not mid-turn (turns measured, gateway / direct: new "
            f"{counts['new'][0]} / {counts['new'][1]}, follow-ups {counts['follow-up'][0]} / "
            f"{counts['follow-up'][1]}); wall time {gw_wall:.0f} s / {direct_wall:.0f} s",
            f"real CLI `{os.path.relpath(b.REAL_CLI, b.ROOT)}` "
            f"({subprocess.run([b.REAL_CLI, '--version'], capture_output=True, text=True).stdout.strip()}); "
            "upstream: `ccgw mock-upstream`, prompt directive `[[words:20]]`; gateway defaults "
            f"(warm pool 2, budget {h0['max_live_processes']} from the machine's memory), "
            "streamed chat completions with the whole history",
            "direct: `claude " + " ".join(b.DIRECT_FLAGS) + f" --model {MODEL} "
            "(--session-id ID | --resume ID) PROMPT` per turn",
        ],
        started_load=load0,
    )


if __name__ == "__main__":
    main()
