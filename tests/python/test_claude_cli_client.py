"""The Claude Code CLI itself as a client of the gateway's Anthropic API: a second, default-tools
`claude -p` points its ANTHROPIC_BASE_URL at the gateway (which runs its own CLI against the mock
model) and makes a Bash round trip.

What this CLI sends that other clients do not: a `HEAD /` probe, a `{"role":"system"}` message
inside `messages` (its agent listing, with the `mid-conversation-system` beta), its whole tool set
(Agent, Bash, Edit, ...) as client tools, and a system prompt of its own.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import httpx
import pytest

import ccgw_harness as h

CLI_TIMEOUT = 120


def cli_bin() -> Path:
    configured = os.environ.get("CCGW_CLAUDE_BIN")
    path = Path(configured) if configured else h.REPO_ROOT / ".tools/cli/node_modules/.bin/claude"
    if not path.exists():
        pytest.fail(f"the Claude Code CLI is not installed at {path}: run scripts/setup.sh", pytrace=False)
    return path


def run_cli(gateway_url: str, home: Path, prompt: str, *flags: str) -> list[dict]:
    """Run `claude -p PROMPT` against the gateway in a fresh home; its stream-json lines."""
    home.mkdir(parents=True, exist_ok=True)
    env = h.clean_env(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        ANTHROPIC_BASE_URL=gateway_url,
        ANTHROPIC_API_KEY="sk-outer-client",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
        DISABLE_AUTOUPDATER="1",
    )
    args = [str(cli_bin()), "-p", prompt, "--output-format", "stream-json", "--verbose", *flags]
    code, out, err = h.run_command(args, home, env, CLI_TIMEOUT)
    assert code == 0, f"client CLI exit {code}:\n{out[-3000:]}\n{err[-3000:]}"
    return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]


def test_root_answers_head_and_get(gateway_url):
    assert httpx.head(gateway_url + "/", timeout=10, trust_env=False).status_code == 200
    assert httpx.get(gateway_url + "/", timeout=10, trust_env=False).status_code == 200


def test_claude_code_cli_runs_a_bash_round_trip_through_the_gateway(gateway_url, mock, tmp_path):
    tag = uuid.uuid4().hex[:10]
    command = {"command": f"echo from-bash-{tag}", "description": "say hi"}
    lines = run_cli(
        gateway_url,
        tmp_path / "client-home",
        f"run it {tag} [[tool:Bash {json.dumps(command)}]]",
        "--allowedTools=Bash",
    )
    result = lines[-1]
    assert result["type"] == "result"
    assert result["is_error"] is False, result
    # The model (behind the gateway) saw the client's Bash output and said so.
    assert result["result"] == f"done | tool results: from-bash-{tag}", result["result"]

    # The client CLI itself ran Bash: the model's call came back to it as its own tool.
    calls = [
        b
        for l in lines
        if l["type"] == "assistant"
        for b in l["message"]["content"]
        if b.get("type") == "tool_use"
    ]
    assert [c["name"] for c in calls] == ["Bash"]
    assert calls[0]["input"]["command"] == f"echo from-bash-{tag}"
    outputs = [
        b
        for l in lines
        if l["type"] == "user"
        for b in l["message"]["content"]
        if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    assert outputs and f"from-bash-{tag}" in json.dumps(outputs[0]["content"])

    # The client's mid-conversation system message reached the model, in its system prompt.
    inner = [c for c in mock.model_calls() if tag in json.dumps(c["body"])]
    assert inner, "the model never received the client's prompt"
    system = json.dumps(inner[0]["body"].get("system"))
    assert "Available agent types for the Agent tool" in system
    # ... and the client's tools reached it as tools (behind the gateway's MCP prefix).
    names = [t["name"] for t in inner[0]["body"]["tools"]]
    assert "mcp__client__Bash" in names and "mcp__client__Read" in names
