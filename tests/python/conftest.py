"""Fixtures for the Python client tests: a mock upstream model and a gateway in front of it.

The session starts `ccgw mock-upstream` and `ccgw serve` (fresh data dir) on free ports,
waits for them, and at the end stops the gateway with SIGTERM and checks that it left no
child process (the Claude Code CLI processes it ran) alive.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Callable

import httpx
import openai
import pytest

import ccgw_harness as h

# litellm fetches a price list from the network on import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REQUEST_TIMEOUT = 60.0

# Processes whose logs are attached to a failing test's report: (owner nodeid or None, process).
_PROCESSES: list[tuple[str | None, h.CcgwProcess]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for owner, proc in _PROCESSES:
        if owner is None or owner == item.nodeid:
            report.sections.append((f"ccgw {proc.name} logs", proc.logs()))


def _start(name: str, args: list[str], workdir: Path, env: dict[str, str], owner: str | None):
    proc = h.CcgwProcess(name, args, workdir, env)
    _PROCESSES.append((owner, proc))
    try:
        proc.start()
    except Exception as e:  # binary missing or not executable
        pytest.fail(str(e), pytrace=False)
    return proc


def _fail_not_ready(proc: h.CcgwProcess, e: Exception):
    proc.stop(signal.SIGKILL, timeout=5)
    proc.reap_leftovers(proc.leftovers(grace=0))
    pytest.fail(str(e), pytrace=False)


# ---------------------------------------------------------------- mock upstream


class MockUpstream:
    """The mock model's URL and its request log."""

    def __init__(self, url: str):
        self.url = url

    def requests(self) -> list[dict]:
        r = httpx.get(f"{self.url}/_mock/requests", timeout=10, trust_env=False)
        r.raise_for_status()
        return r.json()

    def clear(self) -> None:
        r = httpx.delete(f"{self.url}/_mock/requests", timeout=10, trust_env=False)
        r.raise_for_status()

    def model_calls(self) -> list[dict]:
        calls = []
        for entry in self.requests():
            path = entry.get("path") or ""
            if entry.get("method", "").upper() == "POST" and (
                path == "/v1/messages" or path.startswith("/v1/messages?")
            ):
                body = entry.get("body")
                if isinstance(body, str):
                    try:
                        body = json.loads(body)
                    except ValueError:
                        pass
                calls.append({**entry, "body": body})
        return calls


@pytest.fixture(scope="session")
def ccgw_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ccgw")


@pytest.fixture(scope="session")
def _mock_process(ccgw_workdir):
    port = h.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(
        "mock-upstream",
        ["mock-upstream", "--host", "127.0.0.1", "--port", str(port)],
        ccgw_workdir,
        h.clean_env(),
        owner=None,
    )
    try:
        proc.wait_ready(f"{url}/_mock/requests")
    except RuntimeError as e:
        _fail_not_ready(proc, e)
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def mock_url(_mock_process) -> str:
    return _mock_process


@pytest.fixture(scope="session")
def mock(mock_url) -> MockUpstream:
    return MockUpstream(mock_url)


# ---------------------------------------------------------------- gateway


def gateway_env(mock_url: str) -> dict[str, str]:
    return h.clean_env(
        ANTHROPIC_BASE_URL=mock_url,
        ANTHROPIC_API_KEY="sk-test",
        CCGW_CLI_MAX_RETRIES="0",
    )


@pytest.fixture(scope="session")
def gateway(mock_url, ccgw_workdir):
    port = h.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(
        "gateway",
        [
            "serve",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--data-dir", str(ccgw_workdir / "data"),
        ],
        ccgw_workdir,
        gateway_env(mock_url),
        owner=None,
    )
    try:
        health = proc.wait_ready(f"{url}/health")
    except RuntimeError as e:
        _fail_not_ready(proc, e)
    proc.url = url
    proc.health = health
    yield proc
    problems = h.shutdown_and_check(proc)
    if problems:
        pytest.fail("\n".join(problems) + "\n" + proc.logs(), pytrace=False)


@pytest.fixture(scope="session")
def gateway_url(gateway) -> str:
    return gateway.url


@pytest.fixture(scope="session")
def openai_client(gateway_url):
    client = openai.OpenAI(
        base_url=gateway_url + "/v1",
        api_key="anything",
        max_retries=0,
        timeout=REQUEST_TIMEOUT,
    )
    yield client
    client.close()


@pytest.fixture
def async_openai_client(gateway_url):
    """A fresh AsyncOpenAI per test: its connections belong to the event loop that uses them.

    Tests drive it with asyncio.run(...) and close it inside that loop.
    """
    return openai.AsyncOpenAI(
        base_url=gateway_url + "/v1",
        api_key="anything",
        max_retries=0,
        timeout=REQUEST_TIMEOUT,
    )


# ---------------------------------------------------------------- extra gateways


@pytest.fixture
def launch_ccgw(request, tmp_path) -> Callable[..., h.CcgwProcess]:
    """Starts a further ccgw process for one test; anything still running is stopped afterwards."""
    started: list[h.CcgwProcess] = []

    def launch(name: str, args: list[str], env: dict[str, str]) -> h.CcgwProcess:
        proc = _start(name, args, tmp_path / name, env, owner=request.node.nodeid)
        started.append(proc)
        return proc

    yield launch
    for proc in started:
        proc.stop(signal.SIGKILL, timeout=5)
        proc.reap_leftovers(proc.leftovers(grace=1))
