"""`orchestrator compact` on a store made without the retention policy, and kill -9 in the middle of it."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from memory.checkpoint_retention import bytes_on_disk
from tests.integration.servers import ROOT, ServiceProcess

pytestmark = pytest.mark.integration
CLI = [str(Path(sys.executable).with_name("orchestrator"))]
SESSIONS = ("red", "green", "blue")


def fill(base_url: str, turns: int, text: str) -> dict[str, list[tuple[str, str]]]:
    """`turns` turns on each session; then every session's conversation as the service reads it."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for i in range(turns):
            for session in SESSIONS:
                r = client.post("/v1/chat/completions", headers={"X-Session-Id": session},
                                json={"messages": [{"role": "user", "content": f"{session} {i} {text}"}]})
                assert r.status_code == 200
        return conversations(client)


def conversations(client: httpx.Client) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for session in SESSIONS:
        body = client.get(f"/sessions/{session}/messages").json()
        out[session] = [(m["role"], m["content"]) for m in body["messages"]] + [("summary", body["summary"])]
    return out


def heads(path: Path) -> dict[str, tuple[str, bytes]]:
    """Each thread's newest root checkpoint: its id and its bytes."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT thread_id, MAX(checkpoint_id) FROM checkpoints WHERE checkpoint_ns = '' "
                          "GROUP BY thread_id").fetchall()
        return {t: (c, db.execute("SELECT checkpoint FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
                                  "AND checkpoint_id = ?", (t, c)).fetchone()[0]) for t, c in rows}


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT thread_id, COUNT(*) FROM checkpoints GROUP BY thread_id"))


def cli_env(workdir: Path) -> dict[str, str]:
    return {**os.environ, "DATA_DIR": str(workdir / "data"), "CHROMA_DIR": str(workdir / "chroma")}


def test_compact_shrinks_a_store_made_without_the_policy_and_the_service_runs_on_it(backend, tmp_path):
    env = {"INFERENCE_BASE_URL": backend.base_url, "CHECKPOINTS_KEPT": "0"}
    path = tmp_path / "data" / "checkpoints.db"
    with ServiceProcess(tmp_path, env) as svc:
        before = fill(svc.base_url, 12, "lorem ipsum " * 300)
        refused = subprocess.run([*CLI, "compact"], env=cli_env(tmp_path), capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode != 0 and "already in use by another orchestrator process" in refused.stderr
    assert all(n >= 12 for n in counts(path).values())  # one or more a turn
    size, newest = bytes_on_disk(path), heads(path)

    done = subprocess.run([*CLI, "compact", "--keep", "2"], env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3/3" in done.stderr  # the progress bar ran to the end
    freed = int(re.search(r"([\d,]+) bytes freed", done.stdout).group(1).replace(",", ""))
    assert freed > size / 2 and bytes_on_disk(path) < size / 2
    assert counts(path) == {s: 2 for s in SESSIONS} and heads(path) == newest
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on

    with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url}) as again:
        with httpx.Client(base_url=again.base_url, timeout=60) as client:
            assert conversations(client) == before
            r = client.post("/v1/chat/completions", headers={"X-Session-Id": "red"},
                            json={"messages": [{"role": "user", "content": "after compact"}]})
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "You said: after compact"
            metrics = client.get("/metrics").text
            assert re.search(r'orchestrator_checkpoint_rows\{table="checkpoints"\} [1-9]', metrics)


def test_kill_9_during_compact_loses_nothing(backend, tmp_path):
    path = tmp_path / "data" / "checkpoints.db"
    with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url, "CHECKPOINTS_KEPT": "0"}) as svc:
        before = fill(svc.base_url, 8, "short")
    # Many more sessions, copies of the real ones, so that the kill lands while sessions remain to prune.
    with sqlite3.connect(path) as db:
        for i in range(600):
            db.execute("INSERT INTO checkpoints SELECT 'copy' || ? || '-' || thread_id, checkpoint_ns, checkpoint_id, "
                       "parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id IN "
                       "('red', 'green', 'blue')", (i,))
    newest = heads(path)
    assert len(newest) == 1803

    proc = subprocess.Popen([*CLI, "compact", "--keep", "2"], env=cli_env(tmp_path), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = bytearray()

    def read_progress() -> None:  # the bar redraws with \r, never a newline: read it byte by byte
        while chunk := proc.stderr.read(1):
            progress.extend(chunk)

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not re.search(rb" ([1-9]\d*)/1803", bytes(progress)):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # sessions pruned, and more to go
    proc.wait()
    reader.join(5)
    assert proc.returncode == -signal.SIGKILL and b"1803/1803" not in progress

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = counts(path)
    assert heads(path) == newest  # every session's newest checkpoint, byte for byte
    assert 0 < sum(n <= 2 for n in after.values()) < len(after)  # killed mid-way

    done = subprocess.run([*CLI, "compact", "--keep", "2"], env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert set(counts(path).values()) == {2} and heads(path) == newest
    with ServiceProcess(tmp_path, {"INFERENCE_BASE_URL": backend.base_url}) as again:
        with httpx.Client(base_url=again.base_url, timeout=60) as client:
            assert conversations(client) == before
