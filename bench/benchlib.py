"""Shared helpers for the ccgw benchmark scripts (standard library only).

Every script: builds what it needs (unless CCGW_BENCH_NO_BUILD=1), starts its own processes in
their own process groups on 127.0.0.1, stops them all on the way out (also on errors, Ctrl-C
and its own time limit), prints its figures and appends them to bench/RESULTS.md with the
exact command, the date, the core count, the load average and the git commit.
"""

import atexit
import datetime
import http.client
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
RELEASE = os.path.join(ROOT, "target", "release")
CCGW = os.path.join(RELEASE, "ccgw")
FAKE = os.path.join(RELEASE, "ccgw-fake-claude")
LOADGEN = os.path.join(RELEASE, "examples", "loadgen")
BASELINE = os.path.join(RELEASE, "examples", "baseline")
REAL_CLI = os.environ.get("CCGW_BENCH_CLAUDE_BIN") or os.path.join(
    ROOT, ".tools", "cli", "node_modules", ".bin", "claude"
)

_procs = []
_tmpdirs = []


def log(msg):
    print(f"bench: {msg}", flush=True)


def die(msg):
    print(f"bench: ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def build():
    """Release build of the gateway, the fake CLI and the load generator."""
    if os.environ.get("CCGW_BENCH_NO_BUILD") == "1":
        for p in (CCGW, FAKE, LOADGEN, BASELINE):
            if not os.path.exists(p):
                die(f"{p} is missing and CCGW_BENCH_NO_BUILD=1")
        return
    cmd = ["cargo", "build", "--release", "--bins", "--example", "loadgen", "--example", "baseline"]
    log("building: " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)


def time_limit(seconds):
    """End the whole script (cleanly, through the exit handlers) after `seconds`."""

    def expired(_sig, _frame):
        raise TimeoutError(f"benchmark exceeded its {seconds} s time limit")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(seconds))


def _on_term(_sig, _frame):
    sys.exit(130)


signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGINT, _on_term)


