#!/usr/bin/env python3
"""Figure 12: many active native sessions on a small live budget.

`--sessions` native sessions are created, then messaged round-robin for `--rounds` rounds by
`--clients` concurrent clients (each owns a share of the sessions and plays their rounds in
order), with a live-process budget of `--budget`. With more sessions
than the budget every turn after the first round finds its session's process stopped: it
resumes from the transcript. Every turn must succeed.

Reported: sessions created per second; turns per second; turn latency p50/p99 of the first
round (a new process) and of later rounds (a resume); the same for a control group of
`--budget`/2 sessions that stay live, so the resume's cost is the difference; the gateway's
resume and eviction counters; its RSS. Then a sample of sessions is checked:
- its history (`GET /api/sessions/{id}/history`) holds every round's prompt and reply, in order;
- with the real CLI (`--cli real`), a last turn asks the mock model for the conversation it was
  sent (`[[report:history]]`): every earlier prompt of that session must be in it, and no other
  session's.

usage: bench/sessions.py [--sessions 1000] [--rounds 3] [--budget 32] [--clients 32]
                         [--cli fake|real] [--sample 20]
"""

import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

MODEL = "sonnet"


def post_json(port, path, body, timeout=120.0):
    status, raw, _ = b.http_request(port, "POST", path, body, timeout=timeout)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, {"raw": raw[:300].decode(errors="replace")}


def prompt(sid, rnd, real):
    # The mock model answers the directive; the fake CLI answers anything.
    return f"session {sid} round {rnd}" + (" [[words:8]]" if real else "")


