"""The embedding model persists with the store (memory/embedding_identity.py): a store embedded with one model is
refused at start-up by a service configured with another, naming both and `orchestrator reembed`; the command
embeds the store anew, after which the service starts with the new model and recalls by vector again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from memory.embedder import packaged_model_path
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration
CLI = [str(Path(sys.executable).with_name("orchestrator"))]
FACT = "My cousin Bartholomew keeps seventeen ferrets in his garage in Lisbon"


def three_layer_minilm(where: Path) -> Path:
    """Another real model: the packaged MiniLM's weights with only its first three encoder layers."""
    where.mkdir()
    for file in packaged_model_path().iterdir():
        if file.name != "config.json":
            (where / file.name).symlink_to(file)
    config = json.loads((packaged_model_path() / "config.json").read_text())
    (where / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    return where


def search(base_url: str, query: str) -> list[dict]:
    done = httpx.post(base_url + "/memory/search", json={"query": query, "projectId": "emb", "k": 5}, timeout=60)
    assert done.status_code == 200, done.text
    return done.json()["results"]


def test_a_store_is_not_queried_with_another_model_until_reembedded(backend, tmp_path):
    other = three_layer_minilm(tmp_path / "minilm-3")
    env = {"INFERENCE_BASE_URL": backend.base_url, "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    with ServiceProcess(tmp_path, env) as svc:
        httpx.post(svc.base_url + "/projects", json={"id": "emb", "name": "E"}, timeout=30).raise_for_status()
        done = httpx.post(svc.base_url + "/sessions/emb-s/import", params={"projectId": "emb"}, timeout=120,
                          json={"messages": [{"role": "user", "content": FACT},
                                             {"role": "assistant", "content": "That is a lot of ferrets."}]})
        assert done.status_code == 200, done.text

    refused = ServiceProcess(tmp_path, {**env, "EMBEDDING_MODEL_PATH": str(other)})
    with pytest.raises(RuntimeError, match="exited"):
        refused.start()
    said = refused.log.read_text()
    assert "embedded with all-MiniLM-L6-v2" in said and str(other) in said and "orchestrator reembed" in said

    cli_env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "CHROMA_DIR": str(tmp_path / "chroma"), **env,
               "EMBEDDING_MODEL_PATH": str(other)}
    done = subprocess.run([*CLI, "reembed"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1 episodes and 0 entities embedded with " + str(other) in done.stdout
    assert "was all-MiniLM-L6-v2" in done.stdout

    with ServiceProcess(tmp_path, {**env, "EMBEDDING_MODEL_PATH": str(other)}) as svc:
        hits = search(svc.base_url, "how many ferrets does my cousin keep")
        assert hits and FACT in hits[0]["text"]
        vector = hits[0]["scoreParts"]["vector"]
        assert vector is not None and vector["rank"] == 1  # found by the new model's vectors too

    back = ServiceProcess(tmp_path, env)  # the store now belongs to the three-layer model
    with pytest.raises(RuntimeError, match="exited"):
        back.start()
    assert "now gives all-MiniLM-L6-v2" in back.log.read_text()
