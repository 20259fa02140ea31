"""The graph factory `langgraph.json` points at: memory stores wired in, no checkpointer.

`langgraph dev` brings its own checkpointer and refuses a custom one, calls this factory for each run
and fails any run that blocks its event loop: the stores are opened in a worker thread, once per process.
"""

from __future__ import annotations

import asyncio
import atexit

from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_graph
from graph.deps import Deps


class _StudioGraph:
    """Builds the graph on first use and hands the same one to every later run."""

    def __init__(self) -> None:
        self._deps: Deps | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> CompiledStateGraph:
        async with self._lock:
            if self._deps is None:
                from config.settings import Settings
                from graph.wiring import build_deps
                from inference.chat_models import embedded_node

                settings, node = embedded_node(Settings())
                if node is not None:  # no INFERENCE_BASE_URL: the embedded node, stopped at exit
                    await asyncio.to_thread(node.start)
                    atexit.register(node.stop)
                deps = await asyncio.to_thread(build_deps, settings)
                await asyncio.to_thread(deps.embedder.load)
                self._deps = deps
        return build_graph(self._deps).compile()


make_graph = _StudioGraph()