class Turns:
    """Round-robin turns by a fixed number of client threads; latencies by round. Client k
    owns sessions k, k + clients, ...: it plays every round of its sessions in order, so a
    session never has two turns at once."""

    def __init__(self, port, clients):
        self.port, self.clients = port, clients
        self.lock = threading.Lock()
        self.latency = {}  # round -> [seconds]
        self.errors = []

    def run(self, sessions, rounds, text):
        """Every round of every session; `text(session, round)` is the prompt."""
        t0 = time.perf_counter()

        def client(mine):
            for rnd in range(rounds):
                for sid in mine:
                    s = time.perf_counter()
                    status, reply = post_json(self.port, f"/api/sessions/{sid}/messages",
                                              {"content": text(sid, rnd)})
                    dt = time.perf_counter() - s
                    with self.lock:
                        if status != 200:
                            self.errors.append((sid, rnd, status, str(reply)[:200]))
                        else:
                            self.latency.setdefault(rnd, []).append(dt)

        n = min(self.clients, len(sessions))
        threads = [threading.Thread(target=client, args=(sessions[k::n],)) for k in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0


def history_ok(port, sid, rounds, real):
    status, raw, _ = b.http_request(port, "GET", f"/api/sessions/{sid}/history", timeout=30)
    if status != 200:
        return f"history {status}"
    text = raw.decode(errors="replace")
    at = -1
    for rnd in range(rounds):
        i = text.find(prompt(sid, rnd, real).split(" [[")[0], at + 1)
        if i < 0:
            return f"round {rnd}'s prompt missing or out of order"
        at = i
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=32)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--cli", choices=("fake", "real"), default="fake")
    ap.add_argument("--sample", type=int, default=20)
    args = ap.parse_args()
    real = args.cli == "real"
    b.time_limit(3000)
    load0 = b.loadavg()
    b.build()

    extra = {"CCGW_MAX_LIVE_PROCESSES": str(args.budget), "CCGW_CLI_MAX_RETRIES": "0"}
    mock = None
    if real:
        mock, up_port = b.start_mock_upstream()
        extra.update(b.mock_upstream_env(up_port))
        cli = b.REAL_CLI
    else:
        cli = b.FAKE
    gw, port, _ = b.start_gateway(cli, extra)

    def health():
        return json.loads(b.http_request(port, "GET", "/health")[1])

    # Sessions, then a control group that will stay live (fewer than the budget).
    t0 = time.perf_counter()
    ids = []
    for _ in range(args.sessions):
        status, s = post_json(port, "/api/sessions", {"model": MODEL})
        if status != 201:
            b.die(f"creating a session: {status} {s}")
        ids.append(s["id"])
    create_s = time.perf_counter() - t0
    control = []
    for _ in range(max(1, args.budget // 2 - 2)):
        control.append(post_json(port, "/api/sessions", {"model": MODEL})[1]["id"])

    h0 = health()
    turns = Turns(port, args.clients)
    wall = turns.run(ids, args.rounds, lambda sid, rnd: prompt(sid, rnd, real))
    h1 = health()
    rss = b.proc_status(gw.pid)

    # The control group: its own first round, then rounds while its processes stay live.
    ctl = Turns(port, args.clients)
    ctl.run(control, args.rounds, lambda sid, rnd: prompt(sid, rnd, real))

    # The sample: stored history, and with the real CLI what the model was sent.
    rng = random.Random(11)
    sample = rng.sample(ids, min(args.sample, len(ids)))
    bad = []
    for sid in sample:
        why = history_ok(port, sid, args.rounds, real)
        if why:
            bad.append((sid, why))
            continue
        if real:
            status, reply = post_json(port, f"/api/sessions/{sid}/messages",
                                      {"content": "what did I say? [[report:history]]"})
            text = json.dumps(reply)
            missing = [r for r in range(args.rounds)
                       if f"session {sid} round {r}" not in text]
            foreign = [o for o in sample if o != sid and f"session {o} " in text]
            if status != 200 or missing or foreign:
                bad.append((sid, f"model history: status {status}, missing rounds {missing}, "
                                 f"other sessions {foreign[:2]}"))
    b.stop(gw)
    if mock:
        b.stop(mock)

    ms = lambda xs, p: b.fmt_ms(1000 * b.percentile(xs, p)) if xs else "n/a"  # noqa: E731
    first = turns.latency.get(0, [])
    later = [x for r, xs in turns.latency.items() if r > 0 for x in xs]
    ctl_later = [x for r, xs in ctl.latency.items() if r > 0 for x in xs]
    n_turns = sum(len(v) for v in turns.latency.values())
    resume_cost = (b.median(later) - b.median(ctl_later)) if later and ctl_later else None
    delta = {k: h1[k] - h0[k] for k in ("resumes", "evictions", "cold_spawns", "warm_hits")}
    ok = not turns.errors and not ctl.errors and not bad
    rows = [
        ("turns answered / failed", f"{n_turns} / {len(turns.errors)}", "0 failed",
         b.verdict(not turns.errors)),
        ("sample checked (history in order" + (", model history" if real else "") + ")",
         f"{len(sample) - len(bad)} of {len(sample)} good", "all", b.verdict(not bad)),
        ("sessions created per second", f"{args.sessions / create_s:.0f}", "", ""),
        ("turns per second (all rounds)", f"{n_turns / wall:.1f}", "", ""),
        ("first round (a new process): turn p50 / p99", f"{ms(first, 50)} / {ms(first, 99)}",
         "", ""),
        ("later rounds (a resume): turn p50 / p99", f"{ms(later, 50)} / {ms(later, 99)}", "", ""),
        (f"control, {len(control)} sessions staying live: later turns p50 / p99",
         f"{ms(ctl_later, 50)} / {ms(ctl_later, 99)}", "", ""),
        ("resume cost (later-round p50 minus the control's)",
         b.fmt_ms(1000 * resume_cost) if resume_cost is not None else "n/a", "", ""),
        ("gateway counters during the rounds",
         ", ".join(f"{k} {v}" for k, v in delta.items()), "", ""),
        ("gateway RSS after the rounds (VmHWM)",
         f"{rss.get('VmRSS', 0) / 1024:.0f} MB ({rss.get('VmHWM', 0) / 1024:.0f} MB)", "", ""),
    ]
    b.append_results(
        f"Figure 12: {args.sessions} active native sessions, live budget {args.budget} "
        f"({args.cli} CLI)",
        rows,
        details=[f"{args.sessions} sessions x {args.rounds} rounds, round-robin, {args.clients} "
                 f"concurrent clients, non-streamed `POST /api/sessions/{{id}}/messages`; "
                 f"wall time of the rounds {wall:.0f} s",
                 "errors: " + (json.dumps((turns.errors + ctl.errors)[:3]) or "none")
                 + "; sample problems: " + (json.dumps(bad[:3]) if bad else "none")],
        started_load=load0,
    )
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
