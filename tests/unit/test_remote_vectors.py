"""The vector index on a real Chroma server (`chroma run`), beside the embedded one where the same assertions
apply; and what the service does when the server goes away and comes back."""

from __future__ import annotations

import random

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings
from fastapi.testclient import TestClient

from memory.remote_vectors import RemoteVectors, server_address
from memory.sessions import DEFAULT_SCOPE
from memory.vector_process import VectorStoreError
from memory.vectors import collection_name
from server.app import create_app
from tests.engines import ChromaServer
from tests.unit.test_vector_process import finishes, stopped

DIM = 384


def vector(rng: random.Random) -> list[float]:
    return [rng.uniform(-1, 1) for _ in range(DIM)]


def own_server(tmp_path) -> ChromaServer:
    """A Chroma server of the test's own (not the session's), to stop and start again."""
    (tmp_path / "chroma-server").mkdir()
    return ChromaServer(tmp_path / "chroma-server")


def test_add_query_delete_drop_and_scopes(vector_store):
    rng = random.Random(5)
    a, b, c = vector(rng), vector(rng), vector(rng)
    vector_store.add("project:one", ["a", "b"], [a, b], ["A", "B"])
    vector_store.add("project:two", ["c"], [c], ["C"])
    hits = vector_store.query("project:one", a, 5)
    assert [h.id for h in hits][:1] == ["a"] and {h.id for h in hits} == {"a", "b"}
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)  # cosine: the same vector is similarity 1
    assert [h.id for h in vector_store.query("project:two", a, 5)] == ["c"]  # scopes never mix
    assert vector_store.query("project:none", a, 5) == []
    assert vector_store.query("project:one", a, 0) == []
    vector_store.add("project:one", ["a"], [c], ["A again"])  # an upsert: replaced, not duplicated
    assert [h.id for h in vector_store.query("project:one", c, 5)] == ["a", "b"]
    vector_store.delete("project:one", ["a"])
    assert [h.id for h in vector_store.query("project:one", a, 5)] == ["b"]
    vector_store.drop("project:one", "project:never-made")
    assert vector_store.query("project:one", b, 5) == []
    assert [h.id for h in vector_store.query("project:two", c, 5)] == ["c"]  # dropping one scope keeps others
    assert vector_store.heartbeat() > 0


def test_server_collections_are_laid_out_as_the_embedded_ones(chroma_server):
    chroma_server.reset()
    vectors = RemoteVectors(chroma_server.url)
    try:
        vectors.add("project:p", ["e1"], [vector(random.Random(6))], ["doc"])
    finally:
        vectors.close()
    host, port, _ = server_address(chroma_server.url)
    raw = chromadb.HttpClient(host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False))
    try:
        collection = raw.get_collection(collection_name("episodes", "project:p"))
        assert collection.metadata == {"scope": "project:p"}
        assert collection.configuration_json["hnsw"]["space"] == "cosine"
        assert collection.get(ids=["e1"], include=["documents"])["documents"] == ["doc"]
    finally:
        raw.close()


def test_a_scope_dropped_by_another_worker_is_made_again_by_this_one(chroma_server):
    chroma_server.reset()
    rng = random.Random(7)
    one, two = RemoteVectors(chroma_server.url), RemoteVectors(chroma_server.url)
    try:
        v = vector(rng)
        one.add("project:shared", ["x"], [v], ["X"])
        assert [h.id for h in two.query("project:shared", v, 3)] == ["x"]  # both workers see one collection
        two.drop("project:shared")  # a project deleted through worker two
        assert one.query("project:shared", v, 3) == []  # worker one's handle was stale: found anew, empty
        one.add("project:shared", ["y"], [v], ["Y"])
        assert [h.id for h in two.query("project:shared", v, 3)] == ["y"]
    finally:
        one.close()
        two.close()


def test_a_server_down_or_hung_fails_calls_in_bounded_time_and_service_resumes(tmp_path):
    rng = random.Random(8)
    v = vector(rng)
    with own_server(tmp_path) as server:
        vectors = RemoteVectors(server.url, timeout=1.0)
        try:
            vectors.add("default", ["a"], [v], ["A"])
            assert server.proc is not None
            with stopped(server.proc.pid):  # accepts connections, never answers
                done, result = finishes(lambda: vectors.query("default", v, 3))
                assert done, "a call to a stopped Chroma server never returned"
                assert isinstance(result, VectorStoreError) and "did not answer" in str(result)
            server.stop()
            with pytest.raises(VectorStoreError, match="could not reach"):
                vectors.heartbeat()
            server.start()  # the same port and data
            assert [h.id for h in vectors.query("default", v, 3)] == ["a"]  # the same client carries on
        finally:
            vectors.close()


