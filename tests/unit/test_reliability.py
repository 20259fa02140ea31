"""Faults towards the inference node, bad input, access control, metrics: through the real app."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from inference.backends import CircuitBreaker
from server.app import create_app
from tests.fake_backend import FakeBackend


def turn(client, session="s", text="hello", **extra):
    return client.post("/v1/chat/completions", headers={"X-Session-Id": session, **extra.pop("headers", {})},
                       json={"messages": [{"role": "user", "content": text}], **extra})


def history(client, session):
    return client.get(f"/sessions/{session}/messages")


def test_circuit_breaker_opens_half_opens_and_closes():
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failure()
    assert breaker.state == "open"  # the trial failed
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"


def test_fallback_backend_answers_and_the_failed_circuit_opens(settings):
    with FakeBackend() as primary, FakeBackend(lambda b: json.dumps(
            {"assistant_response": "from the fallback", "tool_calls": []})) as fallback:
        primary.fail_with = 500
        settings.inference_base_url = primary.base_url
        settings.inference_fallback_urls = fallback.base_url
        settings.circuit_failure_threshold = 2
        with TestClient(create_app(settings)) as client:
            for i in range(3):
                r = turn(client, "fb", f"q{i}")
                assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "from the fallback"
            assert len(primary.requests) == 2  # the third turn skipped the open circuit
            circuits = client.get("/health").json()["dependencies"]["circuits"]
            assert circuits == {primary.base_url: "open", fallback.base_url: "closed"}
            assert 'orchestrator_circuit_open{backend="' + primary.base_url + '"} 1.0' in client.get(
                "/metrics").text


def test_all_backends_down_fails_fast_and_leaves_the_session_unchanged(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        settings.circuit_failure_threshold = 2
        with TestClient(create_app(settings)) as client:
            assert turn(client, "down", "first").status_code == 200
            node.fail_with = 503
            assert turn(client, "down", "x").status_code == 503  # the node's own 503
            r = turn(client, "down", "y")
            assert r.status_code == 503
            reached = len(node.requests)
            r = turn(client, "down", "z")  # circuit open now: no request reaches the node
            assert r.status_code == 503 and "circuit" in r.json()["error"]["message"]
            assert int(r.headers["retry-after"]) >= 1
            assert len(node.requests) == reached
            msgs = history(client, "down").json()["messages"]
            assert [m["content"] for m in msgs] == ["first", "You said: first"]  # no half turns
            assert client.get("/sessions/down").json()["episodeCount"] == 1


STALL_SECONDS = 20


class _Misbehaving(BaseHTTPRequestHandler):
    """Streams two chunks and drops the connection, or stalls before the first byte."""

    protocol_version = "HTTP/1.1"
    mode = "drop"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.mode == "stall":
            time.sleep(STALL_SECONDS)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ('{"assistant_', 'response": "par'):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.connection.shutdown(2)  # gone mid-stream


@pytest.mark.parametrize("mode", ["drop", "stall"])
def test_a_broken_stream_ends_with_an_error_event_not_a_hang(settings, mode):
    handler = type("H", (_Misbehaving,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads, server.block_on_close = True, False  # do not wait for the stalled handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.inference_base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        settings.inference_first_token_timeout_seconds = 1.0
        with TestClient(create_app(settings)) as client:
            started = time.monotonic()
            r = turn(client, f"broken-{mode}", stream=True)
            # A stalled node is given up on after the 1 s first-token timeout, long before it would answer.
            assert time.monotonic() - started < STALL_SECONDS / 2
            if r.status_code == 200:
                events = [line for line in r.text.splitlines() if line.startswith("data: ")]
                assert '"error"' in events[-2] and events[-1] == "data: [DONE]"
            else:
                assert r.status_code in (502, 504) and r.json()["error"]["message"]
            assert history(client, f"broken-{mode}").json()["messages"] == []
    finally:
        server.shutdown()
        server.server_close()


def test_api_keys_and_rate_limit(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        settings.api_keys = "k-one, k-two"
        settings.rate_limit_per_minute = 3
        with TestClient(create_app(settings)) as client:
            assert client.get("/health").status_code == 200  # open
            for path in ("/v1/models", "/sessions", "/projects", "/metrics", "/entities", "/models"):
                r = client.get(path)
                assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
                assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
            assert turn(client).status_code == 401
            assert client.get("/sessions", headers={"Authorization": "Bearer k-one"}).status_code == 200
            assert client.get("/sessions", headers={"X-API-Key": "k-one"}).status_code == 200
            assert client.get("/sessions", headers={"X-API-Key": "k-one"}).status_code == 200
            limited = client.get("/sessions", headers={"X-API-Key": "k-one"})
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            assert client.get("/sessions", headers={"X-API-Key": "k-two"}).status_code == 200  # per key


def test_bad_input_gets_4xx_in_the_api_shape(settings):
    settings.max_request_bytes = 2000
    with TestClient(create_app(settings)) as client:
        big = turn(client, text="x" * 5000)
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

        def chunks():
            yield b'{"messages": [{"role": "user", "content": "'
            yield b"y" * 5000
            yield b'"}]}'

        r = client.post("/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        r = client.post("/v1/chat/completions", content=b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}',
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
        r = client.post("/chat", json={"sessionId": "a b", "message": "hi"})
        assert r.status_code == 400 and "sessionId" in r.json()["error"]["message"]
        assert client.post("/chat", json={"sessionId": "ok", "message": ""}).status_code == 400
        assert client.post("/chat", json=[1, 2]).status_code == 400


def test_request_ids_metrics_and_no_cors_by_default(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        with TestClient(create_app(settings)) as client:
            r = turn(client, headers={"X-Request-Id": "req-123"})
            assert r.headers["x-request-id"] == "req-123"
            assert len(client.get("/health").headers["x-request-id"]) == 32
            metrics = client.get("/metrics").text
            assert 'orchestrator_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0' in metrics
            assert "orchestrator_inference_seconds_count" in metrics
            assert 'orchestrator_turns_total{outcome="ok"} 1.0' in metrics
            pre = client.options("/v1/chat/completions", headers={"Origin": "https://evil.example",
                                                                  "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in pre.headers


def test_cors_origins_when_configured(settings):
    settings.cors_origins = "https://app.example"
    with TestClient(create_app(settings)) as client:
        pre = client.options("/sessions", headers={"Origin": "https://app.example",
                                                   "Access-Control-Request-Method": "GET"})
        assert pre.headers["access-control-allow-origin"] == "https://app.example"


def test_a_second_process_on_the_same_data_dir_is_refused(settings):
    with TestClient(create_app(settings)):
        with pytest.raises(RuntimeError, match="already in use"):
            with TestClient(create_app(settings)):
                pass


def test_a_retry_with_the_same_idempotency_key_is_not_applied_twice(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        with TestClient(create_app(settings)) as client:
            first = turn(client, "idem", "pay the invoice", headers={"Idempotency-Key": "k-1"})
            again = turn(client, "idem", "pay the invoice", headers={"Idempotency-Key": "k-1"})
            assert first.status_code == again.status_code == 200
            assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
            assert again.headers["x-session-id"] == "idem"
            other = turn(client, "idem", "pay the invoice", headers={"Idempotency-Key": "k-2"})
            assert other.json()["id"] != first.json()["id"]
            seed = {"sessionId": "idem-2", "message": "once"}
            a = client.post("/chat", json=seed, headers={"Idempotency-Key": "c-1"})
            b = client.post("/chat", json=seed, headers={"Idempotency-Key": "c-1"})
            assert a.json() == b.json()
            assert client.get("/sessions/idem").json()["turnCount"] == 2  # k-1 once, k-2 once
            assert client.get("/sessions/idem-2").json()["turnCount"] == 1
