"""The real server with CHROMA_URL set: its vectors live in a Chroma server (`chroma run`), driven by the
official `openai` SDK in front of a scripted inference node."""

from __future__ import annotations

import time

import chromadb
import httpx
import openai
import pytest
from chromadb.config import Settings as ChromaSettings

from memory.remote_vectors import server_address
from memory.sessions import DEFAULT_SCOPE
from memory.vectors import collection_name
from tests.engines import ChromaServer
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    with ChromaServer(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server


@pytest.fixture(scope="module")
def service(backend, chroma, tmp_path_factory):
    data = tmp_path_factory.mktemp("service")
    env = {"INFERENCE_BASE_URL": backend.base_url, "INFERENCE_MODEL": "fake-model", "CHROMA_URL": chroma.url}
    with ServiceProcess(data, env) as svc:
        svc.data = data
        yield svc


def vector_hit(service, query: str, within: float = 60.0) -> dict:
    """The first /memory/search result found by the vector search, once the indexer has embedded it (it
    waits for a quiet moment, 5 s at most)."""
    deadline = time.monotonic() + within
    while True:
        results = httpx.post(f"{service.base_url}/memory/search", json={"query": query}, timeout=30).json()
        found = [r for r in results["results"] if r["scoreParts"]["vector"]]
        if found or time.monotonic() > deadline:
            assert found, results
            return found[0]
        time.sleep(0.3)


def test_vectors_live_in_the_chroma_server_and_recall_finds_them(service, backend, chroma):
    client = openai.OpenAI(base_url=service.base_url + "/v1", api_key="unused", max_retries=0,
                           default_headers={"X-Session-Id": "chroma-first"})
    reply = client.chat.completions.create(model="fake-model",
                                           messages=[{"role": "user", "content": "My cat is called Miso"}])
    assert reply.choices[0].message.content == "You said: My cat is called Miso"

    hit = vector_hit(service, "What is the name of my kitty?")  # no word in common: the vector found it
    assert "Miso" in hit["text"] and hit["scoreParts"]["lexical"] is None
    assert hit["scoreParts"]["vector"]["similarity"] > 0.3

    host, port, _ = server_address(chroma.url)
    raw = chromadb.HttpClient(host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False))
    try:
        stored = raw.get_collection(collection_name("episodes", DEFAULT_SCOPE)).get(include=["documents"])
    finally:
        raw.close()
    assert stored["ids"] == [hit["id"]] and "Miso" in stored["documents"][0]  # in the server...
    assert not (service.data / "chroma" / "chroma.sqlite3").exists()  # ...and not in CHROMA_DIR

    other = openai.OpenAI(base_url=service.base_url + "/v1", api_key="unused", max_retries=0,
                          default_headers={"X-Session-Id": "chroma-second"})
    answer = other.chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": "What is the name of my kitty?"}])
    assert answer.headers.get("X-Recall-Degraded") is None
    assert "Miso" in backend.turn_prompts()[-1]  # recalled into the other session's prompt

    health = httpx.get(service.base_url + "/health", timeout=30).json()
    assert health["storage"] == {"database": "sqlite", "vectors": "chroma server", "chroma_url": chroma.url}
    assert health["dependencies"]["vector_store"] == "ok"
