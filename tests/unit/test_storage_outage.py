"""Postgres going away under the service, on a real cluster of the test's own (stopped with `pg_ctl stop -m
immediate`, started again on the same port and data): bounded failures, a 503 `storage_unavailable` with
Retry-After in each door's format, nothing stored, and service again once it is back.

The stores' Postgres schemas and the Postgres checkpointer are other parts of issue 18; here the session
store's database is a `PgDatabase` on the halted cluster, which is where an outage meets a turn first (the
session is opened before the run starts), and the runner's classification is checked on the very exceptions
psycopg raises. The whole service on the Postgres profile is tested after those parts are merged.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from fastapi.testclient import TestClient

from memory.pg import PgDatabase
from server.app import create_app
from server.health_probe import HealthProbe
from server.storage_outage import RETRY_AFTER_S, is_storage_outage
from server.turns.failures import turn_failure
from tests.engines import PostgresCluster, postgres_bin
from tests.unit.test_vector_process import finishes


@pytest.fixture
def cluster():
    if postgres_bin() is None:
        from tests.integration.servers import unavailable

        unavailable("the PostgreSQL server (apt-get install postgresql)")
    with PostgresCluster() as own:  # not the session's: this one is stopped
        yield own


def failure_of(fn) -> BaseException:
    """The exception `fn` raises, which it must raise within a bound far above the pool's timeout."""
    done, result = finishes(fn, within=60)
    assert done, "a call to a stopped Postgres never returned"
    assert isinstance(result, BaseException), result
    return result


def served_again(fn, within: float = 60.0):
    """`fn()` once it succeeds: the pool reconnects in the background, retried while requests come (a
    liveness bound, far above the pool's reconnection schedule, not a speed check)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return fn()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_postgres_outage_fails_fast_as_503_in_every_door_and_service_resumes(cluster, settings, backend):
    settings.inference_base_url = backend.base_url
    db = PgDatabase(cluster.database(), max_size=2, timeout=2.0)
    try:
        assert db.query("SELECT 1 AS one")[0]["one"] == 1
        with TestClient(create_app(settings)) as client:
            runtime = client.app.state.runtime
            sessions = runtime.deps.sessions
            kept = sessions.db
            cluster.halt()
            # A pooled connection the server cut, then no connection within the pool's timeout (PoolTimeout).
            for _ in range(3):
                exc = failure_of(lambda: db.query("SELECT 1"))
                assert is_storage_outage(exc), repr(exc)
                for stored in (False, True):  # before the reply, or while storing it: the same 503
                    error = turn_failure(runtime.turns.inference_url, exc, stored)
                    assert (error.status, error.code, error.type) == (503, "storage_unavailable",
                                                                      "storage_unavailable")
                    assert error.headers == {"Retry-After": str(RETRY_AFTER_S)}
                    assert "DATABASE_URL" in error.message

            sessions.db = db  # the session store's database is the halted cluster's
            try:
                body = {"messages": [{"role": "user", "content": "hello while the database is down"}]}
                openai = client.post("/v1/chat/completions", headers={"X-Session-Id": "pg-down"}, json=body)
                assert openai.status_code == 503 and openai.headers["Retry-After"] == str(RETRY_AFTER_S)
                assert openai.json()["error"]["code"] == "storage_unavailable"
                stream = client.post("/v1/chat/completions", headers={"X-Session-Id": "pg-down"},
                                     json={**body, "stream": True})
                assert stream.status_code == 503 and stream.json()["error"]["type"] == "storage_unavailable"
                anthropic = client.post("/v1/messages", headers={"X-Session-Id": "pg-down"},
                                        json={"model": "m", "max_tokens": 32, **body})
                assert anthropic.status_code == 503 and anthropic.headers["Retry-After"] == str(RETRY_AFTER_S)
                assert anthropic.json()["type"] == "error"
                assert anthropic.json()["error"]["type"] == "overloaded_error"
                assert "DATABASE_URL" in anthropic.json()["error"]["message"]
                seed = client.post("/chat", json={"sessionId": "pg-down", "message": "hello"})
                assert seed.status_code == 503 and seed.json()["error"]["code"] == "storage_unavailable"
                agent = client.post("/agent/invoke", json={  # LangServe
                    "input": {"messages": [{"type": "human", "content": "hello"}]},
                    "config": {"configurable": {"thread_id": "pg-down"}}})
                assert agent.status_code == 503 and "storage_unavailable" in agent.text, agent.text
                with client.websocket_connect("/orchestrate?session_id=pg-down") as voice:  # realtime
                    frame = voice.receive_json()
                    assert frame["type"] == "error" and frame["code"] == "storage_unavailable", frame
                listed = client.get("/sessions/pg-down")  # a route outside the turn engine
                assert listed.status_code == 503 and listed.json()["error"]["code"] == "storage_unavailable"
            finally:
                sessions.db = kept
            # Nothing of those turns was stored anywhere (they never started).
            assert client.get("/sessions/pg-down").status_code == 404
            assert runtime.deps.episodes.for_session("pg-down") == []
            assert all("database is down" not in p for p in backend.turn_prompts())  # never sent to the model

            cluster.resume()  # the same port and data: the pool connects again
            assert served_again(lambda: db.query("SELECT 1 AS one")[0]["one"]) == 1
    finally:
        db.close()


def test_health_reports_postgres_down_and_back(cluster, settings, backend):
    settings.inference_base_url = backend.base_url
    settings.health_probe_interval_seconds = 3600  # probed by the test
    url = cluster.database()
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime
        probe: HealthProbe = runtime.probe
        probe.postgres_url = url  # what it reads from a PgDatabase memory on the Postgres profile

        def health() -> dict:
            client.portal.call(probe.probe)
            return client.get("/health").json()

        up = health()
        assert up["dependencies"]["postgres"] == "ok"
        db = PgDatabase(url, max_size=2, timeout=2.0)
        deps = runtime.deps
        kept = deps.sessions.db, deps.semantic_cache.db
        cluster.halt()
        # The stores /health and /metrics read (active sessions, the semantic cache) on the halted cluster.
        deps.sessions.db = deps.semantic_cache.db = db
        try:
            done, down = finishes(health, within=60)
            assert done, "the health probe waited for ever on a stopped Postgres"
            assert down["status"] == "degraded" and down["dependencies"]["postgres"].startswith("error: ")
            assert down["active_sessions"] is None  # unknown while the database is down, not a failed /health
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            assert 'orchestrator_dependency_up{dependency="postgres"} 0.0' in metrics.text
        finally:
            deps.sessions.db, deps.semantic_cache.db = kept
            db.close()
        cluster.resume()
        assert health()["dependencies"]["postgres"] == "ok"
        assert 'orchestrator_dependency_up{dependency="postgres"} 1.0' in client.get("/metrics").text