def test_a_service_started_while_the_server_is_down_connects_once_it_is_up(tmp_path):
    server = own_server(tmp_path)
    vectors = RemoteVectors(server.url, timeout=1.0)  # nothing listens yet
    try:
        with pytest.raises(VectorStoreError, match="could not reach"):
            vectors.query("default", vector(random.Random(9)), 3)
        server.start()
        assert vectors.heartbeat() > 0 and vectors.pid is None
    finally:
        vectors.close()
        server.stop()


def test_chroma_url_must_be_an_http_url():
    assert server_address("http://chroma:8000") == ("chroma", 8000, False)
    assert server_address("https://vectors.example") == ("vectors.example", 443, True)
    assert server_address("127.0.0.1:9000") == ("127.0.0.1", 9000, False)
    with pytest.raises(ValueError, match="CHROMA_URL"):
        server_address("ftp://chroma:21")



def test_a_service_rides_out_a_chroma_server_outage(settings, backend, tmp_path):
    """Under a running service: the Chroma server hung, then stopped, then started again on the same port
    and data. Turns complete throughout with recall degraded to lexical (and say so); /health and /metrics
    report the outage; the episodes written meanwhile stay pending and are embedded once the server is back,
    without waiting for another turn."""
    settings.inference_base_url = backend.base_url
    settings.vector_timeout_seconds = 1.0
    settings.health_probe_interval_seconds = 3600  # probed by the test, at the moments it checks
    with own_server(tmp_path) as server, TestClient(create_app(settings.model_copy(
            update={"chroma_url": server.url}))) as client:
        runtime = client.app.state.runtime
        deps = runtime.deps

        def turn(session: str, text: str):
            r = client.post("/v1/chat/completions", headers={"X-Session-Id": session},
                            json={"messages": [{"role": "user", "content": text}]})
            assert r.status_code == 200, r.text
            client.portal.call(runtime.turns.drain)
            client.portal.call(deps.indexer.drain)
            return r

        def health() -> dict:
            client.portal.call(runtime.probe.probe)
            return client.get("/health").json()

        first = turn("outage-a", "remember the blue door")
        assert "X-Recall-Degraded" not in first.headers and deps.episodes.pending(10) == []
        assert health()["storage"] == {"database": "sqlite", "vectors": "chroma server", "chroma_url": server.url}
        assert health()["dependencies"]["vector_store"] == "ok"

        assert server.proc is not None
        with stopped(server.proc.pid):  # accepts connections, never answers
            done, hung = finishes(lambda: turn("outage-b", "which door was it?"))
            assert done, "a turn waited for ever on a hung Chroma server"
        assert hung.headers["X-Recall-Degraded"] == "true"
        assert "blue door" in backend.turn_prompts()[-1]  # lexical recall found the other session's turn

        server.stop()
        down = turn("outage-c", "what colour was the door?")
        assert down.headers["X-Recall-Degraded"] == "true"
        assert down.json()["choices"][0]["message"]["content"] == "You said: what colour was the door?"
        assert "blue door" in backend.turn_prompts()[-1]
        status = health()
        assert status["status"] == "degraded" and "could not reach" in status["dependencies"]["vector_store"]
        assert 'orchestrator_dependency_up{dependency="vector_store"} 0.0' in client.get("/metrics").text
        pending = {e.id for e in deps.episodes.pending(10)}
        assert len(pending) >= 1  # the outage's episodes are kept, not lost, not marked indexed

        server.start()  # the same port and data
        assert health()["dependencies"]["vector_store"] == "ok"  # and the probe scheduled the indexer
        client.portal.call(deps.indexer.drain)
        assert deps.episodes.pending(10) == []
        assert 'orchestrator_dependency_up{dependency="vector_store"} 1.0' in client.get("/metrics").text
        again = turn("outage-d", "what colour was the door?")
        assert "X-Recall-Degraded" not in again.headers
        query = deps.embedder.embed_one("what colour was the door?")
        found = {h.id for h in deps.vectors.query(DEFAULT_SCOPE, query, 10)}
        assert pending <= found  # embedded after the outage, into the server that came back
