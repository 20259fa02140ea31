"""Anthropic Messages API requests (`POST /v1/messages`), and their translation to LangChain messages.

Supported: string or block content with `text`, `tool_use` and `tool_result` blocks, `thinking` blocks
of earlier assistant turns (dropped: the local model did not write them), custom tools with an
`input_schema`, `tool_choice`, `temperature`, `top_p`, `stop_sequences`, `metadata`, `stream`.
Refused with a 400 that says so: images, documents and other media blocks, server tools (web search,
code execution, ...). `cache_control` and `thinking` settings are accepted and have no effect.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field

from server.errors import ApiError

_MEDIA_BLOCKS = ("image", "document", "search_result", "container_upload")
_CWD = re.compile(r"^\s*(?:Working directory|Primary working directory|cwd)\s*:\s*(\S.*?)\s*$",
                  re.IGNORECASE | re.MULTILINE)


class Block(BaseModel):
    """A content block; which fields matter depends on `type`."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolIn(BaseModel):
    """A custom tool. Server tools (a `type` such as `web_search_20250305`) are refused."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None


class Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str | None = None


class MessagesRequest(BaseModel):
    """`POST /v1/messages` (and `/v1/messages/count_tokens`, where `max_tokens` is optional)."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    system: str | list[Block] | None = None
    messages: list[MessageIn] = Field(min_length=1)
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoice | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, gt=0)
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
    stream: bool = False

    def system_text(self) -> str | None:
        """The system prompt's text; text blocks joined."""
        if self.system is None or isinstance(self.system, str):
            return self.system or None
        texts = []
        for i, block in enumerate(self.system):
            if block.type != "text":
                raise ApiError(400, f"system[{i}]: blocks of type '{block.type}' are not supported; "
                               "send text blocks.", param=f"system.{i}.type")
            texts.append(block.text or "")
        return "\n\n".join(t for t in texts if t) or None

    def conversation(self) -> list[BaseMessage]:
        """The messages as LangChain messages; a user turn's tool results become tool messages."""
        out: list[BaseMessage] = []
        for i, message in enumerate(self.messages):
            blocks = [Block(type="text", text=message.content)] if isinstance(message.content, str) \
                else message.content
            if message.role == "user":
                out.extend(_user_messages(blocks, i))
            else:
                out.append(_assistant_message(blocks, i))
        return out

    def tool_dicts(self) -> list[dict[str, Any]]:
        """The tools offered, in the OpenAI function format the graph describes to the model;
        `tool_choice` narrows them (`none`: no tools; `tool`: only the named one)."""
        tools: list[dict[str, Any]] = []
        for i, tool in enumerate(self.tools or []):
            if tool.input_schema is None or (tool.type not in (None, "custom")):
                raise ApiError(400, f"tools[{i}] ('{tool.name}'): server tools (type '{tool.type}') are not "
                               "supported by this gateway; send custom tools with an input_schema.",
                               param=f"tools.{i}")
            tools.append({"type": "function", "function": {
                "name": tool.name, "description": tool.description or "", "parameters": tool.input_schema}})
        choice = self.tool_choice
        if choice is None or choice.type in ("auto", "any"):
            return tools
        if choice.type == "none":
            return []
        chosen = [t for t in tools if t["function"]["name"] == choice.name]
        if not chosen:
            raise ApiError(400, f"tool_choice names the tool '{choice.name}', which is not in tools.",
                           param="tool_choice.name")
        return chosen

    def tool_instruction(self) -> str | None:
        """What `tool_choice` asks of the model, for the system prompt (`any` and `tool` force a call)."""
        choice = self.tool_choice
        if choice is None or not self.tools:
            return None
        if choice.type == "any":
            return "You must answer with at least one tool call."
        if choice.type == "tool":
            return f"You must answer with a call of the tool '{choice.name}'."
        return None

    def configurable(self, model: str | None) -> dict[str, Any]:
        """Inference overrides for the run (`model`: the node's model to use, None for the default)."""
        conf: dict[str, Any] = {}
        if model:
            conf["model"] = model
        if self.max_tokens:
            conf["max_tokens"] = self.max_tokens
        for key, value in (("temperature", self.temperature), ("top_p", self.top_p),
                           ("stop", self.stop_sequences or None)):
            if value is not None:
                conf[key] = value
        return conf


def _user_messages(blocks: list[Block], index: int) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    texts: list[str] = []
    for j, block in enumerate(blocks):
        where = f"messages.{index}.content.{j}"
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_result":
            if not block.tool_use_id:
                raise ApiError(400, f"{where}: a tool_result block needs tool_use_id.", param=where)
            text = _result_text(block, where)
            out.append(ToolMessage(f"Error: {text}" if block.is_error else text, tool_call_id=block.tool_use_id,
                                   status="error" if block.is_error else "success"))
        else:
            raise _unsupported(block.type, where)
    text = "\n\n".join(t for t in texts if t)
    if text or not out:
        out.append(HumanMessage(text))
    return out


def _assistant_message(blocks: list[Block], index: int) -> AIMessage:
    texts, calls = [], []
    for j, block in enumerate(blocks):
        where = f"messages.{index}.content.{j}"
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use":
            if not block.id or not block.name or not isinstance(block.input, dict):
                raise ApiError(400, f"{where}: a tool_use block needs id, name and an object input.", param=where)
            calls.append({"id": block.id, "name": block.name, "args": block.input})
        elif block.type not in ("thinking", "redacted_thinking"):
            raise _unsupported(block.type, where)
    return AIMessage("\n\n".join(t for t in texts if t), tool_calls=calls)


def _result_text(block: Block, where: str) -> str:
    if block.content is None or isinstance(block.content, str):
        return block.content or ""
    parts = []
    for k, inner in enumerate(block.content):
        if inner.type != "text":
            raise _unsupported(inner.type, f"{where}.content.{k}")
        parts.append(inner.text or "")
    return "\n".join(parts)


def _unsupported(kind: str, where: str) -> ApiError:
    if kind in _MEDIA_BLOCKS:
        return ApiError(400, f"{where}: '{kind}' blocks are not supported: the inference node behind this "
                        "gateway reads text only. Send text, tool_use and tool_result blocks.", param=where)
    return ApiError(400, f"{where}: content blocks of type '{kind}' are not supported; send text, tool_use "
                    "and tool_result blocks.", param=where)


def working_directory(system: str | None) -> str | None:
    """The working directory a coding client reports in its system prompt (Claude Code's
    `Working directory: /path` line), or None."""
    match = _CWD.search(system or "")
    return match.group(1) if match else None


def project_from_directory(path: str) -> str:
    """A stable project id for a working directory: its name and a short hash of the full path
    (two checkouts called `app` stay apart)."""
    path = path.rstrip("/\\") or path
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", re.split(r"[/\\]", path)[-1]).strip("-._")[:80] or "root"
    digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:8]
    return f"{name}-{digest}"

