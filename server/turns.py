"""Running one turn of the graph for a route: ordering per session, token streaming, rollback on failure.

The graph run goes on in a background task after the client has its reply (summarise runs last and
must not delay it); the session's lock is held until the run ends, so turns of one session never
interleave.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, RemoveMessage
from langgraph.graph.state import CompiledStateGraph

log = logging.getLogger(__name__)


class BadTurn(ValueError):
    """The request cannot make a turn (e.g. nothing new to answer)."""


@dataclass
class TurnRequest:
    """A turn as the routes hand it over."""

    session_id: str
    messages: list[BaseMessage]
    system: str | None = None
    tools: list[dict[str, Any]] | None = None
    configurable: dict[str, Any] = field(default_factory=dict)
    stream: bool = False


@dataclass
class TurnEvent:
    """`text`: a piece of the answer; `final`: the assistant message (stored); `error`: the turn failed."""

    kind: Literal["text", "final", "error"]
    text: str = ""
    message: AIMessage | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        await lock.acquire()

    def release(self, key: str) -> None:
        lock, users = self._locks[key]
        lock.release()
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def busy(self) -> int:
        """Sessions with a turn running or waiting."""
        return len(self._locks)


def new_messages(history_known: bool, messages: list[BaseMessage]) -> list[BaseMessage]:
    """The messages of a request that are new to the session.

    On a known session the checkpoint is the truth: only what follows the last assistant turn is new.
    On a new session everything is (a client may bring a history it had elsewhere).
    """
    if history_known:
        last_ai = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=-1)
        messages = messages[last_ai + 1 :]
    if not messages:
        raise BadTurn("nothing to answer: the last message must be a user message or a tool result")
    if isinstance(messages[-1], AIMessage):
        raise BadTurn("the last message must be a user message or a tool result, not an assistant message")
    return messages


class TurnRunner:
    """Runs turns on the compiled, checkpointed graph."""

    def __init__(self, graph: CompiledStateGraph) -> None:
        self.graph = graph
        self.locks = KeyedLocks()
        self._runs: set[asyncio.Task] = set()

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """The events of one turn; ends after `final` or `error`."""
        await self.locks.acquire(request.session_id)
        queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        try:
            config = {"configurable": {**request.configurable, "thread_id": request.session_id}}
            state = await self.graph.aget_state(config)
            fresh = new_messages(bool(state.values.get("messages")), request.messages)
        except BaseException:
            self.locks.release(request.session_id)
            raise
        for message in fresh:
            message.id = message.id or f"in-{uuid.uuid4().hex}"
        graph_input: dict[str, Any] = {"messages": fresh, "tools": request.tools or []}
        if request.system is not None:
            graph_input["system"] = request.system
        task = asyncio.create_task(self._drive(request, config, graph_input, queue))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        while True:
            event = await queue.get()
            yield event
            if event.kind != "text":
                return

    async def _drive(self, request: TurnRequest, config: dict, graph_input: dict, queue: asyncio.Queue) -> None:
        meta: dict[str, Any] = {"recall_degraded": False}
        added = [m.id for m in graph_input["messages"]]
        final: AIMessage | None = None
        delivered = False
        modes = ["updates", "messages"] if request.stream else ["updates"]
        try:
            async for mode, chunk in self.graph.astream(graph_input, config, stream_mode=modes):
                if mode == "messages":
                    message, info = chunk
                    if info.get("langgraph_node") == "infer" and isinstance(message, AIMessageChunk):
                        if message.text:  # already the response text (graph/contract_stream.py)
                            queue.put_nowait(TurnEvent("text", message.text, meta=meta))
                    continue
                for node, update in (chunk or {}).items():
                    if node == "recall":
                        recalled = update.get("recalled") or {}
                        meta["recall_degraded"] = bool(recalled.get("degraded"))
                        meta["recall_error"] = recalled.get("error")
                    elif node == "infer" and update.get("raw_output") is not None:
                        raw = update["raw_output"]
                        meta["usage"] = raw.usage_metadata
                    elif node == "parse_tools":
                        final = update["messages"][-1]
                        added.append(final.id)
                    elif node == "persist" and final is not None:
                        queue.put_nowait(TurnEvent("final", message=final, meta=meta))
                        delivered = True
        except Exception as exc:
            if delivered:
                log.exception("session %s: the run failed after the reply was stored", request.session_id)
            else:
                await self._rollback(config, added)
                queue.put_nowait(TurnEvent("error", error=exc, meta=meta))
        except BaseException as exc:  # cancelled (shutdown): the turn is undone
            if not delivered:
                await asyncio.shield(self._rollback(config, added))
                queue.put_nowait(TurnEvent("error", error=exc, meta=meta))
            raise
        else:
            if not delivered:
                queue.put_nowait(TurnEvent("error", error=RuntimeError("the run ended without a reply"), meta=meta))
        finally:
            self.locks.release(request.session_id)

    async def _rollback(self, config: dict, message_ids: list[str | None]) -> None:
        """Remove the failed turn's messages, so the session reads exactly as before it."""
        ids = [i for i in message_ids if i]
        try:
            state = await self.graph.aget_state(config)
            present = {m.id for m in state.values.get("messages", [])}
            removals = [RemoveMessage(id=i) for i in ids if i in present]
            if removals or state.next:
                await self.graph.aupdate_state(config, {"messages": removals}, as_node="summarise")
        except Exception:
            log.exception("rolling back a failed turn failed")

    async def drain(self) -> None:
        """Wait for runs still going (summaries) to finish."""
        if self._runs:
            await asyncio.gather(*list(self._runs), return_exceptions=True)
