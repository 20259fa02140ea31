"""The service's log: text on a terminal, JSON lines through a pipe, and no progress bars in either. The
server starts with an empty model cache, so it exports the embedding model (transformers and
sentence-transformers load, whose progress bars used to land in the log)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import httpx
import pytest

from inference.processes import free_port
from tests.integration.servers import ROOT

pytestmark = pytest.mark.integration
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
BAR_MARKS = ("█", "▏", "▍", "▌", "▊", "%|", "it/s]", "\x1b[A")


def run_service(tmp_path, terminal: bool) -> str:
    """Start `python -m server` with its output on a pty (`terminal`) or a pipe, answer one request, stop
    it (SIGTERM), and return everything it wrote."""
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "CHROMA_DIR": str(tmp_path / "chroma"),
           "MODEL_CACHE_DIR": str(tmp_path / "models"), "LOG_LEVEL": "info",
           "INFERENCE_BASE_URL": "http://127.0.0.1:9/v1", "PYTHONPATH": str(ROOT)}
    for name in ("LOG_FORMAT", "TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        env.pop(name, None)  # the defaults are under test
    if terminal:
        reader, writer = pty.openpty()
    else:
        reader, writer = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            env=env, stdin=subprocess.DEVNULL, stdout=writer, stderr=writer)
    os.close(writer)
    out = b""
    served = False
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([reader], [], [], 0.2)[0]:
                out += os.read(reader, 65536)
            if not served:
                try:
                    served = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
                except httpx.HTTPError:
                    continue
                deadline = time.monotonic() + 1  # the request's log line
    finally:
        proc.terminate()
        proc.wait(30)
    while select.select([reader], [], [], 0.5)[0]:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # a pty reads EIO once its other end is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(reader)
    assert served, out.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


def test_on_a_terminal_the_log_is_text_without_progress_bars(tmp_path):
    log = run_service(tmp_path, terminal=True)
    lines = log.replace("\r\n", "\n").split("\n")
    assert "exporting the embedding model to ONNX once" in log
    assert not any(mark in log for mark in BAR_MARKS), log
    records = [line for line in lines if line.strip()]
    assert all(TEXT_LINE.match(line) for line in records), "\n".join(records)
    assert not any(line.strip() == "" for line in lines[:-1]), "blank lines (cleared progress bars) in the log"
    assert any("route=/health" in line and "status=200" in line for line in records)


def test_through_a_pipe_the_log_is_json_lines_without_progress_bars(tmp_path):
    log = run_service(tmp_path, terminal=False)
    assert "exporting the embedding model to ONNX once" in log
    assert not any(mark in log for mark in BAR_MARKS), log
    records = [json.loads(line) for line in log.splitlines()]  # every line is one JSON record
    assert any(r.get("route") == "/health" and r.get("status") == 200 for r in records)
