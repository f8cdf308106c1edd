"""Client function calling with real clients: the official `openai` SDK and LiteLLM each run a
complete tool loop (call the model, run the requested tools locally, send the results, repeat
until the model answers) against the gateway, with the real CLI behind it."""

from __future__ import annotations

import json
import uuid

import litellm
import openai

MODEL = "sonnet"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Local time", "parameters": {"type": "object", "properties": {}}},
    },
]


def run_tool(name: str, arguments: str) -> str:
    args = json.loads(arguments or "{}")
    if name == "get_weather":
        return f"sunny in {args['city']}"
    if name == "get_time":
        return "noon"
    raise AssertionError(f"unexpected tool {name}")


def agent(create, prompt: str, max_rounds: int = 4):
    """A minimal tool-calling agent; returns (final message, rounds, executed calls)."""
    messages = [{"role": "user", "content": prompt}]
    executed = []
    for rounds in range(1, max_rounds + 1):
        choice = create(messages).choices[0]
        if choice.finish_reason != "tool_calls":
            return choice.message, rounds, executed
        calls = choice.message.tool_calls
        messages.append(
            {
                "role": "assistant",
                "content": choice.message.content,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
                    for c in calls
                ],
            }
        )
        # Answer in reverse order: the gateway must match results by id, not position.
        for c in reversed(calls):
            executed.append(c.function.name)
            messages.append({"role": "tool", "tool_call_id": c.id, "content": run_tool(c.function.name, c.function.arguments)})
    raise AssertionError("the agent did not finish")


def test_openai_sdk_tool_loop(openai_client: openai.OpenAI):
    tag = uuid.uuid4().hex[:8]
    prompt = f'{tag} [[tool:get_weather {{"city":"Oslo"}}]] [[tool:get_time]]'
    final, rounds, executed = agent(
        lambda messages: openai_client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS),
        prompt,
    )
    assert rounds == 2
    assert sorted(executed) == ["get_time", "get_weather"]
    assert final.content == "done | tool results: sunny in Oslo | noon"
    assert not final.tool_calls


def test_openai_sdk_streamed_tool_calls(openai_client: openai.OpenAI):
    tag = uuid.uuid4().hex[:8]
    stream = openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f'{tag} [[tool:get_weather {{"city":"Lima"}}]]'}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict] = {}
    finish = None
    first = None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        first = first or choice.delta
        for d in choice.delta.tool_calls or []:
            entry = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            entry["id"] = d.id or entry["id"]
            if d.function and d.function.name:
                entry["name"] = d.function.name
            if d.function and d.function.arguments:
                entry["arguments"] += d.function.arguments
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Lima"}
    # A reply made only of tool calls has no text part: OpenAI's first chunk says
    # `content: null`, never `""` (which clients show as an empty text part).
    assert first.role == "assistant"
    assert first.content is None


def test_litellm_tool_calling_agent(gateway_url: str):
    tag = uuid.uuid4().hex[:8]
    prompt = f'{tag} [[tool:get_weather {{"city":"Kyoto"}}]]'
    final, rounds, executed = agent(
        lambda messages: litellm.completion(
            model=f"openai/{MODEL}", api_base=gateway_url + "/v1", api_key="anything", messages=messages, tools=TOOLS
        ),
        prompt,
    )
    assert rounds == 2
    assert executed == ["get_weather"]
    assert final.content == "done | tool results: sunny in Kyoto"
