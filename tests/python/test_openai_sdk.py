"""The gateway seen through the official OpenAI Python SDK, against the scripted mock model.

Mock directives (in the newest user message): no directive echoes the prompt;
[[text:X]] replies X; [[think:X]] adds a thinking block X; [[words:N]] replies
"w1 ... wN"; [[usage:IN,OUT]] sets the reported token counts; [[fail:STATUS]] makes
the upstream fail; [[report:history|system|tools]] describes what the model received.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import openai
import pydantic
import pytest

MODEL = "sonnet"


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(1, n + 1))


def marker() -> str:
    """A token unique to one test, so its echo cannot come from another request."""
    return uuid.uuid4().hex[:12]


def reasoning_of(obj) -> str | None:
    """`reasoning_content` of a message or a stream delta (an extra field for the SDK)."""
    value = getattr(obj, "reasoning_content", None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get("reasoning_content")
    return value


def ask(client: openai.OpenAI, prompt: str, model: str = MODEL, **kwargs):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **kwargs
    )


def after_prefix(text: str, prefix: str) -> str:
    assert text.startswith(prefix), f"expected a reply starting with {prefix!r}, got {text[:300]!r}"
    return text[len(prefix) :]


# ---------------------------------------------------------------- health and models


def test_health_reports_cli_version(gateway_url):
    r = httpx.get(f"{gateway_url}/health", timeout=10, trust_env=False)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert "2.1.197" in str(body["cli_version"])
    assert isinstance(body["live_processes"], int) and body["live_processes"] >= 0
    assert isinstance(body["queue_depth"], int) and body["queue_depth"] >= 0


def test_models_list_and_retrieve(openai_client):
    ids = [m.id for m in openai_client.models.list()]
    assert "sonnet" in ids
    for expected in (
        "opus",
        "haiku",
        "claude-sonnet-5",
        "claude-opus-4-8",
        "claude-haiku-4-5",
        "default",
    ):
        assert expected in ids, f"{expected!r} missing from {ids}"
    assert len(ids) == len(set(ids)), f"duplicate model ids: {ids}"
    model = openai_client.models.retrieve("sonnet")
    assert model.id == "sonnet"
    assert model.object == "model"


def test_retrieve_unknown_model_is_404(openai_client):
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("no-such-model-xyz")


# ---------------------------------------------------------------- non-streaming


def test_sync_echo(openai_client):
    prompt = f"Hello from the OpenAI SDK, echo check {marker()}."
    resp = ask(openai_client, prompt)
    assert resp.object == "chat.completion"
    assert resp.id
    assert len(resp.choices) == 1
    choice = resp.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == prompt
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0
    assert resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_sync_usage_matches_upstream(openai_client):
    resp = ask(openai_client, "[[usage:11,7]] [[text:counted]]")
    assert resp.choices[0].message.content == "counted"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 11
    assert resp.usage.completion_tokens == 7
    assert resp.usage.total_tokens == 18


def test_text_directive(openai_client):
    tag = marker()
    resp = ask(openai_client, f"[[text:scripted reply {tag}]]")
    assert resp.choices[0].message.content == f"scripted reply {tag}"


def test_request_reaches_mock_with_credentials_and_model(openai_client, mock):
    mock.clear()
    prompt = f"route check {marker()}"
    resp = ask(openai_client, prompt, model="opus")
    assert resp.choices[0].message.content == prompt
    calls = mock.model_calls()
    ours = [c for c in calls if prompt in json.dumps(c["body"])]
    assert ours, f"no model call carried the prompt; model calls seen: {len(calls)}"
    call = ours[-1]
    headers = {k.lower(): v for k, v in (call.get("headers") or {}).items()}
    # The gateway's upstream key reaches the model (the mock may log it redacted).
    credential = headers.get("x-api-key") or headers.get("authorization")
    assert credential, f"no credential header in {sorted(headers)}"
    if "redacted" not in credential:
        assert credential in ("sk-test", "Bearer sk-test")
    assert "opus" in str(call["body"].get("model", "")), call["body"].get("model")


def test_system_message_reaches_model(openai_client):
    persona = f"You are a pirate named Zed-{marker()}."
    resp = openai_client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": persona},
            {"role": "user", "content": "[[report:system]]"},
        ],
    )
    system = after_prefix(resp.choices[0].message.content, "system=")
    assert persona in system


def test_the_model_gets_exactly_the_clients_system_prompt(openai_client):
    # Nothing in front of it (the CLI's identity line) and nothing after it.
    persona = f"You are Zed-{marker()}, a terse assistant."
    resp = openai_client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": persona},
            {"role": "user", "content": "[[report:system]]"},
        ],
    )
    assert resp.choices[0].message.content == "system=" + json.dumps(persona)


def test_multi_turn_history_reaches_model(openai_client):
    tag = marker()
    turns = [
        ("user", f"first question alpha-{tag}"),
        ("assistant", f"first answer beta-{tag}"),
        ("user", f"second question gamma-{tag}"),
        ("assistant", f"second answer delta-{tag}"),
    ]
    messages = [{"role": "system", "content": "Answer briefly."}]
    messages += [{"role": role, "content": text} for role, text in turns]
    messages.append({"role": "user", "content": f"[[report:history]] third question epsilon-{tag}"})
    resp = openai_client.chat.completions.create(model=MODEL, messages=messages)
    history = json.loads(after_prefix(resp.choices[0].message.content, "history="))
    assert isinstance(history, list) and history
    assert all({"role", "text"} <= set(m) for m in history), history
    # The earlier turns appear, in order, before the newest user message.
    transcript = "\n".join(m["text"] for m in history)
    positions = [transcript.find(text) for _, text in turns]
    assert all(p >= 0 for p in positions), f"turns missing from history: {history}"
    assert positions == sorted(positions), f"turns out of order: {history}"
    assert history[-1]["role"] == "user"
    assert f"epsilon-{tag}" in history[-1]["text"]
    assert transcript.find(f"epsilon-{tag}") > positions[-1]


def test_reasoning_content_non_streaming(openai_client):
    tag = marker()
    resp = ask(openai_client, f"[[think:pondering {tag}]] [[text:answer {tag}]]")
    message = resp.choices[0].message
    assert message.content == f"answer {tag}"
    reasoning = reasoning_of(message)
    assert reasoning is not None, f"no reasoning_content in {message}"
    assert f"pondering {tag}" in reasoning
    assert f"pondering {tag}" not in message.content


# ---------------------------------------------------------------- structured output


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_strict_json_schema_is_enforced_by_the_clis_structured_output(openai_client, mock):
    tag = marker()
    prompt = f'{tag} [[text:Here you go:]] [[tool:StructuredOutput {{"name":"Bob","age":3}}]]'
    resp = openai_client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": prompt}], response_format=Person
    )
    message = resp.choices[0].message
    assert message.parsed == Person(name="Bob", age=3)
    # The object is the whole answer: no prose around it.
    assert json.loads(message.content) == {"name": "Bob", "age": 3}
    assert resp.choices[0].finish_reason == "stop"
    # The model was given the schema as the input schema of the CLI's StructuredOutput tool.
    call = [c for c in mock.model_calls() if tag in json.dumps(c["body"])][0]
    tool = [t for t in call["body"]["tools"] if t["name"] == "StructuredOutput"][0]
    assert tool["input_schema"]["required"] == ["name", "age"]


def test_strict_json_schema_streams_only_the_object(openai_client):
    prompt = f'{marker()} [[text:prose]] [[tool:StructuredOutput {{"name":"Ann","age":40}}]]'
    with openai_client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": prompt}], response_format=Person
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Person(name="Ann", age=40)


def test_output_that_never_matches_the_schema_is_an_error(openai_client):
    # The model's call is invalid (age is not an integer) and it never calls the tool again.
    prompt = f'{marker()} [[tool:StructuredOutput {{"name":"Bob","age":"three"}}]]'
    with pytest.raises(openai.APIStatusError) as exc:
        openai_client.chat.completions.parse(
            model=MODEL, messages=[{"role": "user", "content": prompt}], response_format=Person
        )
    assert exc.value.status_code == 502
    assert "schema" in exc.value.message


# ---------------------------------------------------------------- streaming


def test_sync_streaming(openai_client):
    stream = ask(
        openai_client,
        "[[words:12]] [[usage:21,12]]",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "empty stream"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "chunks of one completion must share an id"

    choice_chunks = [c for c in chunks if c.choices]
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in choice_chunks if c.choices[0].delta.content]
    assert "".join(contents) == words(12)
    assert len(contents) > 1, "the reply arrived in a single chunk: not streamed"
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in choice_chunks[:-1])

    last = chunks[-1]
    assert last.choices == [], "the usage chunk must come last, with no choices"
    assert last.usage is not None
    assert last.usage.prompt_tokens == 21
    assert last.usage.completion_tokens == 12
    assert last.usage.total_tokens == 33
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_reasoning_before_content(openai_client):
    tag = marker()
    stream = ask(openai_client, f"[[think:step by step {tag}]] [[text:done {tag}]]", stream=True)
    order = []
    reasoning, content = "", ""
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        r = reasoning_of(delta)
        if r:
            reasoning += r
            order.append("reasoning")
        if delta.content:
            content += delta.content
            order.append("content")
    assert f"step by step {tag}" in reasoning
    assert content == f"done {tag}"
    assert order.index("content") > order.index("reasoning")


def test_streaming_slow_chunks_arrive_incrementally(openai_client):
    stream = ask(openai_client, "[[words:4]] [[slow:400]]", stream=True)
    arrivals = []
    text = ""
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            arrivals.append(time.monotonic())
    assert text == words(4)
    assert len(arrivals) > 1
    # Chunks are sent as they come, not buffered until the end.
    assert arrivals[-1] - arrivals[0] >= 0.6


# ---------------------------------------------------------------- async client


def test_async_non_streaming(async_openai_client):
    prompt = f"async echo {marker()}"

    async def run():
        async with async_openai_client as client:
            return await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": prompt}]
            )

    resp = asyncio.run(run())
    assert resp.choices[0].message.content == prompt
    assert resp.choices[0].finish_reason == "stop"


def test_async_streaming(async_openai_client):
    async def run():
        async with async_openai_client as client:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "[[words:7]]"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    choice_chunks = [c for c in chunks if c.choices]
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in choice_chunks)
    assert text == words(7)
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_async_concurrent_requests_do_not_mix(async_openai_client):
    prompts = [f"concurrent {i} {marker()}" for i in range(3)]

    async def run():
        async with async_openai_client as client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=MODEL, messages=[{"role": "user", "content": p}]
                    )
                    for p in prompts
                )
            )

    results = asyncio.run(run())
    assert [r.choices[0].message.content for r in results] == prompts


# ---------------------------------------------------------------- errors


def test_unknown_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as exc:
        ask(openai_client, "hello", model="no-such-model-xyz")
    assert exc.value.status_code == 404
    assert exc.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("upstream_status", "gateway_status", "error_class"),
    [
        (529, 503, openai.APIStatusError),
        (429, 429, openai.RateLimitError),
        (401, 401, openai.AuthenticationError),
    ],
)
def test_upstream_failure_maps_to_status(openai_client, upstream_status, gateway_status, error_class):
    with pytest.raises(error_class) as exc:
        ask(openai_client, f"[[fail:{upstream_status}]]")
    assert exc.value.status_code == gateway_status
    body = exc.value.body
    assert isinstance(body, dict) and body.get("message"), f"no OpenAI-style error body: {body!r}"


@pytest.mark.parametrize(
    ("upstream_status", "gateway_status", "error_class"),
    [
        (429, 429, openai.RateLimitError),
        (529, 503, openai.InternalServerError),
        (401, 401, openai.AuthenticationError),
    ],
)
def test_streaming_failure_before_output_keeps_its_status(
    openai_client, upstream_status, gateway_status, error_class
):
    with pytest.raises(error_class) as exc:
        stream = ask(openai_client, f"[[fail:{upstream_status}]] {marker()}", stream=True)
        list(stream)
    assert exc.value.status_code == gateway_status
    if gateway_status in (429, 503):
        assert exc.value.response.headers.get("retry-after"), exc.value.response.headers


def test_streaming_rate_limit_is_retried_by_the_sdk(gateway_url):
    # The first attempt gets the upstream's 429 (with retry-after); the SDK retries by itself.
    prompt = f"[[fail:429:1]] [[text:second time lucky]] {marker()}"
    with openai.OpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=1, timeout=60) as client:
        stream = ask(client, prompt, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "second time lucky"


def test_n_greater_than_one_is_rejected(openai_client):
    with pytest.raises(openai.BadRequestError) as exc:
        ask(openai_client, "hello", n=2)
    assert exc.value.status_code == 400


def test_gateway_still_serves_after_errors(openai_client):
    prompt = f"still alive {marker()}"
    assert ask(openai_client, prompt).choices[0].message.content == prompt
