"""`/health` answers from background probe results: a node busy generating (its `/models` queued behind the
generation, as llama-cpp-python's server does) is "busy", and the service "ok", not "unreachable"."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from server.app import create_app
from tests.fake_backend import FakeBackend


def wait_for_inference_status(client, wanted: str, within: float = 20.0) -> dict:
    """The /health body once the inference status is `wanted` (or the last one seen)."""
    deadline = time.monotonic() + within
    while True:
        body = client.get("/health").json()
        if body["dependencies"]["inference"]["status"] == wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_a_busy_node_is_reported_busy_and_healthy(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        settings.health_probe_interval_seconds = 0.2
        with TestClient(create_app(settings)) as client:
            assert client.get("/health").json()["dependencies"]["inference"]["status"] == "ok"
            node.models_delay = 6.0  # from now on /models waits behind "a generation"
            body = wait_for_inference_status(client, "busy")
            assert body["dependencies"]["inference"]["status"] == "busy"
            assert body["status"] == "ok"
            assert body["checked_seconds_ago"] is not None
            node.models_delay = 0.0
            assert wait_for_inference_status(client, "ok")["dependencies"]["inference"]["status"] == "ok"


def test_an_unreachable_node_is_still_unreachable(settings):
    with TestClient(create_app(settings)) as client:  # the settings' node: a port nothing listens on
        body = client.get("/health").json()
        assert body["dependencies"]["inference"]["status"].startswith("unreachable")
        assert body["status"] == "degraded"
