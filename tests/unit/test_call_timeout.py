"""INFERENCE_TIMEOUT_SECONDS bounds a whole inference call: a node that sends a piece of its reply every
half second (each read in time) is given up on at the bound, streamed or not, and the turn leaves nothing."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.fake_backend import FakeBackend

# ~50 pieces half a second apart: ~25 s to send the whole reply, eight times the 3 s bound.
LONG = json.dumps({"assistant_response": "word " * 56, "tool_calls": []})


@pytest.mark.parametrize("stream", [False, True])
def test_a_dripping_node_is_cut_at_the_total_timeout(settings, stream):
    with FakeBackend(lambda body: LONG) as node:
        node.drip_seconds = 0.5
        settings.inference_base_url = node.base_url
        settings.inference_timeout_seconds = 3.0
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/chat/completions", headers={"X-Session-Id": f"drip-{stream}"},
                            json={"messages": [{"role": "user", "content": "talk"}], "stream": stream})
            if stream and r.status_code == 200:  # cut after its first words: the stream's error event
                events = [line for line in r.text.splitlines() if line.startswith("data: ")]
                assert events[-1] == "data: [DONE]"
                error = json.loads(events[-2].removeprefix("data: "))["error"]
            else:
                assert r.status_code == 504
                error = r.json()["error"]
            assert "INFERENCE_TIMEOUT_SECONDS" in error["message"] and error["code"] == "inference_timeout"
            assert client.get(f"/sessions/drip-{stream}/messages").json()["messages"] == []
