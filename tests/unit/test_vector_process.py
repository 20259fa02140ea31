"""The vector child process as it really runs: a hung child (SIGSTOP) and many scopes (open files)."""

from __future__ import annotations

import os
import random
import signal
import threading
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from memory.vector_process import VectorIndex, VectorStoreError
from server.app import create_app

DIM = 384


def vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextmanager
def stopped(pid: int):
    """The process stopped (as if wedged) for the block; resumed after, if it still exists."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def finishes(fn, within: float = 120.0):
    """Run `fn` in a thread; (finished, result or exception). A liveness check, not a speed one: the
    bound is far above the deadline under test, so that a call that can wait for ever fails the test
    instead of hanging the suite."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the test
            out["value"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive(), out.get("value")


def test_a_hung_vector_process_fails_the_call_and_is_replaced(tmp_path):
    rng = random.Random(1)
    vectors = VectorIndex(tmp_path / "chroma", timeout=1.0)
    try:
        v = vector(rng)
        vectors.add("default", ["a"], [v], ["A"])
        hung = vectors.pid
        assert hung is not None
        with stopped(hung):
            done, result = finishes(lambda: vectors.query("default", v, 3))
            assert done, "a call to a stopped vector process never returned"
            assert isinstance(result, VectorStoreError) and "did not answer" in str(result)
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)  # the hung child was killed and reaped, not left behind
        assert [h.id for h in vectors.query("default", v, 3)] == ["a"]  # a new child, same data
        assert vectors.pid not in (None, hung)
    finally:
        vectors.close()


def test_a_turn_completes_with_recall_degraded_while_the_vector_process_hangs(settings, backend):
    settings.inference_base_url = backend.base_url
    settings.vector_timeout_seconds = 1.0
    with TestClient(create_app(settings)) as client:
        body = {"messages": [{"role": "user", "content": "remember the blue door"}]}
        first = client.post("/v1/chat/completions", headers={"X-Session-Id": "hang"}, json=body)
        assert first.status_code == 200 and "X-Recall-Degraded" not in first.headers
        runtime = client.app.state.runtime
        client.portal.call(runtime.turns.drain)
        client.portal.call(runtime.deps.indexer.drain)
        with stopped(runtime.deps.vectors.pid):
            body = {"messages": [{"role": "user", "content": "which door was it?"}]}
            done, r = finishes(lambda: client.post("/v1/chat/completions", headers={"X-Session-Id": "other"},
                                                   json=body))
            assert done, "a turn waited for ever on a stopped vector process"
        assert r.status_code == 200, r.text
        assert r.headers["X-Recall-Degraded"] == "true"
        assert r.json()["choices"][0]["message"]["content"] == "You said: which door was it?"
        assert "blue door" in backend.turn_prompts()[-1]  # lexical recall still found the other session's turn


def test_open_files_of_the_vector_process_stay_bounded_over_many_scopes(tmp_path):
    rng = random.Random(2)
    vectors = VectorIndex(tmp_path / "chroma", max_open=8)
    try:
        vectors.heartbeat()
        pid = vectors.pid
        assert pid is not None
        start = open_files(pid)
        peak = 0
        for i in range(150):  # each scope a collection with its own index files
            v = vector(rng)
            vectors.add(f"project:p{i}", [f"e{i}"], [v], ["doc"])
            assert vectors.query(f"project:p{i}", v, 1)[0].id == f"e{i}"
            peak = max(peak, open_files(pid))
        # 4 index files a loaded scope, 8 scopes at most; without the bound the same loop ends ~600 files up.
        assert peak - start <= 8 * 4 + 8, (start, peak)
        assert vectors.pid == pid  # the same process all along: bounded, not restarted
        # An evicted scope is loaded again from disk.
        assert vectors.query("project:p0", vector(rng), 1)[0].id == "e0"
    finally:
        vectors.close()


def test_dropping_scopes_releases_their_files_and_their_vectors(tmp_path):
    rng = random.Random(3)
    vectors = VectorIndex(tmp_path / "chroma")
    try:
        vectors.heartbeat()
        pid = vectors.pid
        assert pid is not None
        start = open_files(pid)
        for i in range(30):
            vectors.add(f"project:d{i}", [f"e{i}"], [vector(rng)], ["doc"])
        vectors.add("project:kept", ["k"], [vector(rng)], ["kept"])
        loaded = open_files(pid)
        assert loaded - start >= 30 * 4  # each scope's index files are open
        vectors.drop(*(f"project:d{i}" for i in range(30)), "project:never-existed")
        assert open_files(pid) - start <= 8, (start, loaded, open_files(pid))
        assert vectors.query("project:d0", vector(rng), 3) == []  # its vectors went with it
        assert [h.id for h in vectors.query("project:kept", vector(rng), 3)] == ["k"]  # others stay
    finally:
        vectors.close()


def test_deleting_projects_gives_back_the_files_their_scopes_held(settings, backend):
    settings.inference_base_url = backend.base_url
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime
        vectors = runtime.deps.vectors
        vectors.heartbeat()
        pid = vectors.pid
        assert pid is not None
        start = open_files(pid)
        for i in range(12):
            assert client.post("/projects", json={"id": f"repo{i}", "name": f"Repo {i}"}).status_code == 201
            r = client.post("/chat", json={"sessionId": f"repo{i}-s", "projectId": f"repo{i}",
                                           "message": f"The build of repo {i} needs make"})
            assert r.status_code == 200, r.text
        client.portal.call(runtime.turns.drain)
        client.portal.call(runtime.deps.indexer.drain)
        assert open_files(pid) - start >= 12 * 4  # each project's index is loaded, its files open
        for i in range(12):
            assert client.delete(f"/projects/repo{i}", params={"cascade": "true"}).status_code == 204
        assert open_files(pid) - start <= 8, (start, open_files(pid))
        assert vectors.pid == pid  # released by the same process, not by a restart
        found = client.post("/memory/search", json={"query": "build of repo 3", "projectId": "repo3"})
        assert found.status_code == 200 and found.json()["results"] == []  # its memory went with it


def test_large_batches_cross_the_pipe_whole(tmp_path):
    rng = random.Random(4)
    vectors = VectorIndex(tmp_path / "chroma")
    try:
        ids = [f"e{i}" for i in range(400)]  # ~1 MB pickled: many socket reads and writes each way
        batch = [vector(rng) for _ in ids]
        vectors.add("default", ids, batch, [f"doc {i}" for i in range(400)])
        hits = vectors.query("default", batch[7], 200)
        assert len(hits) == 200 and hits[0].id == "e7" and len({h.id for h in hits}) == 200
    finally:
        vectors.close()
