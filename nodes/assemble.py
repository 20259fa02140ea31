"""assemble: the prompt, in seed 001's order, within the inference node's context budget.

system prompt + contract (+ the client's system prompt) → semantic memories → rolling summary →
recent turns → current message. Everything before the turns goes in one system message: several
chat templates (llama.cpp) refuse a system message anywhere but first.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

import prompts
from graph.budget import CLIENT_SYSTEM_SHARE, describe_tools, estimate_tokens, trim_text
from graph.deps import Deps
from graph.state import Node, Recalled, State
from graph.transcript import merge_turns, to_chat
from graph.window import window_start


def make_assemble(deps: Deps) -> Node:
    """Build the assemble node."""
    limits = deps.limits

    async def assemble(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Build the prompt within the budget (graph/budget.py says what gives way first); the current
        message is never dropped. `prompt_stats` records tokens offered vs. sent and what was trimmed."""
        messages = state.get("messages", [])
        budget = limits.context_tokens - limits.max_tokens
        template = "system_plain" if deps.contract == "off" else "system"
        tools = state.get("tools") or []
        client = state.get("system") or ""
        turns = [t for t in (to_chat(m) for m in messages[window_start(messages, limits.recent_messages) :]) if t]
        turn_tokens = sum(estimate_tokens(t) for _, t in turns)
        trimmed: list[str] = []
        memory_offered = _memory_tokens(state)
        head = prompts.render(template, tools=describe_tools(tools))
        offered = estimate_tokens(head) + estimate_tokens(client) + turn_tokens + memory_offered

        def over() -> bool:
            return estimate_tokens(head) + estimate_tokens(client) + turn_tokens > budget

        if tools and over():  # 1. tool descriptions cut to their first sentence
            head = prompts.render(template, tools=describe_tools(tools, 1))
            trimmed.append("tool_descriptions")
        if client and over():  # 2. the client's system prompt: what turns and memory leave, at least its share
            room = budget - estimate_tokens(head) - turn_tokens - memory_offered
            client = _trimmed(client, max(int(budget * CLIENT_SYSTEM_SHARE), room), trimmed)
        if tools and over():  # 3. the schemas' own descriptions
            head = prompts.render(template, tools=describe_tools(tools, 2))
            trimmed.append("tool_schema_descriptions")
        used = estimate_tokens(head) + estimate_tokens(client) + turn_tokens
        # 4. The oldest turns, but the last user turn and what follows stay; 5. the client's prompt again.
        dropped = 0
        while used > budget and len(turns) > 1 and not _is_last_user(turns, 0):
            used -= estimate_tokens(turns.pop(0)[1])
            dropped += 1
        if dropped:
            trimmed.append(f"turns:{dropped}")
        if client and used > budget:
            before = estimate_tokens(client)
            client = _trimmed(client, max(0, before - (used - budget)), trimmed)
            used -= before - estimate_tokens(client)
        if client:
            head += "\n\n" + prompts.render("client_system", client_system=client)
        sections, used, placed = _memory_sections(state, budget, used, trimmed)
        system = "\n\n".join([head, *sections])
        stats = {"budget": budget, "tokens_offered": offered, "tokens_sent": used,
                 "trimmed": trimmed, "memory": placed}
        # Plain role/content dicts, not message objects: the prompt is an intermediate value, and message
        # objects in a node's output would be replayed to every `messages`-mode stream.
        return {"prompt": [{"role": "system", "content": system}, *merge_turns(turns)], "prompt_stats": stats}

    return assemble


def _trimmed(client: str, max_tokens: int, trimmed: list[str]) -> str:
    out = trim_text(client, max_tokens)
    if out != client and "client_system" not in trimmed:
        trimmed.append("client_system")
    return out


def _memory_blocks(state: State) -> tuple[str, str, list[str]]:
    """The summary block, the entities block and the recalled episodes ("" / [] when there are none)."""
    recalled: Recalled | dict[str, Any] = state.get("recalled") or {}
    summary, entities = state.get("summary"), recalled.get("entities") or []
    summary_block = prompts.render("summary_context", summary=summary) if summary else ""
    entity_block = prompts.render("entities", entities="\n".join(f"- {e}" for e in entities)) if entities else ""
    return summary_block, entity_block, list(recalled.get("episodes", []))


def _memory_tokens(state: State) -> int:
    summary_block, entity_block, docs = _memory_blocks(state)
    return sum(estimate_tokens(t) for t in (summary_block, entity_block, *docs) if t)


def _memory_sections(state: State, budget: int, used: int,
                     trimmed: list[str]) -> tuple[list[str], int, dict[str, Any]]:
    """Entities, recalled episodes and the summary, in seed 001's order, as far as the budget allows.
    Returns the sections, the tokens used after them and what went in (`{"episodes": n, "entities": n,
    "summary": bool}`: the first n recalled episodes; kept with the turn for the web page)."""
    summary_block, entity_block, docs = _memory_blocks(state)
    sections = []
    if summary_block and used + estimate_tokens(summary_block) <= budget:
        sections.append(summary_block)
        used += estimate_tokens(summary_block)
    episodes: list[str] = []
    for doc in docs:
        if used + estimate_tokens(doc) > budget:
            break
        episodes.append(doc)
        used += estimate_tokens(doc)
    if len(episodes) < len(docs) or (summary_block and summary_block not in sections):
        trimmed.append("memory")
    if episodes:
        sections.insert(0, prompts.render("memory", episodes="\n---\n".join(episodes)))
    # Entities first: structured facts are the most stable context (seed 001's order). They are few
    # (ENTITY_TOP_K) and short, so they are not budgeted.
    if entity_block:
        sections.insert(0, entity_block)
        used += estimate_tokens(entity_block)
    recalled: Recalled | dict[str, Any] = state.get("recalled") or {}
    entities = recalled.get("entities") or []
    placed = {"episodes": len(episodes), "entities": len(entities) if entity_block else 0,
              "summary": bool(summary_block) and summary_block in sections}
    return sections, used, placed


def _is_last_user(turns: list[tuple[str, str]], index: int) -> bool:
    return turns[index][0] == "user" and all(role != "user" for role, _ in turns[index + 1 :])
