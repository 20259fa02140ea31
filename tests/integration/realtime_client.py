"""A voice client for the realtime tests and benchmark: the `websockets` library's sync client on
`GET /orchestrate`, reading JSON frames until the one a test waits for."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from websockets.sync.client import ClientConnection, connect

Frame = dict[str, Any]


def open_voice(base_url: str, session_id: str | None = None, **params: str) -> ClientConnection:
    """A socket on `/orchestrate` (`subprotocols=[...]` among `params` is passed to the client)."""
    subprotocols = params.pop("subprotocols", None)
    query = "&".join(f"{k}={v}" for k, v in {"session_id": session_id, **params}.items() if v)
    url = base_url.replace("http://", "ws://") + "/orchestrate" + (f"?{query}" if query else "")
    return connect(url, open_timeout=30, subprotocols=subprotocols)  # type: ignore[arg-type]


def send(conn: ClientConnection, frame: Frame) -> None:
    conn.send(json.dumps(frame))


def read_until(conn: ClientConnection, done: Callable[[Frame], bool], timeout: float = 60.0) -> list[Frame]:
    """Every frame up to and including the first for which `done` is true."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(conn.recv(timeout=max(0.01, deadline - time.monotonic())))
        frames.append(frame)
        if done(frame):
            return frames


def of_type(kind: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("type") == kind


def is_state(name: str) -> Callable[[Frame], bool]:
    return lambda frame: frame.get("type") == "state" and frame.get("state") == name


def states(frames: list[Frame]) -> list[str]:
    return [f["state"] for f in frames if f["type"] == "state"]


def streamed(frames: list[Frame]) -> str:
    return "".join(f["text"] for f in frames if f["type"] == "response_delta")
