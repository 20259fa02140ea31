"""`orchestrator migrate --from-sqlite`: an embedded store with sessions in two projects moves into Postgres and a
Chroma server, and the conversation goes on there — through the real service before and after."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.integration.servers import ROOT, ServiceProcess

pytestmark = pytest.mark.integration


def chat(svc: ServiceProcess, session: str, text: str, project: str) -> str:
    r = httpx.post(svc.base_url + "/v1/chat/completions", timeout=60,
                   headers={"X-Session-Id": session, "X-Project-Id": project},
                   json={"messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def migrate(tmp_path, env: dict[str, str]) -> str:
    run = subprocess.run([sys.executable, "-m", "server.cli", "migrate", "--from-sqlite", str(tmp_path / "data"),
                          "--chroma-dir", str(tmp_path / "chroma")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_an_embedded_store_moves_over_and_the_chat_continues(tmp_path, backend, postgres, chroma_server):
    embedded = {"INFERENCE_BASE_URL": backend.base_url, "SUMMARY_TRIGGER_MESSAGES": "100"}
    with ServiceProcess(tmp_path, embedded) as svc:
        chat(svc, "garden", "my tomato variety is called Brandywine", "home")
        chat(svc, "garden", "I water them at dawn", "home")
        chat(svc, "deploy", "the staging host is called Kestrel", "work")
        before = {s: httpx.get(f"{svc.base_url}/sessions/{s}/messages", timeout=10).json()["messages"]
                  for s in ("garden", "deploy")}
        assert httpx.get(f"{svc.base_url}/sessions/garden", timeout=10).json()["episodeCount"] == 2
    chroma_server.reset()
    shared = {"DATABASE_URL": postgres.database("migrated"), "CHROMA_URL": chroma_server.url}
    first = migrate(tmp_path, shared)
    assert "episodes 3" in first and "sessions 2" in first, first
    again = migrate(tmp_path, shared)  # idempotent: nothing new the second time
    assert "episodes 0 (+3 already there)" in again and "vectors" in again, again

    (tmp_path / "after").mkdir()
    with ServiceProcess(tmp_path / "after", {**embedded, **shared}) as svc:
        for session, messages in before.items():
            got = httpx.get(f"{svc.base_url}/sessions/{session}/messages", timeout=10).json()["messages"]
            assert [(m["role"], m["content"]) for m in got] == [(m["role"], m["content"]) for m in messages]
        assert chat(svc, "garden", "when do I water them?", "home") == "You said: when do I water them?"
        prompt = backend.turn_prompts()[-1]
        assert "Brandywine" in prompt and "dawn" in prompt  # the checkpoint's history came over
        chat(svc, "new-garden", "which tomato variety do I grow?", "home")
        assert "Brandywine" in backend.turn_prompts()[-1]  # recalled from the migrated episodes
        assert "Kestrel" not in backend.turn_prompts()[-1]  # the other project stays apart
        hits = httpx.post(svc.base_url + "/memory/search", timeout=30,
                          json={"query": "staging host", "projectId": "work"}).json()["results"]
        assert any("Kestrel" in h["text"] for h in hits)
        assert httpx.get(f"{svc.base_url}/sessions/garden", timeout=10).json()["episodeCount"] == 3
