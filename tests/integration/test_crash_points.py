"""kill -9 of the real server at each step of a turn: after a restart the session's history and its
episodes (and their vectors) agree, the turn is wholly there or wholly gone, and a gone turn is never
recalled into another session's prompt (what the inference node received is checked).

The steps are reached by watching and holding the real stores and the inference node, never by a hook in
the service: the node stalls a request or a stream; a test connection holding SQLite's write lock on
checkpoints.db stops a turn between its episode and its checkpoint, one on memory.db between the checkpoint
and the episode's commit (or before the episode, or before the indexer marks it done).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from memory.vectors import ChromaVectors
from tests.fake_backend import FakeBackend, default_responder
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration

# Crash point → whether the turn is wholly there after the restart (False: wholly gone).
POINTS = {
    "infer_requested": False,  # recall and assemble done, the node has the request
    "mid_stream": False,  # half the reply streamed to the client
    "after_infer": False,  # the node answered; the episode's write waits for memory.db
    "episode_written": False,  # the episode row exists; the checkpoint's write waits for checkpoints.db
    "checkpoint_written": True,  # the checkpoint holds the turn; the episode's commit waits for memory.db
    "indexing": True,  # the reply went out; the indexer's bookkeeping waits for memory.db
    "summarising": True,  # the reply went out; the summary's inference is in flight
}
ENV = {"SUMMARY_TRIGGER_MESSAGES": "4", "RECENT_MESSAGES": "2", "LOG_LEVEL": "warning"}


def word(point: str) -> str:
    """A word only this crash point's turn says."""
    return "ghost" + point.replace("_", "")


def secret(point: str) -> str:
    return f"{word(point)} is the secret code"


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """A read of the service's SQLite file from outside (WAL: never blocked by its writers)."""
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the table does not exist yet
        return []
    finally:
        conn.close()


