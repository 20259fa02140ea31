"""A chat model wrapper whose stream carries only the `assistant_response` text, never the contract JSON.

Every door streams through the chat model's callbacks (LangGraph `messages` mode, LangServe
`stream_events`, `langgraph dev` `messages-tuple`), so the text is extracted here, once, for all of them.
The raw reply travels in the last chunk's `response_metadata["raw_content"]` for parse_tools.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from graph.stream_text import ResponseTextExtractor


class ContractTextStream(BaseChatModel):
    """Wraps the inference model: streamed chunks hold response text; the raw reply rides in metadata."""

    inner: BaseChatModel

    @property
    def _llm_type(self) -> str:
        return "contract-text-stream"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self.inner._generate(messages, stop=stop, **kwargs)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return await self.inner._agenerate(messages, stop=stop, **kwargs)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        extractor, raw = ResponseTextExtractor(), list[str]()
        last = None
        for chunk in self.inner._stream(messages, stop=stop, **kwargs):
            last = _clean(chunk, extractor, raw)
            if last.message.content and run_manager:
                run_manager.on_llm_new_token(last.message.content, chunk=last)
            yield last
        yield _tail(raw, last)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        extractor, raw = ResponseTextExtractor(), list[str]()
        last = None
        async for chunk in self.inner._astream(messages, stop=stop, **kwargs):
            last = _clean(chunk, extractor, raw)
            if last.message.content and run_manager:
                await run_manager.on_llm_new_token(last.message.content, chunk=last)
            yield last
        yield _tail(raw, last)


def _clean(chunk: ChatGenerationChunk, extractor: ResponseTextExtractor, raw: list[str]) -> ChatGenerationChunk:
    message = chunk.message
    text = message.content if isinstance(message.content, str) else message.text
    raw.append(text)
    clean = AIMessageChunk(
        content=extractor.feed(text),
        tool_call_chunks=getattr(message, "tool_call_chunks", []),
        usage_metadata=getattr(message, "usage_metadata", None),
        response_metadata=message.response_metadata,
        id=message.id,
    )
    return ChatGenerationChunk(message=clean, generation_info=chunk.generation_info)


def _tail(raw: list[str], last: ChatGenerationChunk | None) -> ChatGenerationChunk:
    """An empty chunk carrying the whole raw reply, for parse_tools."""
    return ChatGenerationChunk(
        message=AIMessageChunk(content="", response_metadata={"raw_content": "".join(raw)},
                               id=last.message.id if last else None)
    )
