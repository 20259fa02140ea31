"""`orchestrator dialogues topics.txt --turns 2-4 --out data.jsonl` against a running service."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.dialogue_voices import Voice
from tests.fake_backend import FakeBackend
from tests.integration.servers import ROOT, ServiceProcess

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "dialogues", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_cli_runs_a_batch_writes_the_export_and_prints_a_summary(tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text("# topics\nsourdough starters\n\nnight trains\nmoss gardens\n")
    out = tmp_path / "data.jsonl"
    with FakeBackend(Voice("Configured")) as node, \
            ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": node.base_url}) as svc:
        done = _cli(str(topics), "--turns", "2-4", "--out", str(out), "--format", "sharegpt",
                    "--base-url", svc.base_url)
        bad = _cli(str(topics), "--turns", "5-2", "--out", str(out), "--base-url", svc.base_url)
    assert done.returncode == 0, done.stderr
    assert "3/3  done 3" in done.stderr  # the progress line
    table = done.stdout.splitlines()
    assert table[0].split() == ["topic", "status", "turns", "tokens", "ending"]
    assert any(line.startswith("night trains") and " done " in line and "max_turns" in line for line in table)
    assert "3 dialogues: 3 done" in done.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["topic"] for r in records) == ["moss gardens", "night trains", "sourdough starters"]
    for record in records:
        assert [c["from"] for c in record["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
    assert bad.returncode == 2 and "MIN <= MAX" in bad.stderr


def test_the_cli_can_run_the_service_in_process(tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text("harbour seals\n")
    out = tmp_path / "data.jsonl"
    with FakeBackend(Voice("Configured")) as node:
        env = {**os.environ, "INFERENCE_BASE_URL": node.base_url, "DATA_DIR": str(tmp_path / "data"),
               "CHROMA_DIR": str(tmp_path / "chroma"), "LOG_LEVEL": "warning"}
        done = subprocess.run([sys.executable, "-m", "server.cli", "dialogues", str(topics), "--turns", "2",
                               "--out", str(out), "--in-process"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "1 dialogues: 1 done" in done.stdout
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert (tmp_path / "data" / "dialogues.db").exists()
