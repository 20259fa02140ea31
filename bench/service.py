"""Start the real orchestrator (`python -m server`) as a child process and time its cold start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import QUIET_ENV, ROOT, tree_open_files, tree_rss_mb
from inference.processes import free_port, stop, wait_ready


def store_dirs(workdir: Path) -> tuple[Path, Path]:
    """(DATA_DIR, CHROMA_DIR) used for a benchmark store under `workdir`."""
    return workdir / "data", workdir / "chroma"


class Service:
    """The service on a free port with its stores in `workdir`, talking to `inference_url`."""

    def __init__(self, workdir: Path, inference_url: str, extra_env: dict[str, str] | None = None,
                 profile_to: Path | None = None) -> None:
        data, chroma = store_dirs(workdir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **QUIET_ENV, "DATA_DIR": str(data), "CHROMA_DIR": str(chroma),
                    "INFERENCE_BASE_URL": inference_url, "LOG_LEVEL": "warning", **(extra_env or {})}
        self.log = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.cold_start_s = float("nan")
        self.profile_to = profile_to  # run under pyinstrument (event-loop thread) and write a text report

    @property
    def pid(self) -> int:
        """Process id of the running service."""
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        """Current VmRSS of the service and its children (the vector process, an embedded node)."""
        return tree_rss_mb(self.pid)

    def open_files(self) -> int:
        """Open file descriptors of the service and its children."""
        return tree_open_files(self.pid)

    def start(self, timeout: float = 120.0) -> Service:
        """Spawn the process and wait for `GET /health` to answer 200; records `cold_start_s`."""
        t0 = time.perf_counter()
        prefix = [sys.executable]
        if self.profile_to:
            prefix += ["-m", "pyinstrument", "-r", "text", "-o", str(self.profile_to)]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*prefix, "-m", "server", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_ready(self.proc, self.base_url + "/health", timeout, "the server", self.log, interval=0.05)
        self.cold_start_s = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        """SIGTERM (SIGINT under the profiler, so it writes its report), then SIGKILL after 30 s."""
        stop(self.proc, sig=signal.SIGINT if self.profile_to else signal.SIGTERM)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
