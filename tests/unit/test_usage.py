"""A reply's token usage: the node's counts kept, missing or zero counts estimated, never zeros."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from graph.budget import estimate_tokens
from graph.usage import prompt_estimate, with_usage

RAW = '{"assistant_response": "Hello there, friend.", "tool_calls": []}'


def test_the_nodes_counts_are_kept():
    reply = AIMessage(RAW, usage_metadata={"input_tokens": 120, "output_tokens": 9, "total_tokens": 129})
    out = with_usage(reply, prompt_tokens=300)
    assert out.usage_metadata == {"input_tokens": 120, "output_tokens": 9, "total_tokens": 129}
    assert "usage_estimated" not in out.response_metadata


def test_missing_counts_are_estimated_from_the_prompt_and_the_raw_reply():
    streamed = AIMessage("Hello there, friend.", response_metadata={"raw_content": RAW})  # the clean text
    out = with_usage(streamed, prompt_tokens=300)
    assert out.usage_metadata == {"input_tokens": 300, "output_tokens": estimate_tokens(RAW),
                                  "total_tokens": 300 + estimate_tokens(RAW)}
    assert out.response_metadata["usage_estimated"] == ["input_tokens", "output_tokens"]
    assert out.response_metadata["raw_content"] == RAW and out.id == streamed.id


def test_a_zero_count_is_estimated_and_the_other_kept():
    reply = AIMessage(RAW, usage_metadata={"input_tokens": 120, "output_tokens": 0, "total_tokens": 120})
    out = with_usage(reply, prompt_tokens=300)
    assert (out.usage_metadata["input_tokens"], out.usage_metadata["output_tokens"]) == (120, estimate_tokens(RAW))
    assert out.response_metadata["usage_estimated"] == ["output_tokens"]


def test_prompt_estimate_prefers_assembles_figure():
    prompt = [{"role": "system", "content": "x" * 350}, {"role": "user", "content": "hi"}]
    assert prompt_estimate(prompt, {"tokens_sent": 77}) == 77
    assert prompt_estimate(prompt, None) == estimate_tokens("x" * 350) + estimate_tokens("hi")
