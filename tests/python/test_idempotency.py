"""`Idempotency-Key` on the turn endpoints, through the official SDKs (and httpx for the native
API): a retry with the same key gets the first response again, streamed ones included, and the
model is asked only once; a duplicate sent while the first still runs gets a 409 that the SDK
retries into the replay."""

from __future__ import annotations

import json
import threading
import uuid

import anthropic
import httpx
import openai
import pytest

MODEL = "sonnet"


def key() -> str:
    return f"idem-{uuid.uuid4().hex}"


def calls_with(mock, tag: str) -> int:
    return sum(1 for c in mock.model_calls() if tag in json.dumps(c["body"]))


def test_chat_completion_is_replayed_not_rerun(openai_client, mock):
    tag, k = uuid.uuid4().hex[:10], key()
    headers = {"Idempotency-Key": k}
    first = openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"once {tag}"}], extra_headers=headers
    )
    raw = openai_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": f"once {tag}"}], extra_headers=headers
    )
    again = raw.parse()
    assert raw.headers.get("idempotent-replayed") == "true"
    assert again.id == first.id
    assert again.choices[0].message.content == f"once {tag}"
    assert calls_with(mock, tag) == 1
    # The same key with another body is refused.
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "different"}], extra_headers=headers
        )
    assert exc.value.param == "Idempotency-Key"


def test_a_streamed_reply_is_replayed_whole(openai_client, mock):
    tag, headers = uuid.uuid4().hex[:10], {"Idempotency-Key": key()}

    def run():
        stream = openai_client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"[[words:5]] {tag}"}],
            stream=True, extra_headers=headers,
        )
        return [(c.id, c.choices[0].delta.content if c.choices else None) for c in stream]

    first, second = run(), run()
    assert first == second
    assert "".join(p or "" for _, p in first) == "w1 w2 w3 w4 w5"
    assert calls_with(mock, tag) == 1


def test_anthropic_messages_and_responses_replay(gateway_url, openai_client, mock):
    tag = uuid.uuid4().hex[:10]
    with anthropic.Anthropic(base_url=gateway_url, api_key="x", max_retries=0) as client:
        headers = {"Idempotency-Key": key()}
        a = client.messages.create(model=MODEL, max_tokens=50, extra_headers=headers,
                                   messages=[{"role": "user", "content": f"anthropic {tag}"}])
        b = client.messages.create(model=MODEL, max_tokens=50, extra_headers=headers,
                                   messages=[{"role": "user", "content": f"anthropic {tag}"}])
    assert a.id == b.id
    headers = {"Idempotency-Key": key()}
    r1 = openai_client.responses.create(model=MODEL, input=f"responses {tag}", extra_headers=headers)
    r2 = openai_client.responses.create(model=MODEL, input=f"responses {tag}", extra_headers=headers)
    assert r1.id == r2.id
    assert calls_with(mock, f"anthropic {tag}") == 1
    assert calls_with(mock, f"responses {tag}") == 1


def test_native_messages_replay(gateway_url, mock):
    tag, headers = uuid.uuid4().hex[:10], {"Idempotency-Key": key()}
    with httpx.Client(base_url=gateway_url, timeout=60, trust_env=False) as c:
        session = c.post("/api/sessions", json={"model": MODEL}).json()
        path = f"/api/sessions/{session['id']}/messages"
        first = c.post(path, json={"content": f"native {tag}"}, headers=headers)
        second = c.post(path, json={"content": f"native {tag}"}, headers=headers)
        c.delete(f"/api/sessions/{session['id']}")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert calls_with(mock, f"native {tag}") == 1


def test_a_duplicate_in_flight_waits_for_the_first_response(gateway_url, mock):
    tag, headers = uuid.uuid4().hex[:10], {"Idempotency-Key": key()}
    body = {"model": MODEL, "stream": True,
            "messages": [{"role": "user", "content": f"[[words:4]] [[slow:400]] {tag}"}]}
    url = f"{gateway_url}/v1/chat/completions"
    replay = {}

    def sdk_duplicate():
        # The SDK retries a 409 (after its retry-after) until the first response is kept.
        with openai.OpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=8) as client:
            stream = client.chat.completions.create(extra_headers=headers, **body)
            replay["chunks"] = [c.id for c in stream]

    with httpx.Client(timeout=60, trust_env=False) as c:
        with c.stream("POST", url, json=body, headers=headers) as first:
            assert first.status_code == 200
            lines = first.iter_lines()
            seen = [next(lines)]  # the first chunk: the turn is under way
            duplicate = c.post(url, json=body, headers=headers)
            assert duplicate.status_code == 409
            assert duplicate.headers["retry-after"] == "1"
            assert duplicate.json()["error"]["code"] == "conflict"
            t = threading.Thread(target=sdk_duplicate)
            t.start()
            seen += list(lines)
    t.join(timeout=60)
    first_ids = [json.loads(l[6:])["id"] for l in seen if l.startswith("data: {")]
    assert replay["chunks"] == first_ids
    assert calls_with(mock, tag) == 1
