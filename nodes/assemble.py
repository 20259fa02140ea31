"""assemble: the prompt, in seed 001's order, within the inference node's context budget.

system prompt + contract (+ the client's system prompt) → semantic memories → rolling summary →
recent turns → current message. Everything before the turns goes in one system message: several
chat templates (llama.cpp) refuse a system message anywhere but first.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

import prompts
from graph.contract import render_reply
from graph.deps import Deps
from graph.state import State
from graph.window import window_start

CHARS_PER_TOKEN = 3.5  # a conservative average for English and code with BPE tokenizers


def estimate_tokens(text: str) -> int:
    """A cheap token estimate, good enough to keep a prompt inside a context window."""
    return int(len(text) / CHARS_PER_TOKEN) + 4


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """The offered tools, one per line with their JSON-schema parameters."""
    if not tools:
        return "(none: keep tool_calls empty)"
    lines = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = json.dumps(fn.get("parameters") or {}, ensure_ascii=False, separators=(",", ":"))
        desc = (fn.get("description") or "").strip().replace("\n", " ")
        lines.append(f"- {fn.get('name')}: {desc} Parameters: {params}")
    return "\n".join(lines)


def _text(message: BaseMessage) -> str:
    return message.text if isinstance(message.content, list) else str(message.content)


def to_chat(message: AnyMessage) -> tuple[str, str] | None:
    """A state message as (role, text) for the prompt; assistant turns in contract form."""
    if isinstance(message, HumanMessage):
        return "user", _text(message)
    if isinstance(message, AIMessage):
        return "assistant", render_reply(_text(message), message.tool_calls)
    if isinstance(message, ToolMessage):
        content = prompts.render(
            "tool_result", call_id=message.tool_call_id, name=message.name or "tool", content=_text(message)
        )
        return "user", content
    return None


def merge_turns(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Messages with consecutive same-role turns merged (strict templates require alternation)."""
    merged: list[list[str]] = []
    for role, text in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1] += "\n\n" + text
        else:
            merged.append([role, text])
    return [{"role": r, "content": t} for r, t in merged]


def make_assemble(deps: Deps):
    """Build the assemble node."""
    limits = deps.limits

    async def assemble(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Build the prompt; memory is dropped before conversation, the current message never."""
        messages = state.get("messages", [])
        budget = limits.context_tokens - limits.max_tokens
        template = "system_plain" if deps.contract == "off" else "system"
        head = prompts.render(template, tools=describe_tools(state.get("tools") or []))
        if state.get("system"):
            head += "\n\n" + prompts.render("client_system", client_system=state["system"])
        turns = [t for t in (to_chat(m) for m in messages[window_start(messages, limits.recent_messages) :]) if t]
        used = estimate_tokens(head) + sum(estimate_tokens(t) for _, t in turns)
        # Oldest turns go first when over budget, but the last user turn and what follows stay.
        while used > budget and len(turns) > 1 and not _is_last_user(turns, 0):
            used -= estimate_tokens(turns.pop(0)[1])
        sections = []
        summary = state.get("summary")
        if summary:
            block = prompts.render("summary_context", summary=summary)
            if used + estimate_tokens(block) <= budget:
                sections.append(block)
                used += estimate_tokens(block)
        episodes: list[str] = []
        for doc in (state.get("recalled") or {}).get("episodes", []):
            if used + estimate_tokens(doc) > budget:
                break
            episodes.append(doc)
            used += estimate_tokens(doc)
        if episodes:
            sections.insert(0, prompts.render("memory", episodes="\n---\n".join(episodes)))
        # Entities first: structured facts are the most stable context (seed 001's order).
        entities = (state.get("recalled") or {}).get("entities") or []
        if entities:
            sections.insert(0, prompts.render("entities", entities="\n".join(f"- {e}" for e in entities)))
        system = "\n\n".join([head, *sections])
        # Plain role/content dicts, not message objects: the prompt is an intermediate value, and message
        # objects in a node's output would be replayed to every `messages`-mode stream.
        return {"prompt": [{"role": "system", "content": system}, *merge_turns(turns)]}

    return assemble


def _is_last_user(turns: list[tuple[str, str]], index: int) -> bool:
    return turns[index][0] == "user" and all(role != "user" for role, _ in turns[index + 1 :])
