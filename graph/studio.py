"""The graph factory `langgraph.json` points at: memory stores wired in, no checkpointer.

`langgraph dev` brings its own checkpointer and refuses a custom one; every blocking call of the
nodes already goes through `asyncio.to_thread`, which its run loop requires.
"""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_graph


def make_graph() -> CompiledStateGraph:
    """Build the graph from the process settings (environment and `.env`)."""
    from server.runtime import build_deps
    from server.settings import Settings

    return build_graph(build_deps(Settings())).compile()
