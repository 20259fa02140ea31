"""`Idempotency-Key`: keyed by the API key's fingerprint, not its place in API_KEYS; a reused key with another
body is refused (422), never answered with the stored response of a different request."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.app import create_app
from tests.fake_backend import FakeBackend


def _turn(client, key, text, idem="same-key", session="idem"):
    return client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": text}]},
                       headers={"X-API-Key": key, "Idempotency-Key": idem, "X-Session-Id": session})


def test_reordering_api_keys_does_not_hand_one_keys_response_to_another(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        settings.api_keys = "key-alice,key-bob"
        with TestClient(create_app(settings)) as client:
            alice = _turn(client, "key-alice", "alice's secret plan", session="alice")
            assert alice.status_code == 200
        settings.api_keys = "key-bob,key-alice"  # bob now sits where alice was
        with TestClient(create_app(settings)) as client:
            bob = _turn(client, "key-bob", "alice's secret plan", session="alice")
            assert bob.status_code == 200 and "idempotent-replayed" not in bob.headers
            assert bob.json()["id"] != alice.json()["id"]
            again = _turn(client, "key-alice", "alice's secret plan", session="alice")  # alice's retry still replays
            assert again.headers["idempotent-replayed"] == "true" and again.json() == alice.json()


def test_a_reused_key_with_another_body_is_a_422(settings):
    with FakeBackend() as node:
        settings.inference_base_url = node.base_url
        with TestClient(create_app(settings)) as client:
            first = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "pay 10"}]},
                                headers={"Idempotency-Key": "pay-1", "X-Session-Id": "idem"})
            assert first.status_code == 200
            other = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "pay 99"}]},
                                headers={"Idempotency-Key": "pay-1", "X-Session-Id": "idem"})
            assert other.status_code == 422, other.text
            error = other.json()["error"]
            assert error["code"] == "idempotency_key_reused" and error["param"] == "Idempotency-Key"
            # The same body again (keys reordered, spacing changed) is a replay.
            same = client.post("/v1/chat/completions", content=b'{"messages":[{"content":"pay 10","role":"user"}]}',
                               headers={"Idempotency-Key": "pay-1", "X-Session-Id": "idem",
                                        "Content-Type": "application/json"})
            assert same.status_code == 200 and same.headers["idempotent-replayed"] == "true"
            assert same.json() == first.json()
            elsewhere = client.post("/v1/chat/completions",
                                    json={"messages": [{"role": "user", "content": "pay 10"}]},
                                    headers={"Idempotency-Key": "pay-1", "X-Session-Id": "other-session"})
            assert elsewhere.status_code == 422  # another session is another request
            anthropic = {"model": "claude-x", "max_tokens": 50, "messages": [{"role": "user", "content": "a"}]}
            assert client.post("/v1/messages", json=anthropic, headers={"Idempotency-Key": "m-1"}).status_code == 200
            anthropic["messages"][0]["content"] = "b"
            refused = client.post("/v1/messages", json=anthropic, headers={"Idempotency-Key": "m-1"})
            assert refused.status_code == 422 and refused.json()["type"] == "error"
            assert refused.json()["error"]["type"] == "invalid_request_error"
            assert client.get("/sessions/idem").json()["turnCount"] == 1  # the refused retry made no turn
