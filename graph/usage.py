"""Token usage of a reply: the inference node's own counts when it gave them, else an estimate.

Nodes differ: OpenAI and llama.cpp's server send usage in a stream's last chunk only when asked
(`stream_options.include_usage`, which the chat model asks for), others never send it. A client must never
read zeros: a count the node left out (or gave as 0) is estimated the way `count_tokens` estimates a prompt
(graph/budget.py), and `response_metadata["usage_estimated"]` names the counts that were estimated.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage

from graph.budget import estimate_tokens


def prompt_estimate(prompt: list[dict[str, Any]] | None, prompt_stats: dict[str, Any] | None) -> int:
    """Tokens of the prompt sent: assemble's figure (what count_tokens answers), else counted from the prompt."""
    sent = (prompt_stats or {}).get("tokens_sent")
    if sent:
        return int(sent)
    return sum(estimate_tokens(str(m.get("content") or "")) for m in prompt or [])


def with_usage(reply: AIMessage, prompt_tokens: int) -> AIMessage:
    """`reply` with input and output token counts that are never missing or zero.

    The output estimate is of the raw reply (the contract JSON a streamed reply keeps in metadata): that is
    what the node generated, not just the text the client sees.
    """
    given: dict[str, Any] = dict(reply.usage_metadata or {})
    meta = reply.response_metadata or {}
    raw_text = meta.get("raw_content") or reply.text
    estimates = {"input_tokens": prompt_tokens, "output_tokens": estimate_tokens(raw_text) if raw_text else 0}
    estimated = [key for key, value in estimates.items() if not given.get(key) and value]
    if not estimated:
        return reply
    usage = {**given, **{key: estimates[key] for key in estimated}}
    usage["total_tokens"] = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
    return reply.model_copy(update={"usage_metadata": usage,
                                    "response_metadata": {**meta, "usage_estimated": estimated}})
