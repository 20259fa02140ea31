"""Start the real service, or `langgraph dev` on the same graph, as a subprocess on a free 127.0.0.1 port,
and stop it. The benchmarks use these too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from inference.processes import free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}

__all__ = ["ROOT", "OFFLINE", "DevServer", "ServiceProcess", "free_port", "unavailable"]


def unavailable(what: str) -> None:
    """A tool a test drives is missing: skip on a developer's machine, fail in CI (CI=true), where the install
    step (`make install` / `make test`) must have provided it."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"this test cannot run in CI without {what}", pytrace=False)
    pytest.skip(f"needs {what} (`make test` installs it)")


class ServiceProcess:
    """`python -m server` with the given settings in its environment."""

    def __init__(self, data: Path, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATA_DIR": str(data / "data"),
            "CHROMA_DIR": str(data / "chroma"),
            "LOG_LEVEL": "warning",
            **env,
        }
        self.proc: subprocess.Popen | None = None
        self.log = data / f"server-{self.port}.log"

    def start(self, timeout: float = 90.0) -> ServiceProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_ready(self.proc, self.base_url + "/health", timeout, "the server", self.log)
        return self

    def stop(self) -> None:
        stop(self.proc)

    def __enter__(self) -> ServiceProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class DevServer:
    """`langgraph dev` (in-memory runtime) serving langgraph.json's graph, stores under `workdir`, offline."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **OFFLINE, "DATA_DIR": str(workdir / "data"),
                    "CHROMA_DIR": str(workdir / "chroma"), **env}
        self.log = workdir / "langgraph-dev.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> DevServer:
        cli = Path(sys.executable).with_name("langgraph")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(cli), "dev", "--port", str(self.port), "--no-browser", "--no-reload"],
                                         cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_ready(self.proc, self.url + "/ok", 180, "langgraph dev", self.log, interval=0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc, grace=20)
