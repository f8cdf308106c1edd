"""`ccgw serve --demo`: the gateway with its built-in mock model, no credentials at all."""

from __future__ import annotations

import uuid

import openai

import ccgw_harness as h


def test_demo_mode_serves_without_credentials(launch_ccgw, tmp_path):
    port = h.free_port()
    url = f"http://127.0.0.1:{port}"
    env = h.clean_env()  # no ANTHROPIC_*, CLAUDE_CODE_* or CCGW_* settings (but CCGW_CLAUDE_BIN)
    assert not any(k.startswith("ANTHROPIC_") for k in env)
    gateway = launch_ccgw(
        "demo-gateway",
        [
            "serve", "--demo",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--data-dir", str(tmp_path / "data"),
        ],
        env,
    )
    health = gateway.wait_ready(f"{url}/health")
    assert health["status"] == "ok"

    prompt = f"demo echo {uuid.uuid4().hex[:12]}"
    with openai.OpenAI(base_url=url + "/v1", api_key="anything", max_retries=0, timeout=60) as client:
        resp = client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": prompt}]
        )
    assert resp.choices[0].message.content == prompt
    assert resp.choices[0].finish_reason == "stop"

    problems = h.shutdown_and_check(gateway)
    assert not problems, "\n".join(problems)
    assert gateway.proc.returncode is not None
