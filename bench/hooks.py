#!/usr/bin/env python3
"""Hooks over HTTP: what registering every hook event on every process costs per turn.

Every process the gateway starts registers eight hook events in `initialize` (docs/hooks.md),
so a session may subscribe to any of them at any time. A turn then makes the CLI call back
for UserPromptSubmit and Stop, and a tool call for PreToolUse and PostToolUse. This drives
two real CLI processes side by side against `ccgw mock-upstream`, answering every callback at
once as the gateway does when no subscription matches:

- A: PreToolUse only (what every process registered before hooks over HTTP);
- B: the gateway's set (all eight events).

Turns alternate between A and B; a turn is timed from writing its user line to its `result`
line. Two kinds: a text turn, and a turn with one Bash call (`echo`) and a second model call.

Then the same through the gateway itself: two `ccgw serve`, one with `CCGW_HOOK_EVENTS=""`
(PreToolUse only) and one with the defaults, one native session each, alternating text turns
(`POST /api/sessions/{id}/messages`, JSON), timed at the client.

usage: bench/hooks.py [--turns 20]
(CCGW_BENCH_CCGW=path/to/ccgw uses that binary for the mock upstream instead of a release build)
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

EVENTS = ["PreToolUse", "PostToolUse", "UserPromptSubmit", "Stop", "SubagentStop",
          "PreCompact", "SessionStart", "Notification"]


class Cli:
    def __init__(self, events, mock_port):
        home = b.tmpdir("ccgw-bench-hooks-")
        cwd = os.path.join(home, "ws")
        os.makedirs(cwd)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "CLAUDE_CONFIG_DIR": os.path.join(home, ".claude"),
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{mock_port}",
            "ANTHROPIC_API_KEY": "sk-bench",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }
        cmd = [b.REAL_CLI, "--input-format", "stream-json", "--output-format", "stream-json",
               "--verbose", "--tools", "Bash", "--setting-sources", "", "--strict-mcp-config",
               "--permission-prompt-tool", "stdio", "--model", "sonnet"]
        self.p = b.spawn(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        self.callbacks = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        hooks = {e: [{"matcher": None, "hookCallbackIds": [f"cb_{e}"], "timeout": 660}]
                 for e in events}
        self._write({"type": "control_request", "request_id": "init",
                     "request": {"subtype": "initialize", "hooks": hooks}})
        self._until(lambda o: o.get("type") == "control_response", 60)

    def _write(self, obj):
        with self.lock:
            self.p.stdin.write((json.dumps(obj) + "\n").encode())
            self.p.stdin.flush()

    def _read(self):
        for raw in self.p.stdout:
            o = json.loads(raw)
            if o.get("type") == "control_request":
                r = o["request"]
                if r["subtype"] == "hook_callback":
                    self.callbacks += 1
                    resp = {"continue": True}
                elif r["subtype"] == "can_use_tool":
                    resp = {"behavior": "allow", "updatedInput": r["input"]}
                else:
                    resp = {}
                self._write({"type": "control_response", "response": {
                    "subtype": "success", "request_id": o["request_id"], "response": resp}})
            else:
                self.lines.put(o)

    def _until(self, pred, timeout):
        end = time.monotonic() + timeout
        while True:
            o = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            if pred(o):
                return o

    def turn(self, text):
        t0 = time.perf_counter()
        self._write({"type": "user", "message": {"role": "user", "content": text},
                     "parent_tool_use_id": None, "session_id": ""})
        r = self._until(lambda o: o.get("type") == "result", 60)
        if r.get("subtype") != "success":
            b.die(f"turn failed: {r}")
        return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=20)
    args = ap.parse_args()
    b.time_limit(120 + args.turns * 20)
    if os.environ.get("CCGW_BENCH_CCGW"):
        b.CCGW = os.environ["CCGW_BENCH_CCGW"]
    else:
        b.build()
    b.warn_if_busy()
    load0 = b.loadavg()
    _, mock_port = b.start_mock_upstream()
    a = Cli(["PreToolUse"], mock_port)
    g = Cli(EVENTS, mock_port)
    kinds = {
        "text turn": "[[text:hello]]",
        "turn with one Bash call": '[[tool:Bash {"command":"echo hi"}]]',
    }
    times = {(k, n): [] for k in kinds for n in ("A", "B")}
    calls = {}
    for kind, text in kinds.items():
        for cli in (a, g):
            cli.turn(text)  # warm-up, not counted
        for i in range(args.turns):
            order = [("A", a), ("B", g)] if i % 2 == 0 else [("B", g), ("A", a)]
            for name, cli in order:
                before = cli.callbacks
                times[(kind, name)].append(cli.turn(text))
                calls[(kind, name)] = cli.callbacks - before
    # Through the gateway: the same two sets, answered by the gateway's own reader.
    upstream = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{mock_port}",
                "ANTHROPIC_API_KEY": "sk-ccgw-bench", "ANTHROPIC_AUTH_TOKEN": "",
                "CCGW_CLI_MAX_RETRIES": "0"}
    gateways = {}
    for name, extra in (("A", {"CCGW_HOOK_EVENTS": ""}), ("B", {})):
        _, port, _ = b.start_gateway(b.REAL_CLI, {**upstream, **extra}, binary=b.CCGW)
        st, body, _ = b.http_request(port, "POST", "/api/sessions", {"model": "sonnet"})
        if st != 201:
            b.die(f"session not created: {st} {body[:200]!r}")
        gateways[name] = (port, json.loads(body)["id"])

    def gw_turn(name):
        port, sid = gateways[name]
        t0 = time.perf_counter()
        st, body, _ = b.http_request(port, "POST", f"/api/sessions/{sid}/messages",
                                     {"content": "[[text:hello]]"}, timeout=60)
        if st != 200:
            b.die(f"turn failed: {st} {body[:200]!r}")
        return (time.perf_counter() - t0) * 1000

    for name in gateways:
        gw_turn(name)  # warm-up (the first turn also sets the process up)
    for i in range(args.turns):
        for name in (("A", "B") if i % 2 == 0 else ("B", "A")):
            times.setdefault(("gateway text turn", name), []).append(gw_turn(name))

    rows = []
    for kind in list(kinds) + ["gateway text turn"]:
        ma, mb = b.median(times[(kind, "A")]), b.median(times[(kind, "B")])
        na, nb = calls.get((kind, "A"), 0), calls.get((kind, "B"), 2)
        rows.append((f"{kind}, A (PreToolUse only, {na} callbacks): median", b.fmt_ms(ma), "", ""))
        rows.append((f"{kind}, B (all eight events, {nb} callbacks): median", b.fmt_ms(mb), "", ""))
        rows.append((f"{kind}, B − A (medians)", b.fmt_ms(mb - ma), "", ""))
    details = [f"{args.turns} turns of each kind on each process, alternating; real CLI "
               f"`{os.path.relpath(b.REAL_CLI, b.ROOT)}`; upstream `ccgw mock-upstream`; every "
               "callback answered at once with `{\"continue\": true}` by the driver; the gateway "
               f"rows: `{os.path.relpath(b.CCGW, b.ROOT) if b.CCGW.startswith(b.ROOT) else b.CCGW}` "
               "serve, a native session, JSON messages, timed at the client"]
    details += [f"raw (ms) {k} {n}: {[round(x, 1) for x in v]}" for (k, n), v in times.items()]
    b.append_results("Hooks: the cost of registering every hook event", rows, details,
                     started_load=load0)


if __name__ == "__main__":
    main()
