"""Shared test doubles. Only the language model is faked; every store is real."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage


def contract(text: str, tool_calls: list[dict[str, Any]] | None = None) -> str:
    """A reply that follows the JSON contract."""
    return json.dumps({"assistant_response": text, "tool_calls": tool_calls or []})


class FakeChatModel(GenericFakeChatModel):
    """Scripted replies, in order; records every prompt it is sent."""

    prompts: list[list[BaseMessage]] = []

    def __init__(self, replies: list[str | AIMessage], **kwargs: Any) -> None:
        super().__init__(messages=iter(replies), prompts=[], **kwargs)

    def bind_tools(self, tools: Any, **kwargs: Any) -> FakeChatModel:
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.prompts.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.prompts.append(list(messages))
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    def prompt_text(self, index: int = -1) -> str:
        """All of one recorded prompt as text."""
        return "\n".join(str(m.content) for m in self.prompts[index])
