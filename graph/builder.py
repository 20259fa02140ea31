"""build_graph(deps): the uncompiled memory graph. Callers compile it with the checkpointer they own."""

from __future__ import annotations

from functools import partial
from typing import Literal

from langgraph.graph import END, START, StateGraph

from graph.deps import Deps, MemoryLimits
from graph.state import InputState, OutputState, State
from nodes.assemble import make_assemble
from nodes.classify import make_classify
from nodes.infer import make_infer
from nodes.parse_tools import make_parse_tools
from nodes.persist import make_persist
from nodes.recall import make_recall
from nodes.summarise import make_summarise, summary_due

NODES = ("classify", "recall", "assemble", "infer", "parse_tools", "persist", "summarise")


def build_graph(deps: Deps) -> StateGraph:
    """classify → recall → assemble → infer → parse_tools → persist → summarise (once the session is long enough;
    otherwise the turn ends at persist)."""
    builder = StateGraph(State, input_schema=InputState, output_schema=OutputState)
    builder.add_node("classify", make_classify(deps))
    builder.add_node("recall", make_recall(deps))
    builder.add_node("assemble", make_assemble(deps))
    builder.add_node("infer", make_infer(deps))
    builder.add_node("parse_tools", make_parse_tools(deps))
    builder.add_node("persist", make_persist(deps))
    builder.add_node("summarise", make_summarise(deps))
    builder.add_edge(START, NODES[0])
    for before, after in zip(NODES[:-2], NODES[1:-1], strict=True):
        builder.add_edge(before, after)
    builder.add_conditional_edges("persist", partial(route_after_persist, limits=deps.limits), ["summarise", END])
    builder.add_edge("summarise", END)
    return builder


def route_after_persist(state: State, limits: MemoryLimits) -> Literal["summarise", "__end__"]:
    """Summarise once the session has outgrown its recent window; otherwise the turn ends at persist."""
    return "summarise" if summary_due(state, limits) else "__end__"
