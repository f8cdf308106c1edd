"""Starts and stops ccgw processes for the Python client tests.

Each process runs in its own process group with stdout/stderr in log files; its
descendants are watched through /proc so a test can check that none outlives it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# After the gateway is gone, a killed child may need a moment to be reaped.
REAP_GRACE = 3.0

# Variables that would point the gateway (or the CLI it runs) at a real account or
# change its configuration behind the tests' back.
# CLAUDECODE is set inside a Claude Code session and would make the CLI refuse to nest.
_SCRUBBED_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDECODE", "CCGW_")
_KEPT = {"CCGW_CLAUDE_BIN"}


def ccgw_bin() -> Path:
    override = os.environ.get("CCGW_TEST_BIN")
    return Path(override) if override else REPO_ROOT / "target" / "debug" / "ccgw"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _KEPT or not k.startswith(_SCRUBBED_PREFIXES)
    }
    loopback = "127.0.0.1,localhost,::1"
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = f"{env[key]},{loopback}" if env.get(key) else loopback
    env.update(extra)
    return env


def marker() -> str:
    """A token unique to one test, so that its echo cannot come from another request."""
    return uuid.uuid4().hex[:12]


def words(n: int) -> str:
    """What the mock's `[[words:N]]` answers."""
    return " ".join(f"w{i}" for i in range(1, n + 1))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- /proc helpers


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    start_time: str  # /proc/<pid>/stat field 22: tells a reused pid apart
    name: str
    cmdline: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.name}): {self.cmdline or '?'}"


def _read_stat(pid: int) -> tuple[str, int, str, str] | None:
    """(comm, ppid, state, start_time) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # comm may hold spaces and parentheses: it ends at the last ')'.
    lpar, rpar = raw.find("("), raw.rfind(")")
    comm = raw[lpar + 1 : rpar]
    fields = raw[rpar + 2 :].split()
    state, ppid, start_time = fields[0], int(fields[1]), fields[19]
    return comm, ppid, state, start_time


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def descendants(root_pid: int) -> list[ProcInfo]:
    """All live descendants of root_pid (found by scanning /proc for parent links)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[str, int, str, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        st = _read_stat(pid)
        if st is None:
            continue
        stats[pid] = st
        children.setdefault(st[1], []).append(pid)
    found: list[ProcInfo] = []
    stack = list(children.get(root_pid, []))
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        comm, _ppid, state, start = stats[pid]
        if state not in ("Z", "X"):
            found.append(ProcInfo(pid, start, comm, _cmdline(pid)))
        stack.extend(children.get(pid, []))
    return found


def is_alive(info: ProcInfo) -> bool:
    st = _read_stat(info.pid)
    return st is not None and st[3] == info.start_time and st[2] not in ("Z", "X")


# ---------------------------------------------------------------- one-shot commands


def run_command(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    """Run a command in its own process group to its end; (exit code, stdout, stderr).

    On timeout the whole group is killed and the exit code is None.
    """
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        code = None
    return code, out.decode(errors="replace"), err.decode(errors="replace")


# ---------------------------------------------------------------- processes


class CcgwProcess:
    """One `ccgw ...` subprocess with log files and a watcher of its descendants."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str]):
        self.name = name
        self.args = [str(ccgw_bin()), *args]
        self.workdir = workdir
        self.env = env
        self.stdout_path = workdir / f"{name}.stdout.log"
        self.stderr_path = workdir / f"{name}.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.seen: dict[tuple[int, str], ProcInfo] = {}
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.killed_after_timeout = False

    # -- lifecycle

    def start(self) -> "CcgwProcess":
        binary = Path(self.args[0])
        if not binary.is_file():
            raise RuntimeError(
                f"ccgw binary not found at {binary}: run `cargo build` (or set CCGW_TEST_BIN)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.args,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own session and process group
            )
        self._watcher = threading.Thread(
            target=self._watch, name=f"watch-{self.name}", daemon=True
        )
        self._watcher.start()
        return self

    def wait_ready(self, url: str, timeout: float = READY_TIMEOUT) -> dict | list:
        """Poll url until it answers 200 with JSON; fail with the logs otherwise."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready\n"
                    + self.logs()
                )
            try:
                r = httpx.get(url, timeout=2.0, trust_env=False)
                if r.status_code == 200:
                    return r.json()
                last_error = f"HTTP {r.status_code}: {r.text[:200]}"
            except (httpx.HTTPError, ValueError) as e:
                last_error = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready at {url} within {timeout:.0f}s ({last_error})\n" + self.logs()
        )

    def _watch(self) -> None:
        while not self._watch_stop.is_set():
            self.snapshot()
            self._watch_stop.wait(0.25)

    def snapshot(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for info in descendants(self.proc.pid):
            self.seen.setdefault((info.pid, info.start_time), info)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Signal the process, wait up to `timeout`, then SIGKILL its group. Returns the exit code."""
        if self.proc is None:
            return None
        self.snapshot()
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed_after_timeout = True
                self._kill_group()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def _kill_group(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def leftovers(self, grace: float = REAP_GRACE) -> list[ProcInfo]:
        """Descendants seen while the process ran that are still alive after it stopped."""
        deadline = time.monotonic() + grace
        alive = [p for p in self.seen.values() if is_alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [p for p in alive if is_alive(p)]
        return alive

    def reap_leftovers(self, procs: list[ProcInfo]) -> None:
        """Kill descendants the process left behind, so a failing test does not leak them."""
        for p in procs:
            if is_alive(p):
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    # -- logs

    def logs(self, limit: int = 8000) -> str:
        parts = [f"--- {self.name}: {' '.join(self.args)}"]
        for path in (self.stdout_path, self.stderr_path):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            text = data[-limit:].decode(errors="replace")
            cut = " (tail)" if len(data) > limit else ""
            parts.append(f"--- {path.name}{cut}:\n{text}")
        return "\n".join(parts)


def shutdown_and_check(gateway: CcgwProcess) -> list[str]:
    """Stop the gateway with SIGTERM and return the problems found (empty when clean)."""
    problems: list[str] = []
    code = gateway.stop()
    if gateway.killed_after_timeout:
        problems.append(f"{gateway.name} did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM")
    left = gateway.leftovers()
    if left:
        problems.append(
            f"{gateway.name} (exit code {code}) left child processes alive:\n  "
            + "\n  ".join(p.describe() for p in left)
        )
        gateway.reap_leftovers(left)
    return problems
