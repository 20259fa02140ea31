"""build_dialogue_graph(deps): speak → judge → speak … until judge names an ending. Uncompiled: the service
compiles it with its checkpointer (a checkpoint after every turn), the studio factory without one."""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph

from dialogue.deps import DialogueDeps
from dialogue.nodes.judge import make_judge
from dialogue.nodes.speak import make_speak
from dialogue.state import DialogueInput, DialogueState


def build_dialogue_graph(deps: DialogueDeps) -> StateGraph:
    """The dialogue graph."""
    builder = StateGraph(DialogueState, input_schema=DialogueInput)
    builder.add_node("speak", make_speak(deps))
    builder.add_node("judge", make_judge(deps))
    builder.add_edge(START, "speak")
    builder.add_conditional_edges("speak", route_after_speak, ["judge", END])
    builder.add_conditional_edges("judge", route_after_judge, ["speak", END])
    return builder


def route_after_speak(state: DialogueState) -> Literal["judge", "__end__"]:
    """A failed or empty turn ends the dialogue; a turn is judged."""
    return "__end__" if state.get("ending_reason") else "judge"


def route_after_judge(state: DialogueState) -> Literal["speak", "__end__"]:
    """Go on until an ending reason is set."""
    return "__end__" if state.get("ending_reason") else "speak"


def recursion_limit(max_turns: int) -> int:
    """Super-steps a dialogue of `max_turns` needs (two a turn), with room to spare."""
    return 2 * max_turns + 10
