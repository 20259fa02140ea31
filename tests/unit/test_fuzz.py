"""Property tests of the request schemas: whatever JSON arrives, the answer is never a 5xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from config.settings import Settings
from server.app import create_app
from tests.fakes import FakeChatModel, contract

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "wizard", "", 5, None])
messages = st.lists(st.fixed_dictionaries({"role": roles}, optional={
    "content": st.text(max_size=30) | json_values, "tool_call_id": st.text(max_size=8) | json_values,
    "tool_calls": json_values, "name": json_values}), max_size=4)
chat_bodies = st.fixed_dictionaries({}, optional={
    "messages": messages | json_values, "stream": json_values, "temperature": json_values,
    "max_tokens": json_values, "tools": json_values, "model": json_values, "stop": json_values,
})
seed_bodies = st.fixed_dictionaries({}, optional={
    "sessionId": st.text(max_size=20) | json_values, "message": st.text(max_size=20) | json_values,
    "projectId": json_values, "model": json_values})
blocks = st.lists(st.fixed_dictionaries({"type": st.sampled_from(
    ["text", "tool_use", "tool_result", "image", "thinking", "document", "", 3, None])}, optional={
    "text": st.text(max_size=20) | json_values, "id": json_values, "name": json_values, "input": json_values,
    "tool_use_id": st.text(max_size=8) | json_values, "content": st.text(max_size=20) | json_values,
    "is_error": json_values}), max_size=3)
anthropic_messages = st.lists(st.fixed_dictionaries({"role": roles}, optional={
    "content": st.text(max_size=30) | blocks | json_values}), max_size=4)
anthropic_bodies = st.fixed_dictionaries({}, optional={
    "model": st.just("claude-x") | json_values, "max_tokens": st.integers(-5, 100) | json_values,
    "messages": anthropic_messages | json_values, "system": st.text(max_size=20) | blocks | json_values,
    "tools": json_values, "tool_choice": json_values, "stream": json_values, "metadata": json_values,
    "temperature": json_values, "stop_sequences": json_values,
})
ROUTES = [("/v1/chat/completions", chat_bodies), ("/chat", seed_bodies), ("/sessions", seed_bodies),
          ("/projects", seed_bodies), ("/entities", seed_bodies), ("/memory/search", seed_bodies),
          ("/v1/messages", anthropic_bodies), ("/v1/messages/count_tokens", anthropic_bodies)]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    settings = Settings(_env_file=None, data_dir=base / "data", chroma_dir=base / "chroma",
                        inference_base_url="http://127.0.0.1:9/v1", inference_max_retries=0)
    with TestClient(create_app(settings, chat_model=FakeChatModel([contract("ok")] * 10_000))) as c:
        yield c


@pytest.mark.parametrize(("path", "bodies"), ROUTES, ids=[r[0] for r in ROUTES])
def test_no_request_body_gets_a_5xx(client, path, bodies):
    seen = []

    @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies | json_values)
    def check(body):
        r = client.post(path, json=body, headers={"X-Session-Id": "fuzz"})
        seen.append(r.status_code)
        assert r.status_code < 500, (body, r.text)
        if r.status_code >= 400 and path.startswith("/v1/messages"):  # Anthropic's error shape
            assert r.json()["type"] == "error" and set(r.json()["error"]) == {"type", "message"}
        elif r.status_code >= 400:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}

    check()
    assert len(seen) >= 60
