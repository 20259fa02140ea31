"""What schemathesis found (issue 16): each request once answered 500; now a 400 (405) in the door's shape."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from config.settings import Settings
from server.app import create_app
from server.errors import install_error_handlers
from tests.fakes import FakeChatModel, contract

HUMAN = {"type": "human", "content": "hi"}
OPENAI_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    base = tmp_path_factory.mktemp("findings")
    settings = Settings(_env_file=None, data_dir=base / "data", chroma_dir=base / "chroma",
                        inference_base_url="http://127.0.0.1:9/v1", inference_max_retries=0)
    with TestClient(create_app(settings, chat_model=FakeChatModel([contract("ok")] * 100)),
                    raise_server_exceptions=False) as c:
        yield c


def openai_error(r, status=400):
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and set(r.json()["error"]) == OPENAI_KEYS, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    return r.json()["error"]


@pytest.mark.parametrize("path", ["/sessions", "/projects/p-offset/sessions"])
def test_an_offset_past_sqlites_integers_is_a_400(client, path):
    assert client.post("/projects", json={"id": "p-offset", "name": "p"}).status_code in (200, 201, 409)
    error = openai_error(client.get(path, params={"offset": 2**63}))
    assert "offset" in error["message"]
    assert client.get(path, params={"offset": 2**63 - 1}).json()["sessions"] == []


AGENT_BODIES = [
    (b"", "body"),
    (b"\x00", "body"),
    (b'{"input": {"messages": [{"content": "no type"}]}}', "input.messages[0]"),
    (b'{"input": {"messages": [{"type": "ai", "content": "x", "invalid_tool_calls": [{"zzz": 1}]}, '
     b'{"type": "human", "content": "hi"}]}}', "input.messages[0]"),
    (b'{"input": {"messages": [{"type": "ai", "content": "x", "tool_calls": [{"zzz": 1}]}]}}', "input.messages[0]"),
    (b'{"input": {"messages": [{"type": "tool", "content": "no tool_call_id"}]}}', "input.messages[0]"),
    (b'{"input": {"messages": [{"type": "human", "content": "hi"}]}, "config": null}', "config"),
    (b'{"input": {"messages": [{"type": "human", "content": "hi"}]}, "kwargs": null}', "kwargs"),
    (b'{"input": null}', "input"),
]


@pytest.mark.parametrize("endpoint", ["invoke", "stream", "stream_events"])
@pytest.mark.parametrize(("body", "param"), AGENT_BODIES, ids=["empty", "nul", "no-type", "invalid-tool-calls",
                                                             "tool-calls", "no-tool-call-id", "config-null",
                                                             "kwargs-null", "input-null"])
def test_bad_agent_input_is_a_400_naming_the_field(client, endpoint, body, param):
    r = client.post(f"/agent/{endpoint}", content=body, headers={"Content-Type": "application/json"})
    assert openai_error(r)["param"] == param


def test_bad_agent_batches_are_400s(client):
    assert openai_error(client.post("/agent/batch", json={"inputs": None}))["param"] == "inputs"
    bad = {"inputs": [{"messages": [HUMAN]}, {"messages": [{"content": "x"}]}]}
    assert openai_error(client.post("/agent/batch", json=bad))["param"] == "inputs[1].messages[0]"
    assert openai_error(client.post("/agent/batch", json={"inputs": [], "config": [None]}))["param"] == "config"
    assert client.post("/agent/batch", json={"inputs": [{"messages": [HUMAN]}]}).status_code == 200


def test_a_method_a_route_does_not_have_is_a_client_error_in_each_doors_shape(client):
    openai_error(client.request("TRACE", "/v1/chat/completions"), status=405)
    anthropic = client.request("TRACE", "/v1/messages/count_tokens")
    assert anthropic.status_code == 405
    assert anthropic.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": "Method Not Allowed"}}


def test_validation_errors_given_as_plain_strings_do_not_crash_the_handler():
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/raises")
    async def raises():
        raise RequestValidationError(errors=["Invalid JSON body"])  # as LangServe raises it

    r = TestClient(app, raise_server_exceptions=False).post("/raises")
    assert openai_error(r)["message"] == "Invalid request: Invalid JSON body"