class WriteLock:
    """SQLite's write lock on `path`, held from outside: the service's writes there wait (up to its 5 s busy
    timeout). `with WriteLock(path):`, or `release()` it early."""

    def __init__(self, path: Path) -> None:
        self.conn: sqlite3.Connection | None = sqlite3.connect(path, timeout=10, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = None

    def __enter__(self) -> WriteLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Crash:
    """The service, its inference node and its files, and a way to cut it at each point."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.memory_db = tmp_path / "data" / "memory.db"
        self.checkpoints_db = tmp_path / "data" / "checkpoints.db"
        self.gates: dict[str, threading.Event] = {point: threading.Event() for point in POINTS}
        self.node = FakeBackend(self.respond)
        self.svc: ServiceProcess | None = None

    def respond(self, body: dict) -> str | dict:
        last = str((body.get("messages") or [{}])[-1].get("content"))
        if last.startswith("You maintain the running summary") and "second words" in last:
            self.gates["summarising"].wait(60)
        elif secret("infer_requested") in last:
            self.gates["infer_requested"].wait(60)
        elif secret("mid_stream") in last and body.get("stream"):
            return {"content": default_responder(body), "hold": self.gates["mid_stream"]}
        return default_responder(body)

    def start(self) -> ServiceProcess:
        self.svc = ServiceProcess(self.tmp, {"INFERENCE_BASE_URL": self.node.base_url, **ENV}).start()
        return self.svc

    def kill(self) -> None:
        self.svc.proc.send_signal(signal.SIGKILL)
        self.svc.proc.wait()

    def post(self, session: str, text: str, stream: bool = False, timeout: float = 30) -> httpx.Response:
        return httpx.post(self.svc.base_url + "/v1/chat/completions", headers={"X-Session-Id": session},
                          timeout=timeout, json={"stream": stream, "messages": [{"role": "user", "content": text}]})

    def in_background(self, session: str, text: str, stream: bool = False) -> list:
        """Send a turn from a thread; what the client got (or the error of a dropped connection) lands in
        the returned list. A stream is read line by line."""
        got: list = []

        def run() -> None:
            try:
                if stream:
                    with httpx.stream("POST", self.svc.base_url + "/v1/chat/completions", timeout=60,
                                      headers={"X-Session-Id": session},
                                      json={"stream": True, "messages": [{"role": "user", "content": text}]}) as r:
                        for line in r.iter_lines():
                            got.append(line)
                else:
                    got.append(self.post(session, text, timeout=60))
            except httpx.HTTPError as exc:
                got.append(exc)

        threading.Thread(target=run, daemon=True).start()
        return got

    def node_has(self, text: str) -> bool:
        return any(text in json.dumps(b) for b in list(self.node.requests))

    def episode_rows(self, session: str) -> list[tuple]:
        return rows(self.memory_db, "SELECT id FROM episodes WHERE session_id = ?", (session,))

    # One method per crash point: each leaves the service killed at its step.
    def cut_infer_requested(self, session: str) -> None:
        self.in_background(session, secret("infer_requested"))
        wait_for(lambda: self.node_has(secret("infer_requested")), "the node to get the request")
        self.kill()

    def cut_mid_stream(self, session: str) -> None:
        got = self.in_background(session, secret("mid_stream"), stream=True)
        wait_for(lambda: any('"content": "You' in str(x) or '"content":"You' in str(x) for x in got),
                 "the first words of the reply to reach the client")
        self.kill()

    def cut_after_infer(self, session: str) -> None:
        assert httpx.post(self.svc.base_url + "/sessions", json={"id": session}, timeout=30).status_code in (200, 201)
        with WriteLock(self.memory_db):
            got = self.in_background(session, secret("after_infer"))
            wait_for(lambda: self.node_has(secret("after_infer")), "the node to answer")
            time.sleep(0.5)  # parse_tools and persist's write (held by the lock) follow within milliseconds
            assert not got, "the reply went out although its episode could not be written"
            self.kill()

    def cut_episode_written(self, session: str) -> None:
        with WriteLock(self.checkpoints_db):
            self.in_background(session, secret("episode_written"))
            wait_for(lambda: self.episode_rows(session), "the episode row")
            self.kill()

    def cut_checkpoint_written(self, session: str) -> None:
        checkpoints = "SELECT count(*) FROM checkpoints WHERE thread_id = ?"
        before = rows(self.checkpoints_db, checkpoints, (session,))[0][0]
        with WriteLock(self.checkpoints_db) as checkpoint_lock:
            got = self.in_background(session, secret("checkpoint_written"))
            wait_for(lambda: self.episode_rows(session), "the episode row")
            with WriteLock(self.memory_db):  # taken before the checkpoint may be written
                checkpoint_lock.release()
                wait_for(lambda: rows(self.checkpoints_db, checkpoints, (session,))[0][0] > before,
                         "the checkpoint")
                time.sleep(0.2)  # what follows the checkpoint (the episode's commit) waits for memory.db
                assert not got, "the reply went out before its episode was committed"
                self.kill()

    def cut_indexing(self, session: str) -> None:
        assert self.post(session, secret("indexing")).status_code == 200
        with WriteLock(self.memory_db):
            time.sleep(1.0)  # the indexer waits 0.2 s for quiet, embeds, adds to Chroma, then waits for the lock
            self.kill()

    def cut_summarising(self, session: str) -> None:
        for text in ("first words", "second words"):  # folded into the summary (RECENT_MESSAGES=2)
            assert self.post(session, text).status_code == 200
        assert self.post(session, secret("summarising")).status_code == 200  # 6 messages: a summary is due
        wait_for(lambda: any(str(m.get("content")).startswith("You maintain the running summary")
                             and "second words" in str(m.get("content"))
                             for b in list(self.node.requests) for m in b.get("messages", [])),
                 "the summary's request")
        self.kill()

    # After the restart.
    def check(self, point: str) -> None:
        session, base = f"crash-{point}", self.svc.base_url
        messages = httpx.get(f"{base}/sessions/{session}/messages", timeout=30).json()["messages"]
        texts = [(m["role"], m["content"]) for m in messages]
        in_history = ("user", secret(point)) in texts
        assert in_history == POINTS[point], f"{point}: history {texts}"
        if in_history:
            assert texts[texts.index(("user", secret(point))) + 1] == ("assistant", f"You said: {secret(point)}")
        episodes = httpx.get(f"{base}/sessions/{session}/memory", timeout=30).json()["recentEpisodes"]
        in_memory = [e["text"] for e in episodes if secret(point) in e["text"]]
        assert len(in_memory) == int(in_history), f"{point}: history says {in_history}, episodes {episodes}"
        assert len(self.episode_rows(session)) == len(episodes), f"{point}: rows the API does not show"
        # Another session asks about it: only a turn that is wholly there may be recalled into its prompt.
        probe = self.post(f"probe-{point}", f"What is {word(point)}?")
        assert probe.status_code == 200, probe.text
        asked = f"What is {word(point)}?"
        prompt = [b for b in list(self.node.requests)  # the turn's prompt, not the naming of the probe's session
                  if b["messages"][0]["role"] == "system" and asked in str(b["messages"][-1].get("content"))][-1]
        recalled = secret(point) in json.dumps(prompt)
        assert recalled == in_history, f"{point}: recalled into another session: {recalled}"

    def vectors_match_rows(self) -> None:
        """With the service stopped: Chroma holds a vector for each episode row and for nothing else."""
        chroma = ChromaVectors(self.tmp / "chroma")
        ids = set()
        for collection in chroma.client.list_collections():
            if collection.name.startswith("episodes_"):
                ids |= set(chroma.client.get_collection(collection.name).get()["ids"])
        assert ids == {r[0] for r in rows(self.memory_db, "SELECT id FROM episodes")}


def test_a_kill_at_each_step_of_a_turn_leaves_it_wholly_there_or_wholly_gone(tmp_path):
    crash = Crash(tmp_path)
    with crash.node:
        try:
            crash.start()
            previous = None
            for point in POINTS:
                getattr(crash, f"cut_{point}")(f"crash-{point}")
                crash.start()  # start-up repair runs here
                crash.check(point)
                if previous:  # and a second restart changes nothing
                    crash.check(previous)
                previous = point
            crash.svc.stop()  # graceful: the indexer drains
            crash.vectors_match_rows()
        finally:
            for gate in crash.gates.values():
                gate.set()
            if crash.svc:
                crash.svc.stop()
