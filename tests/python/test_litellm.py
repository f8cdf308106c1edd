"""LiteLLM in front of the gateway: its Python SDK with the `openai/` (and `anthropic/`)
provider, and the LiteLLM proxy started with the config from docs/litellm.md."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import uuid

import httpx
import litellm
import openai
import pytest

import ccgw_harness as h

DOCS = h.REPO_ROOT / "docs" / "litellm.md"
LITELLM_BIN = h.REPO_ROOT / ".tools" / "venv" / "bin" / "litellm"
PROXY_READY_TIMEOUT = 120.0

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def marker() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def via_openai(gateway_url):
    """Keyword arguments that point litellm.completion at the gateway's OpenAI API."""
    return {"api_base": gateway_url + "/v1", "api_key": "x", "timeout": 60, "num_retries": 0}


# ---------------------------------------------------------------- the SDK


def test_completion(via_openai):
    prompt = f"hello from litellm {marker()}"
    resp = litellm.completion(
        model="openai/sonnet", messages=[{"role": "user", "content": prompt}], **via_openai
    )
    assert resp.choices[0].message.content == prompt
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


def test_completion_streamed(via_openai):
    stream = litellm.completion(
        model="openai/sonnet",
        messages=[{"role": "user", "content": "[[words:9]]"}],
        stream=True,
        **via_openai,
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == " ".join(f"w{i}" for i in range(1, 10))
    assert len(pieces) > 1


def test_streamed_upstream_overload_keeps_its_status(via_openai):
    # An upstream 529 before any output is the gateway's 503 with retry-after, not a 500
    # inside a 200 stream.
    with pytest.raises(litellm.ServiceUnavailableError) as exc:
        stream = litellm.completion(
            model="openai/sonnet",
            messages=[{"role": "user", "content": f"[[fail:529]] {marker()}"}],
            stream=True,
            **via_openai,
        )
        list(stream)
    assert exc.value.status_code == 503


def test_tool_call_round_trip(via_openai):
    tag = marker()
    messages = [
        {"role": "user", "content": f'{tag} [[tool:get_weather {{"city":"Rome"}}]]'},
    ]
    first = litellm.completion(model="openai/sonnet", messages=messages, tools=[WEATHER], **via_openai)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Rome"}

    messages += [
        {
            "role": "assistant",
            "content": choice.message.content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": f"warm {tag}"},
    ]
    second = litellm.completion(model="openai/sonnet", messages=messages, tools=[WEATHER], **via_openai)
    assert second.choices[0].message.content == f"done | tool results: warm {tag}"
    assert second.choices[0].finish_reason == "stop"


def test_extra_body_options_pass_through(via_openai, mock):
    tag = marker()
    litellm.completion(
        model="openai/sonnet",
        messages=[{"role": "user", "content": f"options {tag}"}],
        extra_body={"thinking": {"type": "disabled"}, "effort": "low"},
        **via_openai,
    )
    call = [c for c in mock.model_calls() if f"options {tag}" in json.dumps(c["body"])][-1]
    assert call["body"]["thinking"] == {"type": "disabled"}
    assert call["body"]["output_config"]["effort"] == "low"


def test_anthropic_provider(gateway_url):
    prompt = f"through the anthropic provider {marker()}"
    resp = litellm.completion(
        model="anthropic/sonnet",
        api_base=gateway_url,
        api_key="x",
        messages=[{"role": "user", "content": prompt}],
        timeout=60,
        num_retries=0,
    )
    assert resp.choices[0].message.content == prompt


# ---------------------------------------------------------------- the proxy


def docs_config(gateway_url: str) -> str:
    """The proxy config of docs/litellm.md, pointed at the test gateway."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks, f"no yaml block in {DOCS}"
    config = blocks[0]
    assert "http://127.0.0.1:8080" in config
    return config.replace("http://127.0.0.1:8080", gateway_url)


@pytest.fixture
def litellm_proxy(gateway_url, tmp_path):
    config = tmp_path / "litellm-config.yaml"
    config.write_text(docs_config(gateway_url))
    port = h.free_port()
    master_key = "sk-" + secrets.token_hex(32)
    env = h.clean_env(
        CCGW_API_KEY="any-key",
        LITELLM_MASTER_KEY=master_key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    log = tmp_path / "litellm.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(LITELLM_BIN), "--config", str(config), "--port", str(port), "--host", "127.0.0.1"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PROXY_READY_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"litellm exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"litellm not ready within {PROXY_READY_TIMEOUT:.0f}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url, master_key
    finally:
        # The proxy runs in its own process group; stop that group only.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_proxy_forwards_a_streamed_request(litellm_proxy):
    url, master_key = litellm_proxy
    with openai.OpenAI(base_url=url, api_key=master_key, max_retries=0, timeout=60) as client:
        stream = client.chat.completions.create(
            model="claude-sonnet",
            messages=[{"role": "user", "content": "[[words:7]]"}],
            stream=True,
        )
        pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
        assert "".join(pieces) == " ".join(f"w{i}" for i in range(1, 8))
        assert len(pieces) > 1
        # The anthropic/ entry of the same config works too.
        prompt = f"proxied through anthropic/ {marker()}"
        resp = client.chat.completions.create(
            model="claude-sonnet-anthropic", messages=[{"role": "user", "content": prompt}]
        )
        assert resp.choices[0].message.content == prompt
