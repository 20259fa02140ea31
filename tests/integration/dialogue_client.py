"""Helpers of the dialogue tests: queue dialogues on a running service and wait for them."""

from __future__ import annotations

import time
from typing import Any

import httpx

FINISHED = {"done", "failed", "cancelled"}


def participant(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": base_url, "persona": f"You are {name}.", **extra}


def start(client: httpx.Client, topic: str, participants: list[dict[str, Any]], min_turns: int = 1,
          max_turns: int = 4) -> str:
    r = client.post("/dialogues", json={"topic": topic, "participants": participants, "min_turns": min_turns,
                                        "max_turns": max_turns})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["id"]


def wait(client: httpx.Client, ids: list[str], timeout: float = 120.0) -> dict[str, dict[str, Any]]:
    """Poll until every dialogue has finished; their bodies by id."""
    deadline = time.monotonic() + timeout
    bodies: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        bodies = {i: client.get(f"/dialogues/{i}").json() for i in ids}
        if all(b["status"] in FINISHED for b in bodies.values()):
            return bodies
        time.sleep(0.2)
    raise AssertionError(f"dialogues still unfinished: {[(i, b['status']) for i, b in bodies.items()]}")
