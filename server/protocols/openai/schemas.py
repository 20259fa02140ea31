"""OpenAI chat-completions request models, and their translation to LangChain messages."""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field

from server.errors import ApiError


class ContentPart(BaseModel):
    """A content part; only text parts are accepted."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class FunctionCallIn(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text; non-text parts are refused."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ApiError(400, f"Content parts of type '{part.type}' are not supported; send text parts.",
                               param="messages.content")
            texts.append(part.text)
        return "".join(texts)


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionDef


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`. Unknown OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    stop: str | list[str] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Any = None
    user: str | None = None

    def system_text(self) -> str | None:
        """The client's system and developer messages, joined."""
        parts = [m.text() for m in self.messages if m.role in ("system", "developer")]
        return "\n\n".join(p for p in parts if p) or None

    def conversation(self) -> list[BaseMessage]:
        """The non-system messages as LangChain messages."""
        out: list[BaseMessage] = []
        for i, m in enumerate(self.messages):
            if m.role == "user":
                out.append(HumanMessage(m.text()))
            elif m.role == "assistant":
                calls = [
                    {"id": c.id, "name": c.function.name, "args": _arguments(c.function.arguments, i)}
                    for c in m.tool_calls or []
                ]
                out.append(AIMessage(m.text(), tool_calls=calls))
            elif m.role == "tool":
                if not m.tool_call_id:
                    raise ApiError(400, f"messages[{i}]: a tool message needs tool_call_id.",
                                   param=f"messages.{i}.tool_call_id")
                out.append(ToolMessage(m.text(), tool_call_id=m.tool_call_id, name=m.name))
        if not out:
            raise ApiError(400, "messages must contain at least one user message.", param="messages")
        return out

    def configurable(self) -> dict[str, Any]:
        """Inference overrides for the run."""
        conf: dict[str, Any] = {}
        for key in ("model", "temperature", "top_p", "stop"):
            value = getattr(self, key)
            if value is not None:
                conf[key] = value
        if self.max_tokens or self.max_completion_tokens:
            conf["max_tokens"] = self.max_tokens or self.max_completion_tokens
        return conf


def _arguments(arguments: str | dict[str, Any], index: int) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments or "{}")
    except ValueError as exc:
        raise ApiError(400, f"messages[{index}]: tool call arguments must be a JSON object string.",
                       param=f"messages.{index}.tool_calls") from exc
    if not isinstance(value, dict):
        raise ApiError(400, f"messages[{index}]: tool call arguments must be a JSON object.",
                       param=f"messages.{index}.tool_calls")
    return value
