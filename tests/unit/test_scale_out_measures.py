"""The scale-out benchmark's measures (bench/counting_proxy.py, bench/engine_costs.py) on real engines: the
proxy counts real Chroma-client calls by route while passing them through, and the Postgres window counts
exactly the statements, transactions and rows a client made, and the connections it held."""

from __future__ import annotations

import time

import chromadb
import httpx
import psycopg
import pytest

from bench.counting_proxy import CountingProxy, route_of
from bench.engine_costs import (
    ConnectionSampler,
    PgWindow,
    chroma_per_turn,
    connections,
    enable_statement_stats,
    postmaster_pid,
)
from tests.engines import PostgresCluster
from tests.fake_backend import FakeBackend


def test_route_of_names_the_route_not_the_collection():
    assert route_of("POST", "/api/v2/tenants/t/databases/d/collections/3f2a-99/query?x=1") == \
        "POST /api/v2/tenants/t/databases/d/collections/{id}/query"


def test_the_proxy_passes_requests_through_and_counts_them_by_route():
    with FakeBackend() as backend, CountingProxy(backend.base_url.removesuffix("/v1")) as proxy:
        with httpx.Client(base_url=proxy.url + "/v1", timeout=10) as client:
            replies = [client.post("/chat/completions", json={"model": "fake-model", "messages": [
                {"role": "user", "content": f"hello {i}"}]}) for i in range(3)]
            models = client.get("/models")
    assert [r.status_code for r in replies] == [200, 200, 200] and models.status_code == 200
    assert all(r.json()["choices"][0]["message"]["content"] for r in replies)
    assert models.json()["data"][0]["id"] == "fake-model"
    assert proxy.counts() == {"POST /v1/chat/completions": 3, "GET /v1/models": 1}
    assert len(backend.requests) == 3  # every call reached the node


def test_the_proxy_counts_chroma_client_calls_per_operation(chroma_server):
    with CountingProxy(chroma_server.url) as proxy:
        client = chromadb.HttpClient(host="127.0.0.1", port=proxy.port)
        collection = client.get_or_create_collection("proxy-count", embedding_function=None)
        collection.add(ids=["a"], embeddings=[[0.1, 0.2]], documents=["x"])  # the client's first add checks limits
        before = proxy.counts()
        collection.add(ids=["b"], embeddings=[[0.3, 0.1]], documents=["y"])
        hits = collection.query(query_embeddings=[[0.1, 0.2]], n_results=1)
        collection.query(query_embeddings=[[0.3, 0.1]], n_results=1)
        costs = chroma_per_turn(before, proxy.counts(), turns=1)
    assert hits["ids"] == [["a"]]  # the proxy returned the server's answer intact
    assert costs["by_operation_per_turn"] == {"query": 2.0, "add": 1.0}
    assert costs["calls_per_turn"] == 3.0


@pytest.fixture(scope="module")
def cluster():
    with PostgresCluster() as running:
        yield running


def test_the_postgres_window_counts_what_a_client_did(cluster):
    assert enable_statement_stats(cluster)
    url = cluster.database("costs")
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    window = PgWindow(cluster.url(), database, True, postmaster_pid(cluster), None, flush_wait_s=1.0)
    window.start()
    with ConnectionSampler(cluster.url(), database, interval_s=0.05) as sampler:
        with psycopg.connect(url, autocommit=True) as first, psycopg.connect(url, autocommit=True) as second:
            for i in range(10):
                (first if i % 2 else second).execute("INSERT INTO t VALUES (%s)", (i,))
            # ~0.3 s or more of CPU in a backend that has exited when the window closes.
            first.execute("SELECT count(*) FROM generate_series(1, 5000000)").fetchone()
            assert connections(cluster.url(), database) == 2
            time.sleep(0.3)  # a few samples while both are open
    per_turn = window.stop(turns=5)
    assert sampler.peak == 2
    assert per_turn["statements_insert"] == 2.0 and per_turn["statements_select"] == 0.2  # over 5 "turns"
    assert per_turn["statements"] == 2.2 and per_turn["tup_inserted"] == 2.0
    assert per_turn["xact_commit"] >= 2.0  # autocommit: one transaction a statement (autovacuum may add)
    # The backends that did the work have exited: their CPU still counts (the postmaster reaped them).
    assert per_turn["postgres_cpu_s"] >= 0.1 / 5
    assert 0.0 <= per_turn["postgres_cpu_s_net"] <= per_turn["postgres_cpu_s"]
    assert connections(cluster.url(), database) == 0
