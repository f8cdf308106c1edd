"""The OpenAI Responses API (`POST /v1/responses`) through the official OpenAI Python SDK:
create, stream, function tools, `previous_response_id`, stored responses, structured output.

Mock directives as in test_openai_sdk.py: no directive echoes the prompt; [[text:X]],
[[think:X]], [[words:N]], [[usage:IN,OUT]], [[tool:NAME {json}]], [[fail:STATUS]],
[[report:history|system]].
"""

from __future__ import annotations

import json

import httpx
import openai
import pydantic
import pytest

from ccgw_harness import marker, words

MODEL = "sonnet"

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_create_with_a_string_input(openai_client):
    prompt = f"hello responses {marker()}"
    r = openai_client.responses.create(model=MODEL, input=prompt + " [[usage:12,4]]")
    assert r.object == "response"
    assert r.id.startswith("resp_")
    assert r.status == "completed"
    assert r.model == MODEL
    assert r.output_text == prompt
    assert [o.type for o in r.output] == ["message"]
    assert r.output[0].role == "assistant"
    assert r.usage.input_tokens == 12
    assert r.usage.output_tokens == 4
    assert r.usage.total_tokens == 16


def test_instructions_and_message_items(openai_client):
    tag = marker()
    r = openai_client.responses.create(
        model=MODEL,
        instructions=f"You are BOT-{tag}.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "first q"}]},
            {"role": "assistant", "content": "first a"},
            {"role": "user", "content": "[[report:system]] [[report:history]]"},
        ],
    )
    system, history = r.output_text.split("\n", 1)
    assert system == "system=" + json.dumps(f"You are BOT-{tag}.")
    texts = [m["text"] for m in json.loads(history.removeprefix("history=")) if m["text"]]
    assert any(t.endswith("first q") for t in texts)
    assert "first a" in texts


def test_images_reach_the_model(openai_client):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    r = openai_client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "[[report:images]]"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{png}"},
        ]}],
    )
    images = json.loads(r.output_text.removeprefix("images="))
    assert images == [{"type": "base64", "media_type": "image/png", "data": png}]


def test_stream_sends_typed_events_in_order(openai_client):
    tag = marker()
    with openai_client.responses.stream(
        model=MODEL, input=f"[[think:plan {tag}]] [[words:6]] [[usage:9,6]]"
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "response.reasoning_summary_text.delta" in kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == words(6) and len(deltas) > 1
    thinking = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert thinking == f"plan {tag}"
    assert [o.type for o in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == f"plan {tag}"
    assert final.output[0].encrypted_content  # the thinking block's signature
    assert final.output_text == words(6)
    assert final.usage.input_tokens == 9


def test_function_tools_round_trip_through_the_live_process(openai_client):
    tag = marker()
    first = openai_client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=f'{tag} [[text:checking]] [[tool:get_weather {{"city":"Oslo"}}]]',
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}
    assert first.output_text == "checking"
    second = openai_client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": f"sunny {tag}"}],
    )
    assert second.status == "completed"
    assert second.output_text == f"done | tool results: sunny {tag}"
    assert second.previous_response_id == first.id


def test_streamed_function_call_arguments(openai_client):
    with openai_client.responses.stream(
        model=MODEL, tools=[WEATHER], input=f'{marker()} [[tool:get_weather {{"city":"Lima"}}]]'
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(args) == {"city": "Lima"}
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done and done[0].name == "get_weather"
    assert [o.type for o in final.output] == ["function_call"]


def test_previous_response_id_continues_the_conversation(openai_client):
    tag = marker()
    first = openai_client.responses.create(model=MODEL, input=f"remember {tag}")
    second = openai_client.responses.create(
        model=MODEL, previous_response_id=first.id, input="[[report:history]]"
    )
    history = json.loads(second.output_text.removeprefix("history="))
    texts = [m["text"] for m in history if m["text"]]
    assert texts[-3].endswith(f"remember {tag}")
    assert texts[-2] == f"remember {tag}"
    assert [m["role"] for m in history if m["text"]][-3:] == ["user", "assistant", "user"]


def test_stored_responses_can_be_retrieved_and_deleted(openai_client):
    r = openai_client.responses.create(model=MODEL, input=f"keep me {marker()}")
    got = openai_client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.status == "completed"
    openai_client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(r.id)
    unstored = openai_client.responses.create(model=MODEL, input=f"forget me {marker()}", store=False)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.responses.create(model=MODEL, previous_response_id=unstored.id, input="x")
    assert exc.value.code == "previous_response_not_found"
    assert exc.value.param == "previous_response_id"


def test_max_output_tokens_reaches_the_model_and_the_response(openai_client):
    tag = marker()
    r = openai_client.responses.create(model=MODEL, input=f"{tag} [[report:max_tokens]]", max_output_tokens=77)
    assert r.output_text == "max_tokens=77"
    assert r.max_output_tokens == 77


class City(pydantic.BaseModel):
    name: str
    population: int


def test_text_format_json_schema_is_enforced(openai_client):
    r = openai_client.responses.parse(
        model=MODEL,
        input=f'{marker()} [[text:prose]] [[tool:StructuredOutput {{"name":"Oslo","population":700000}}]]',
        text_format=City,
    )
    assert r.output_parsed == City(name="Oslo", population=700000)
    assert json.loads(r.output_text) == {"name": "Oslo", "population": 700000}


def test_errors_in_the_responses_shape(openai_client, gateway_url):
    with pytest.raises(openai.NotFoundError) as exc:
        openai_client.responses.create(model="no-such-model", input="x")
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.responses.create(model=MODEL, input=[{"type": "computer_call", "id": "c"}])
    assert exc.value.param == "input[0].type"
    with pytest.raises(openai.RateLimitError) as exc:
        openai_client.responses.create(model=MODEL, input=f"[[fail:429]] {marker()}", stream=True)
    assert exc.value.status_code == 429
    assert exc.value.response.headers.get("retry-after")
    r = httpx.post(f"{gateway_url}/v1/responses", json={"input": "x"}, timeout=10, trust_env=False)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "model"