def tmpdir(prefix="ccgw-bench-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd, env=None, cwd=None, stdout=None, stderr=None, stdin=subprocess.DEVNULL):
    """Start a process in its own process group; it is stopped at exit."""
    p = subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    _procs.append(p)
    return p


def stop(p, grace=10.0):
    """SIGTERM the process (the gateway then stops its CLI processes), then SIGKILL its group."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if p in _procs:
        _procs.remove(p)


@atexit.register
def _cleanup():
    signal.alarm(0)
    for p in list(reversed(_procs)):
        stop(p, grace=5.0)
    for d in _tmpdirs:
        subprocess.run(["rm", "-rf", d], check=False)


def http_request(port, method, path, body=None, timeout=10.0, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"content-type": "application/json"} if data else {}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def wait_ready(port, proc, timeout=30.0, interval=0.001):
    """Poll GET /health until 200; returns the time it became ready (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            die(f"process exited early with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            conn.close()
            if r.status == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(interval)
    die(f"not ready on port {port} within {timeout} s")


def wait_ready_tcp(port, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    die(f"nothing listens on port {port} after {timeout} s")


def gateway_env(claude_bin, data_dir, port, extra=None):
    env = dict(os.environ)
    # Nothing of the caller's CCGW_* configuration leaks into a benchmark.
    for k in list(env):
        if k.startswith("CCGW_"):
            del env[k]
    env.update(
        {
            "CCGW_CLAUDE_BIN": claude_bin,
            "CCGW_DATA_DIR": data_dir,
            "CCGW_HOST": "127.0.0.1",
            "CCGW_PORT": str(port),
            # The gateway's default level; the log goes to a file in the data dir.
            "CCGW_LOG": "info",
            "CCGW_LOG_FORMAT": "json",
        }
    )
    env.update(extra or {})
    # The CLI inherits an allowlist of the gateway's environment only: the fake CLI's
    # settings must be let through by name.
    fake = sorted(k for k in env if k.startswith("FAKE_CLAUDE_"))
    if fake and "CCGW_CLI_EXTRA_ENV" not in env:
        env["CCGW_CLI_EXTRA_ENV"] = ",".join(fake)
    return env


def start_gateway(claude_bin, extra_env=None, binary=None):
    """Start `ccgw serve` (its log in DATA_DIR/../gateway.log); returns (process, port, data).
    The binary is `binary`, else $CCGW_BENCH_GATEWAY (another build, for a before/after), else
    the release build."""
    binary = binary or os.environ.get("CCGW_BENCH_GATEWAY") or CCGW
    data = tmpdir("ccgw-bench-data-")
    port = free_port()
    env = gateway_env(claude_bin, data, port, extra_env)
    out = open(os.path.join(tmpdir("ccgw-bench-log-"), "gateway.log"), "w")
    p = spawn([binary, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_ready(port, p)
    return p, port, data


def stream_turn(port, endpoint, messages, model, timeout=60.0):
    """One streamed chat completion (`openai`) or message (`anthropic`); returns (seconds to the
    status line, seconds to the first content token, the text)."""
    if endpoint == "openai":
        path, body = "/v1/chat/completions", {"model": model, "stream": True, "messages": messages}
    else:
        path = "/v1/messages"
        body = {"model": model, "stream": True, "max_tokens": 1024, "messages": messages}
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, body=json.dumps(body).encode(),
                 headers={"content-type": "application/json"})
    r = conn.getresponse()
    headers_at = time.perf_counter() - t0
    if r.status != 200:
        die(f"gateway answered {r.status}: {r.read()[:300]!r}")
    first, text = None, []
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if "error" in ev:
            die(f"stream error: {ev}")
        if endpoint == "openai":
            piece = (ev.get("choices") or [{}])[0].get("delta", {}).get("content")
        else:
            piece = ev.get("delta", {}).get("text") if ev.get("type") == "content_block_delta" else None
        if piece:
            if first is None:
                first = time.perf_counter() - t0
            text.append(piece)
        if endpoint == "anthropic" and ev.get("type") == "message_stop":
            break
    conn.close()
    if first is None:
        die("the gateway streamed no content")
    return headers_at, first, "".join(text)


def start_mock_upstream():
    port = free_port()
    p = spawn([CCGW, "mock-upstream", "--port", str(port)])
    wait_ready_tcp(port)
    return p, port


def proc_status(pid, name="status"):
    """The kB fields of /proc/PID/status (VmRSS, VmHWM, ...), or of another such file
    (`smaps_rollup`: Rss, Pss, ...); {} when the process is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                k, _, v = line.partition(":")
                parts = v.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[k] = int(parts[0])
    except OSError:
        pass
    return out


def raise_open_files(need):
    """Raise this process's open-file limit (which the gateway it starts inherits) to fit
    `need`, or stop when the hard limit is below it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        die(f"the open-file limit is {hard}; {need} are needed (raise `ulimit -Hn`)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(need * 2, hard)), hard))
    log(f"open-file limit raised to {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")


def children_of(pid):
    """Pids of the direct children of `pid` (started by any of its threads)."""
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    import math

    rank = max(1, math.ceil(p / 100.0 * len(v)))
    return v[min(rank, len(v)) - 1]


def median(values):
    return percentile(values, 50)


def run_loadgen(port, args, timeout):
    """Run the Rust load generator; returns its RESULT json and the exact command."""
    cmd = [LOADGEN, "--url", f"http://127.0.0.1:{port}"] + args
    log("running: " + " ".join(shlex.quote(c) for c in cmd))
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=None)
    try:
        out, _ = p.communicate(timeout=timeout)
    finally:
        stop(p)
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :]), cmd
    die("the load generator printed no RESULT line")


def git_commit():
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD") or "unknown"
    # The results file itself does not make the code dirty.
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/RESULTS.md")
    return sha + ("-dirty" if dirty else "")


def machine():
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    return {
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "loadavg": load,
        "kernel": platform.release(),
    }


def warn_if_busy():
    one, _, _ = os.getloadavg()
    cores = os.cpu_count() or 1
    if one > 0.5 * cores:
        log(
            f"WARNING: load average {one:.2f} on {cores} cores before the run: other work on "
            "this machine will show in the figures (noted in RESULTS.md)"
        )


def command_line():
    """The command as run, with the other gateway build it measured, if any."""
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    other = os.environ.get("CCGW_BENCH_GATEWAY")
    return f"CCGW_BENCH_GATEWAY={shlex.quote(other)} {cmd}" if other else cmd


def append_results(title, rows, details=None, notes=None, started_load=None):
    """Print the figures and append a section to bench/RESULTS.md.

    rows: (figure, value, target, verdict) tuples. details: extra commands / raw data lines.
    """
    m = machine()
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"## {title}",
        "",
        f"- date: {now}; commit: `{git_commit()}`; cores (`nproc`): {m['nproc']}; "
        f"load average before/after: {started_load or '?'} / {m['loadavg']}",
        f"- command: `{command_line()}`",
    ]
    for d in details or []:
        lines.append(f"- {d}")
    lines += ["", "| figure | value | target | met |", "| --- | --- | --- | --- |"]
    for fig, val, target, verdict in rows:
        lines.append(f"| {fig} | {val} | {target} | {verdict} |")
    for n in notes or []:
        lines += ["", n]
    lines.append("")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    new = not os.path.exists(RESULTS)
    with open(RESULTS, "a") as f:
        if new:
            f.write(
                "# ccgw benchmark results\n\nAppended by the scripts in `bench/` (see "
                "`bench/README.md`); newest last. Each section names the command, the commit "
                "and the machine it ran on.\n\n"
            )
        f.write(text)
    log(f"appended to {os.path.relpath(RESULTS, ROOT)}")


def loadavg():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "?"


def verdict(ok):
    return "yes" if ok else "**no**"


def fmt_ms(x):
    return f"{x:.3f} ms" if x < 10 else f"{x:.1f} ms"


# The CLI spawned per request, as wrappers do: the reference the gateway is measured against.
DIRECT_FLAGS = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]


def mock_upstream_env(up_port):
    """The environment that points a CLI at `ccgw mock-upstream` on `up_port`."""
    return {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{up_port}",
        "ANTHROPIC_API_KEY": "sk-ccgw-bench",
        "ANTHROPIC_AUTH_TOKEN": "",
    }


def direct_env(upstream):
    """The environment for spawning the CLI directly: the caller's, without CCGW_*, a fresh
    config dir, and no retries or background traffic (as the gateway runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCGW_")}
    env.update(upstream)
    env.update({
        "CLAUDE_CONFIG_DIR": tmpdir("ccgw-bench-claude-config-"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    })
    return env


def direct_turn(env, cwd, prompt, model, extra=(), timeout=60.0):
    """Spawn `claude -p` the way a user would; returns seconds to its first text delta."""
    cmd = [REAL_CLI, *DIRECT_FLAGS, "--model", model, *extra, prompt]
    t0 = time.perf_counter()
    p = spawn(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE)
    ttft = None
    deadline = t0 + timeout
    try:
        for line in p.stdout:
            if ttft is None and b'"text_delta"' in line:
                ev = json.loads(line)
                if ev.get("type") == "stream_event" and ev["event"].get("delta", {}).get("text"):
                    ttft = time.perf_counter() - t0
            if time.perf_counter() > deadline:
                break
        p.wait(timeout=max(1.0, deadline - time.perf_counter()))
    finally:
        stop(p)
    if ttft is None:
        die(f"the CLI streamed no text (exit {p.returncode}): {' '.join(cmd)}")
    return ttft
