"""The gateway's Anthropic Messages API seen through the official `anthropic` Python SDK,
against the scripted mock model.

Mock directives (in the newest user message): no directive echoes the prompt; [[text:X]]
replies X; [[think:X]] adds a thinking block; [[words:N]] replies "w1 ... wN";
[[usage:IN,OUT]] sets the token counts; [[tool:NAME {json}]] calls a tool; [[fail:STATUS]]
makes the upstream fail; [[report:history|system]] describes what the model received.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import anthropic
import pytest

MODEL = "sonnet"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def marker() -> str:
    return uuid.uuid4().hex[:12]


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(1, n + 1))


def mock_signature(thinking: str) -> str:
    """The signature the mock model gives a thinking block (see mock_upstream.rs)."""
    digest = hashlib.sha256(thinking.encode()).digest()
    return base64.b64encode(b"ccgw-mock-thinking-signature:" + digest).decode()


def text_of(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


@pytest.fixture(scope="module")
def client(gateway_url):
    c = anthropic.Anthropic(base_url=gateway_url, api_key="anything", max_retries=0, timeout=60)
    yield c
    c.close()


def ask(client, prompt, **kwargs):
    kwargs.setdefault("max_tokens", 1024)
    return client.messages.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], **kwargs
    )


# ---------------------------------------------------------------- messages.create


def test_create_echo_with_usage(client):
    prompt = f"Hello from the Anthropic SDK {marker()}"
    msg = ask(client, prompt + " [[usage:13,5]]")
    assert msg.type == "message"
    assert msg.id.startswith("msg_")
    assert msg.role == "assistant"
    assert msg.model == MODEL
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == prompt
    assert msg.stop_reason == "end_turn"
    assert msg.stop_sequence is None
    assert msg.usage.input_tokens == 13
    assert msg.usage.output_tokens == 5


def test_create_with_system_blocks_thinking_and_stop_sequence(client):
    tag = marker()
    msg = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        system=[{"type": "text", "text": f"You are SYS-{tag}."}],
        messages=[{"role": "user", "content": f"[[think:musing {tag}]] [[report:system]]"}],
    )
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == f"musing {tag}"
    assert f"You are SYS-{tag}." in msg.content[1].text

    cut = ask(client, f"[[text:keep {tag} HALT drop]]", stop_sequences=["HALT"])
    assert text_of(cut) == f"keep {tag} "
    assert cut.stop_reason == "stop_sequence"
    assert cut.stop_sequence == "HALT"


def test_the_model_gets_exactly_the_clients_system_prompt(client):
    persona = f"You are SYS-{marker()}."
    msg = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system=persona,
        messages=[{"role": "user", "content": "[[report:system]]"}],
    )
    assert text_of(msg) == "system=" + json.dumps(persona)


def test_multi_turn_history_reaches_model(client):
    tag = marker()
    first = ask(client, f"alpha-{tag}")
    history = [
        {"role": "user", "content": f"alpha-{tag}"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": f"[[report:history]] beta-{tag}"},
    ]
    second = client.messages.create(model=MODEL, max_tokens=1024, messages=history)
    report = json.loads(text_of(second).removeprefix("history="))
    texts = [m["text"] for m in report if m["text"]]
    assert texts[-1].endswith(f"beta-{tag}")
    assert any(t.endswith(f"alpha-{tag}") for t in texts[:-1]), texts
    assert [m["role"] for m in report if m["text"]][-3:] == ["user", "assistant", "user"]


def test_thinking_and_effort_fields_reach_the_model(client, mock):
    tag = marker()
    ask(
        client,
        f"options {tag}",
        thinking={"type": "disabled"},
        extra_body={"effort": "low"},
    )
    call = [c for c in mock.model_calls() if f"options {tag}" in json.dumps(c["body"])][-1]
    assert call["body"]["thinking"] == {"type": "disabled"}
    assert call["body"]["output_config"]["effort"] == "low"


# ---------------------------------------------------------------- messages.stream


def test_stream_event_order_and_final_message(client):
    tag = marker()
    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": f"[[think:plan {tag}]] [[words:8]] [[usage:17,8]]"}],
    ) as stream:
        raw = []
        text = ""
        for event in stream:
            if event.type == "text":
                text += event.text
            elif event.type not in ("thinking", "signature", "input_json", "citation"):
                raw.append(event)
        final = stream.get_final_message()

    kinds = [e.type for e in raw]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    blocks = [(e.type, e.index) for e in raw if e.type.startswith("content_block")]
    starts = [e.content_block.type for e in raw if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    # Each block: start, deltas, stop, in index order.
    assert blocks[0] == ("content_block_start", 0)
    stop0 = blocks.index(("content_block_stop", 0))
    assert all(i == 0 for _, i in blocks[:stop0])
    assert blocks[stop0 + 1] == ("content_block_start", 1)
    assert blocks[-1] == ("content_block_stop", 1)
    assert sum(1 for k, i in blocks if k == "content_block_delta" and i == 1) >= 8
    assert text == words(8)

    assert final.id.startswith("msg_")
    assert final.model == MODEL
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == f"plan {tag}"
    assert final.content[1].text == words(8)
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 17
    assert final.usage.output_tokens == 8


def test_stream_text_stream_helper(client):
    with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "[[words:5]]"}]
    ) as stream:
        pieces = list(stream.text_stream)
    assert "".join(pieces) == words(5)
    assert len(pieces) > 1


def test_thinking_blocks_carry_the_upstreams_signature(client):
    thinking = f"signed thoughts {marker()}"
    msg = ask(client, f"[[think:{thinking}]] [[text:ok]]")
    assert msg.content[0].type == "thinking"
    assert msg.content[0].signature == mock_signature(thinking)

    thinking = f"streamed thoughts {marker()}"
    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": f"[[think:{thinking}]] [[text:ok]]"}],
    ) as stream:
        signatures = [e.signature for e in stream if e.type == "signature"]
        final = stream.get_final_message()
    assert signatures == [mock_signature(thinking)]
    assert final.content[0].signature == mock_signature(thinking)


def test_stream_message_start_reports_the_input_tokens(client):
    stream = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        stream=True,
        messages=[{"role": "user", "content": f"[[usage:23,4]] [[text:ok]] {marker()}"}],
    )
    events = list(stream)
    assert events[0].type == "message_start"
    assert events[0].message.usage.input_tokens == 23
    assert events[-2].type == "message_delta"
    assert events[-2].usage.input_tokens == 23
    assert events[-2].usage.output_tokens == 4


# ---------------------------------------------------------------- tools


def test_full_tool_loop(client):
    tag = marker()
    messages = [
        {
            "role": "user",
            "content": f'Weather in Paris? {tag} [[tool:get_weather {{"city":"Paris"}}]]',
        }
    ]
    first = client.messages.create(
        model=MODEL, max_tokens=1024, tools=[WEATHER_TOOL], messages=messages
    )
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert calls[0].input == {"city": "Paris"}
    assert calls[0].id

    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": calls[0].id, "content": f"sunny {tag}"}
            ],
        },
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=1024, tools=[WEATHER_TOOL], messages=messages
    )
    assert second.stop_reason == "end_turn"
    assert text_of(second) == f"done | tool results: sunny {tag}"


def test_streamed_tool_loop(client):
    tag = marker()
    messages = [
        {"role": "user", "content": f'{tag} [[text:let me check]] [[tool:get_weather {{"city":"Oslo"}}]]'}
    ]
    with client.messages.stream(
        model=MODEL, max_tokens=1024, tools=[WEATHER_TOOL], messages=messages
    ) as stream:
        partial = "".join(e.partial_json for e in stream if e.type == "input_json")
        first = stream.get_final_message()
    assert json.loads(partial) == {"city": "Oslo"}
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    call = first.content[1]
    assert call.input == {"city": "Oslo"}

    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "snow"}],
        },
    ]
    with client.messages.stream(
        model=MODEL, max_tokens=1024, tools=[WEATHER_TOOL], messages=messages
    ) as stream:
        final = stream.get_final_message()
    assert text_of(final) == "done | tool results: snow"


# ---------------------------------------------------------------- models


def test_models_in_anthropics_shape(client):
    models = list(client.models.list(limit=3))  # pages through the whole table
    ids = [m.id for m in models]
    assert "sonnet" in ids and "claude-sonnet-5" in ids
    assert len(ids) == len(set(ids))
    for m in models:
        assert m.type == "model"
        assert m.display_name
        assert m.created_at.year >= 2024
    assert {m.id: m.display_name for m in models}["claude-opus-4-8"] == "Claude Opus 4.8"
    page = client.models.list(limit=2)
    assert len(page.data) == 2 and page.has_more is True
    assert page.first_id == page.data[0].id and page.last_id == page.data[1].id
    one = client.models.retrieve("claude-sonnet-5")
    assert (one.id, one.type, one.display_name) == ("claude-sonnet-5", "model", "Claude Sonnet 5")
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.models.retrieve("no-such-model")
    assert exc.value.body["error"]["type"] == "not_found_error"


# ---------------------------------------------------------------- count_tokens and errors


def test_count_tokens(client):
    result = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 200}]
    )
    assert result.input_tokens == 50


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.body["error"]["type"] == "not_found_error"


def test_bad_request_names_the_field(client):
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(
            model=MODEL,
            max_tokens=10,
            tools=[{"name": "broken", "input_schema": {"type": "string"}}],
            messages=[{"role": "user", "content": "x"}],
        )
    error = exc.value.body["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("tools.0.input_schema: ")
    assert "'broken'" in error["message"]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "prefill"}],
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message.",
        ),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}]},
                {"role": "user", "content": "no result"},
            ],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
            "toolu_a. Each `tool_use` block must have a corresponding `tool_result` block in the "
            "next message.",
        ),
        (
            [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_zz", "content": "x"}]}],
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_zz. "
            "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
            "message.",
        ),
    ],
)
def test_bad_requests_are_worded_as_the_real_api_words_them(client, messages, message):
    # Clients match on this wording (the Claude Code CLI decides its fallbacks by it).
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model=MODEL, max_tokens=10, tools=[WEATHER_TOOL], messages=messages)
    assert exc.value.body["error"] == {"type": "invalid_request_error", "message": message}


def test_system_messages_inside_messages_are_accepted(client):
    tag = marker()
    msg = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="top-level",
        messages=[
            {"role": "user", "content": "[[report:system]]"},
            {"role": "system", "content": f"mid-conversation {tag}"},
        ],
        extra_headers={"anthropic-beta": "mid-conversation-system-2026-04-07"},
    )
    assert text_of(msg).startswith("system=")
    assert f"mid-conversation {tag}" in text_of(msg)
    assert "top-level" in text_of(msg)


@pytest.mark.parametrize(
    ("upstream", "status", "error_class", "kind"),
    [
        (529, 503, anthropic.InternalServerError, "overloaded_error"),
        (429, 429, anthropic.RateLimitError, "rate_limit_error"),
        (401, 401, anthropic.AuthenticationError, "authentication_error"),
    ],
)
def test_upstream_failures(client, upstream, status, error_class, kind):
    with pytest.raises(error_class) as exc:
        ask(client, f"[[fail:{upstream}]] {marker()}")
    assert exc.value.status_code == status
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == kind
