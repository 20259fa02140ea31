"""Fitting prompts into the context: what gives way first, what never does (graph/budget.py, assemble)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from langchain_core.messages import AIMessage, HumanMessage

from graph.budget import bare_schema, describe_tools, estimate_tokens, short_description, trim_text
from graph.deps import MemoryLimits
from nodes.assemble import make_assemble
from tests import claude_code_shape


def assemble(state: dict, context: int = 4096, max_tokens: int = 512) -> dict:
    deps = SimpleNamespace(limits=MemoryLimits(context_tokens=context, max_tokens=max_tokens), contract="prompt-only")
    return asyncio.run(make_assemble(deps)(state, {"configurable": {"thread_id": "t"}}))


def prompt_text(out: dict) -> str:
    return "\n".join(m["content"] for m in out["prompt"])


def claude_tools() -> list[dict]:
    body, _ = claude_code_shape.request()
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}} for t in body["tools"]]


def test_short_description_and_bare_schema():
    assert short_description("Reads a file. Use it often.\n\nMore.") == "Reads a file."
    assert len(short_description("x" * 500)) == 200
    schema = {"type": "object", "description": "drop me", "$schema": "s", "properties": {
        "description": {"type": "string", "description": "drop me too"}, "n": {"type": "number", "default": 3}},
        "required": ["description"]}
    assert bare_schema(schema) == {"type": "object", "properties": {"description": {"type": "string"},
                                                                    "n": {"type": "number"}},
                                   "required": ["description"]}


def test_trim_text_keeps_both_ends_within_the_limit():
    text = "BEGIN " + "filler words " * 5000 + " Working directory: /repo END"
    out = trim_text(text, 500)
    assert estimate_tokens(out) <= 500
    assert out.startswith("BEGIN") and out.endswith("/repo END") and "left out" in out
    assert trim_text("short", 500) == "short"


def test_small_prompts_are_sent_whole():
    tools = [{"type": "function", "function": {"name": "Read", "description": "Reads a file. Long usage notes.",
                                               "parameters": {"type": "object"}}}]
    out = assemble({"messages": [HumanMessage("hi", id="1")], "tools": tools, "system": "Be brief."})
    assert out["prompt_stats"]["trimmed"] == []
    assert out["prompt_stats"]["tokens_sent"] == out["prompt_stats"]["tokens_offered"]
    assert "Long usage notes." in prompt_text(out) and "Be brief." in prompt_text(out)


def test_claude_code_sized_request_fits_and_keeps_what_matters():
    body, _ = claude_code_shape.request(cwd="/work/site")
    system = "\n\n".join(b["text"] for b in body["system"])
    history = []
    for i in range(6):
        history += [HumanMessage(f"question {i} " + "context " * 300, id=f"u{i}"),
                    AIMessage(f"answer {i}", id=f"a{i}")]
    history.append(HumanMessage("THE CURRENT QUESTION", id="now"))
    state = {"messages": history, "tools": claude_tools(), "system": system,
             "recalled": {"episodes": ["User: old fact\nAssistant: noted"] * 3, "entities": ["Ada (person)"],
                          "degraded": False}}
    out = assemble(state, context=4096, max_tokens=512)
    stats, text = out["prompt_stats"], prompt_text(out)
    assert estimate_tokens(text) <= 4096 - 512 + 50  # the estimate of the joined text, within rounding
    assert stats["tokens_sent"] <= stats["budget"] < stats["tokens_offered"] / 4
    assert "THE CURRENT QUESTION" in text
    assert all(f"- {t['function']['name']}:" in text for t in state["tools"])
    assert '"required":["command"]' in text  # schemas stay
    assert "Working directory: /work/site" in text
    assert "Ada (person)" in text
    assert {"tool_descriptions", "client_system"} <= set(stats["trimmed"])


def test_turns_give_way_before_the_client_prompt_shrinks_below_its_share():
    system = "RULES " * 4000
    history = [HumanMessage("old " * 4000, id="u0"), AIMessage("ok", id="a0"), HumanMessage("new", id="u1")]
    out = assemble({"messages": history, "system": system}, context=4096, max_tokens=512)
    text = prompt_text(out)
    assert "new" in text and "old old" not in text
    assert "turns:1" in out["prompt_stats"]["trimmed"]
    assert text.count("RULES") * len("RULES ") / 3.5 >= 0.35 * (4096 - 512)


def test_describe_tools_levels():
    tools = claude_tools()[:1]
    full, short, bare = (describe_tools(tools, level) for level in (0, 1, 2))
    assert len(full) > len(short) > len(bare)
    assert "A short (3-5 word) description" in short and "A short (3-5 word) description" not in bare
