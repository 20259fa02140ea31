"""The dialogue graph's factory for `langgraph.json`: no checkpointer (`langgraph dev` brings its own).

It shares the chat graph factory's chat model and loaded embedder (graph/studio.py), so one `langgraph dev`
process starts one embedded node and opens the stores once.
"""

from __future__ import annotations

from langgraph.graph.state import CompiledStateGraph

from dialogue.builder import build_dialogue_graph
from dialogue.deps import DialogueDeps


class _StudioDialogue:
    """Builds the dialogue deps on first use and a compiled graph for every run."""

    def __init__(self) -> None:
        self._deps: DialogueDeps | None = None

    async def __call__(self) -> CompiledStateGraph:
        if self._deps is None:
            from config.settings import Settings
            from dialogue.deps import dialogue_deps
            from graph.studio import make_graph
            from inference.chat_models import embedded_node

            await make_graph()  # opens (once) what the chat graph uses
            chat = make_graph._deps
            assert chat is not None
            settings, _ = embedded_node(Settings())  # the node's settings, as the chat graph resolved them
            self._deps = dialogue_deps(settings, chat.chat_model, chat.embedder)
        return build_dialogue_graph(self._deps).compile()


make_dialogue_graph = _StudioDialogue()
