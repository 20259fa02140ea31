"""After an import, the summary and entities are computed in the background (server/turns/after_import.py), and
the session says so until they are: through the real server, a real HTTP client and a scripted inference node
whose summarise replies wait for the test's word."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.fake_backend import FakeBackend, default_responder
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration
GATE = threading.Event()


def gated(body: dict) -> str | dict:
    """The default replies; a summarise request waits until GATE is set (the import is then still pending)."""
    messages = body.get("messages", [])
    if messages and str(messages[-1].get("content")).startswith("You maintain the running summary"):
        GATE.wait(60)
    return default_responder(body)


def conversation(n: int) -> list[dict]:
    """`n` alternating messages; the second user message names a dog (the fake node extracts `is called X`)."""
    return [{"id": f"m{i}", "role": "user" if i % 2 == 0 else "assistant",
             "content": "our new dog is called Biscuitron" if i == 2 else f"message number {i} about gardening"}
            for i in range(n)]


def session(client: httpx.Client, session_id: str) -> dict:
    done = client.get(f"/sessions/{session_id}")
    assert done.status_code == 200, done.text
    return done.json()


def test_summary_and_entities_follow_an_import_in_the_background(tmp_path):
    with FakeBackend(gated) as backend, \
            ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url, "SUMMARY_TRIGGER_MESSAGES": "24",
                                      "RECENT_MESSAGES": "12"}) as svc, \
            httpx.Client(base_url=svc.base_url, timeout=60) as client:
        client.post("/projects", json={"id": "fol", "name": "F"}).raise_for_status()
        done = client.post("/sessions/fol-s/import", params={"projectId": "fol"},
                           json={"messages": conversation(40)})
        assert done.status_code == 200, done.text
        assert done.json()["imported"] == 40 and done.json()["memoryPending"] is True

        before = session(client, "fol-s")  # the summarise call is held: nothing folded yet
        assert before["memoryPending"] is True and before["summary"] is None and before["messageCount"] == 40
        GATE.set()

        deadline = time.monotonic() + 60
        while (after := session(client, "fol-s"))["memoryPending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert after["memoryPending"] is False
        assert after["summary"] == "Summary: the user and the assistant talked."
        assert after["messageCount"] <= 24  # the old messages were folded into the summary
        memory = client.get("/sessions/fol-s/memory").json()
        assert [e["name"] for e in memory["entities"]] == ["Biscuitron"]
        assert any(r for r in backend.requests
                   if str(r["messages"][-1]["content"]).startswith("List the named entities"))

        again = client.post("/sessions/fol-s/import", params={"projectId": "fol"},
                            json={"messages": conversation(40)})  # nothing new: nothing to summarise
        assert again.json()["imported"] == 0 and again.json()["memoryPending"] is False


def test_a_restart_resumes_an_unfinished_followup(tmp_path):
    held = threading.Event()

    def stalled(body: dict) -> str | dict:
        messages = body.get("messages", [])
        if messages and str(messages[-1].get("content")).startswith("You maintain the running summary"):
            held.wait(60)
        return default_responder(body)

    env = {"SUMMARY_TRIGGER_MESSAGES": "24", "RECENT_MESSAGES": "12"}
    with FakeBackend(stalled) as first:
        with ServiceProcess(tmp_path, {**env, "INFERENCE_BASE_URL": first.base_url}) as svc, \
                httpx.Client(base_url=svc.base_url, timeout=60) as client:
            done = client.post("/sessions/res-s/import", json={"messages": conversation(40)})
            assert done.status_code == 200 and done.json()["memoryPending"] is True
        held.set()  # the service stopped with the fold unfinished; release the node's handler
    with FakeBackend() as second, \
            ServiceProcess(tmp_path, {**env, "INFERENCE_BASE_URL": second.base_url}) as svc, \
            httpx.Client(base_url=svc.base_url, timeout=60) as client:
        deadline = time.monotonic() + 60
        while (after := session(client, "res-s"))["memoryPending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert after["memoryPending"] is False and after["summary"] == "Summary: the user and the assistant talked."
        assert after["messageCount"] <= 24
