"""Tokens in vs. tokens sent for a Claude-Code-shaped request, by context size (issue 7, item 5).

The request is tests/claude_code_shape.py's: a ~60k-character system prompt in text blocks, 21 tools
with multi-paragraph descriptions and draft-07 schemas, a user message with a `<system-reminder>`. It is
assembled as the graph would at turn 1 and at turn 8 of a session (recent turns of ~1k characters each,
five recalled episodes), for the embedded node's 4096-token context and larger nodes.

Usage: `python bench/prompt_budget.py`; writes bench/results/prompt_budget.json and prints a table.
Tokens are the service's own estimate (graph/budget.py: characters / 3.5), the same one it budgets with.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402

from bench.common import RESULTS  # noqa: E402
from graph.budget import estimate_tokens  # noqa: E402
from graph.deps import MemoryLimits  # noqa: E402
from nodes.assemble import make_assemble  # noqa: E402
from server.protocols.anthropic.schemas import MessagesRequest  # noqa: E402
from tests import claude_code_shape  # noqa: E402

CONTEXTS = ((4096, 256), (8192, 1024), (32768, 4096), (131072, 8192))


def state_for(turn: int) -> dict:
    body, _ = claude_code_shape.request()
    request = MessagesRequest.model_validate(body)
    history = []
    for i in range(turn - 1):
        history += [HumanMessage(f"step {i}: " + "output line\n" * 90, id=f"u{i}"),
                    AIMessage(f"done with step {i}", id=f"a{i}")]
    history += request.conversation()
    episodes = [f"User: earlier question {i}\nAssistant: " + "earlier answer " * 40 for i in range(5)]
    return {"messages": history, "tools": request.tool_dicts(), "system": request.system_text(),
            "recalled": {"episodes": episodes, "entities": ["webapp (project): a Flask app"], "degraded": False}}


def measure(context: int, max_tokens: int, turn: int) -> dict:
    deps = SimpleNamespace(limits=MemoryLimits(context_tokens=context, max_tokens=max_tokens), contract="prompt-only")
    assemble = make_assemble(deps)
    state = state_for(turn)
    started = time.perf_counter()
    out = asyncio.run(assemble(state, {"configurable": {"thread_id": "bench"}}))
    elapsed_ms = (time.perf_counter() - started) * 1000
    text = "\n".join(m["content"] for m in out["prompt"])
    stats = out["prompt_stats"]
    return {"context": context, "max_tokens": max_tokens, "turn": turn, "tokens_offered": stats["tokens_offered"],
            "tokens_sent": stats["tokens_sent"], "tokens_sent_recount": estimate_tokens(text),
            "budget": stats["budget"], "trimmed": stats["trimmed"], "assemble_ms": round(elapsed_ms, 2),
            "user_message_kept": "Where is the config loaded?" in text,
            "tools_kept": sum(f"- {t['function']['name']}:" in text for t in state["tools"]),
            "tools_offered": len(state["tools"])}


def main() -> None:
    rows = [measure(c, m, turn) for c, m in CONTEXTS for turn in (1, 8)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prompt_budget.json").write_text(json.dumps(rows, indent=2))
    print("| context | turn | tokens offered | tokens sent | budget | tools kept | user msg | trimmed | ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['context']} | {r['turn']} | {r['tokens_offered']} | {r['tokens_sent']} | {r['budget']} | "
              f"{r['tools_kept']}/{r['tools_offered']} | {'yes' if r['user_message_kept'] else 'NO'} | "
              f"{', '.join(r['trimmed']) or '-'} | {r['assemble_ms']} |")


if __name__ == "__main__":
    main()
