"""schemathesis against the running gateway: every operation of /openapi.json, fed generated
input, and no input may produce a 5xx (`not_a_server_error`).

The gateway runs under its defaults (warm pool on, temporary workspaces) with the demo
upstream: once with no key (every route open, the default), once with an admin key sent on
every request (the key check, the key's limits and the admin-only routes run too). The number
of examples per operation is bounded so the two runs stay within about three minutes.

A session is made first and its id given to every `/api/sessions/{id}/...` operation but
`DELETE` (a config file's `parameters`), so generated bodies reach the session's handlers
rather than stopping at a 404.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import ccgw_harness as h

ADMIN_KEY = "sk-admin-schemathesis"
# SSE feeds stream until the client leaves: a generated request would only time out there.
# The console's own pages are HTML for a browser (tested in web/tests).
EXCLUDE = r"/events$|^/(admin|docs)$|^/admin/$"


def _schemathesis() -> str:
    exe = Path(sys.executable).parent / "schemathesis"
    if not exe.exists():
        pytest.fail(f"schemathesis is not installed in {exe.parent} (tests/python/requirements.txt)")
    return str(exe)


def _run(launch_ccgw, tmp_path, name: str, examples: int, key: str | None) -> None:
    port = h.free_port()
    url = f"http://127.0.0.1:{port}"
    env = h.clean_env(CCGW_API_KEYS=key) if key else h.clean_env()
    gateway = launch_ccgw(
        name,
        ["serve", "--demo", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(tmp_path / name / "data")],
        env,
    )
    gateway.wait_ready(f"{url}/health")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    made = httpx.post(f"{url}/api/sessions", json={"title": "schemathesis"}, headers=headers,
                      timeout=60, trust_env=False)
    assert made.status_code == 201, made.text
    session = made.json()["id"]
    config = tmp_path / f"{name}.toml"
    config.write_text(
        "[[operations]]\n"
        'include-path-regex = "^/api/sessions/\\\\{id\\\\}"\n'
        'exclude-method = "DELETE"\n'
        f'parameters = {{ "path.id" = "{session}" }}\n'
    )
    args = [
        _schemathesis(), "--config-file", str(config), "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error",
        "--phases", "fuzzing",
        "--max-examples", str(examples),
        "--seed", "12",
        "--workers", "1",
        "--request-timeout", "60",
        "--exclude-path-regex", EXCLUDE,
        "--no-color",
    ]
    if key:
        args += ["--header", f"Authorization: Bearer {key}"]
    out = subprocess.run(
        # Its example cache goes under the test's own temp dir, not the checkout.
        args, capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    tested = re.search(r"Tested:\s+(\d+)", report)
    assert tested and int(tested.group(1)) > 80, report
    problems = h.shutdown_and_check(gateway)
    assert not problems, "\n".join(problems)


def test_no_generated_input_is_a_server_error(launch_ccgw, tmp_path):
    _run(launch_ccgw, tmp_path, "schemathesis-open", examples=4, key=None)


def test_no_generated_input_is_a_server_error_with_a_key(launch_ccgw, tmp_path):
    _run(launch_ccgw, tmp_path, "schemathesis-keyed", examples=2, key=ADMIN_KEY)
