"""Running one turn of the graph for a route: ordering per session, token streaming, rollback on failure.

The graph run goes on in a background task after the client has its reply (summarise runs last and
must not delay it); the session's lock is held until the run ends, so turns of one session never
interleave.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, RemoveMessage
from langgraph.graph.state import CompiledStateGraph

from graph.deps import Deps
from graph.window import last_user_text
from memory.sessions import SessionStore, scope_of, visible_to
from nodes.recall import PREFETCH_KEY, RecallPrefetch
from server.errors import ApiError
from server.metrics import Metrics
from server.turns.commit import commit_turn, discard_turn
from server.turns.conversations import continues
from server.turns.locks import KeyedLocks, SettledSessions
from server.turns.naming import name_session
from server.turns.storable import is_storage_failure, storage_error, turn_input_problem

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
    project_id: str | None = None
    """Project of a session created by this turn (an existing session keeps its own)."""
    owner: str | None = None
    """API key fingerprint (API_KEY_SCOPED_SESSIONS): the turn may only reach sessions and projects it owns,
    and creates them owned by it. None: not scoped."""
    side_session: str | None = None
    """Where the turn goes instead if the session holds a conversation that `messages` do not continue
    (stateless clients sharing one session id among several conversations: server/turns/conversations.py)."""


@dataclass
class TurnEvent:
    """`text`: a piece of the answer (when streaming, the texts add up to the final message's text, unless the
    model's stream and its parsed reply disagree); `final`: the assistant message, stored; `error`: failed."""

    kind: Literal["text", "final", "error"]
    text: str = ""
    message: AIMessage | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


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


def busy_error(session_id: str) -> ApiError:
    """409 for a second turn on a session mid-turn, with DOUBLE_TEXTING=reject."""
    return ApiError(409, f"Session '{session_id}' is answering another message; retry when it is done "
                    "(DOUBLE_TEXTING=queue waits instead).", code="session_busy")


def unreachable_session(session_id: str) -> ApiError:
    """404 for a session another API key owns (API_KEY_SCOPED_SESSIONS); whose it is, is not said."""
    return ApiError(404, f"No session '{session_id}' is reachable with this API key; use another session id.",
                    code="session_not_found")


def unreachable_project(project_id: str) -> ApiError:
    """404 for a project another API key owns (API_KEY_SCOPED_SESSIONS)."""
    return ApiError(404, f"No project '{project_id}' is reachable with this API key.", param="X-Project-Id",
                    code="project_not_found")


def check_reachable(sessions: SessionStore, session_id: str, project_id: str | None, owner: str | None) -> None:
    """404 if the session or the project exists but belongs to another owner (no-op when not scoping)."""
    if owner is None:
        return
    session = sessions.get(session_id)
    if session is not None and not visible_to(session, owner):
        raise unreachable_session(session_id)
    project = sessions.get_project(project_id) if project_id else None
    if project is not None and not visible_to(project, owner):
        raise unreachable_project(project_id)


def open_session(sessions: SessionStore, session_id: str, project_id: str | None, owner: str | None = None) -> dict:
    """The session, created on first use (its project too, if it is new), owned by `owner`. An existing
    session keeps its project; reading it first keeps a write transaction off every later turn. With an
    owner, another owner's session or project is a 404."""
    check_reachable(sessions, session_id, project_id, owner)
    session = sessions.get(session_id)
    if session is None:
        if project_id and sessions.get_project(project_id) is None:
            sessions.create_project(project_id, project_id, None, owner)
            check_reachable(sessions, session_id, project_id, owner)  # another key may have made it meanwhile
        session = sessions.ensure(session_id, project_id, owner)
    if not visible_to(session, owner):  # made by another key since the check
        raise unreachable_session(session_id)
    return session


class TurnRunner:
    """Runs turns on the compiled, checkpointed graph."""

    def __init__(self, graph: CompiledStateGraph, deps: Deps, metrics: Metrics | None = None,
                 reject_busy: bool = False, max_message_chars: int = 100_000) -> None:
        self.graph = graph
        self.deps = deps
        self.metrics = metrics or Metrics()
        self.reject_busy = reject_busy
        self.max_message_chars = max_message_chars
        self.locks = KeyedLocks()
        self._runs: set[asyncio.Task] = set()
        self._settled = SettledSessions()

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """The events of one turn; ends after `final` or `error`."""
        if self.deps.limits.recall_top_k or self.deps.limits.entity_top_k:
            # recall's query embedding starts now, beside the session's lookup and the state's load.
            self.deps.embedder.prefetch(last_user_text(request.messages))
        if request.owner is not None:  # before the busy check: another key learns nothing of the session
            await asyncio.to_thread(check_reachable, self.deps.sessions, request.session_id, request.project_id,
                                    request.owner)
        self.refuse_if_busy(request.session_id)
        await self.locks.acquire(request.session_id)
        queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        try:
            session = await asyncio.to_thread(open_session, self.deps.sessions, request.session_id,
                                              request.project_id, request.owner)
            config = {"configurable": {**request.configurable, "thread_id": request.session_id,
                                       "scope": scope_of(session["project_id"], session.get("owner"))}}
            if request.session_id in self._settled and not request.side_session:
                moved, history = False, True  # its last turn ran here to the end: nothing to load or repair
            else:
                state = await self._repaired_state(config)
                history = bool(state.values.get("messages"))
                moved = request.side_session and not continues(request.messages, state.values.get("messages") or [])
            if not moved:
                fresh = new_messages(history, request.messages)
            # New messages only: clients that resend the whole history (Anthropic's API, Claude Code) must not
            # be locked out by a long message the session already holds.
                for message in fresh:
                    if len(message.text) > self.max_message_chars:
                        raise BadTurn(f"a message has {len(message.text)} characters; at most "
                                      f"{self.max_message_chars} are accepted (MAX_MESSAGE_CHARS)")
                problem = turn_input_problem(fresh, request.system, request.tools)
                if problem:  # refused now, not by the checkpoint's write at the end of the run
                    raise BadTurn(problem[1])
        except BaseException:
            self.locks.release(request.session_id)
            raise
        if moved:  # another conversation lives here: this one gets its own session
            self.locks.release(request.session_id)
            async for event in self.events(replace(request, session_id=request.side_session, side_session=None)):
                yield event
            return
        for message in fresh:
            message.id = message.id or f"in-{uuid.uuid4().hex}"
        # recall's search starts now, beside the graph's start and the checkpoint's load (nodes/recall.py).
        prefetch = RecallPrefetch.start(self.deps, config["configurable"]["scope"], last_user_text(fresh))
        if prefetch is not None:
            config["configurable"][PREFETCH_KEY] = prefetch
        graph_input: dict[str, Any] = {"messages": fresh, "tools": request.tools or []}
        if request.system is not None:
            graph_input["system"] = request.system
        name_after = not session.get("name") and not session.get("turn_count")
        committed = asyncio.Event()
        run = self._spawn(self._drive(request, config, graph_input, queue, name_after, committed))
        ended = False
        try:
            while True:
                event = await queue.get()
                ended = event.kind != "text"
                yield event
                if ended:
                    return
        finally:
            # The consumer left before the reply's end (a streaming client disconnected, Ctrl-C in
            # `orchestrator chat`): the turn is cancelled and rolled back, unless the reply is already
            # complete (see `_drive`'s `committed`). Nothing of it is stored; see the README.
            if not ended and not committed.is_set():
                run.cancel()

    async def _drive(self, request: TurnRequest, config: dict, graph_input: dict, queue: asyncio.Queue,
                     name_after: bool, committed: asyncio.Event | None = None) -> None:
        """Run the turn, feeding `queue`. `committed` is set once the reply is complete (the infer node has
        finished): from then on the turn is stored even if its client leaves, since persist may be writing."""
        meta: dict[str, Any] = {"recall_degraded": False, "session_id": request.session_id}
        added = [m.id for m in graph_input["messages"]]
        clock = time.perf_counter()
        final: AIMessage | None = None
        delivered = False
        streamed = ""
        modes = ["updates", "messages"] if request.stream else ["updates"]
        stored = False
        try:
            # One checkpoint for recall → … → persist, which holds the whole turn before the reply goes out;
            # when a summary is due, the run stops before summarise and a second run does it after the
            # reply. Saving after every node instead (the default) cost five more writes of the whole state
            # per turn, on the reply's path.
            summary_due = False
            async for mode, chunk in self.graph.astream(graph_input, config, stream_mode=modes,
                                                        interrupt_before=["summarise"], durability="exit"):
                if mode == "messages":
                    message, info = chunk
                    if info.get("langgraph_node") == "infer" and isinstance(message, AIMessageChunk):
                        if message.text:  # already the response text (graph/contract_stream.py)
                            streamed += message.text
                            queue.put_nowait(TurnEvent("text", message.text, meta=meta))
                    continue
                summary_due = summary_due or "__interrupt__" in (chunk or {})
                for node, update in (chunk or {}).items():
                    now, elapsed = time.perf_counter(), time.perf_counter() - clock
                    clock = now
                    if node == "infer" and committed is not None:
                        committed.set()
                    if node == "recall":
                        recalled = update.get("recalled") or {}
                        meta["recall_degraded"] = bool(recalled.get("degraded"))
                        meta["recall_error"] = recalled.get("error")
                        meta["recall_ms"] = round(elapsed * 1000, 2)
                        self.metrics.recall_latency.observe(elapsed)
                        if meta["recall_degraded"]:
                            self.metrics.recall_degraded.inc()
                    elif node == "assemble":
                        meta["prompt"] = update.get("prompt_stats")
                    elif node == "infer" and update.get("raw_output") is not None:
                        raw = update["raw_output"]
                        meta["usage"] = raw.usage_metadata
                        meta["usage_estimated"] = (raw.response_metadata or {}).get("usage_estimated")
                        meta["inference_ms"] = round(elapsed * 1000, 2)
                        self.metrics.inference_latency.observe(elapsed)
                        for kind, key in (("input", "input_tokens"), ("output", "output_tokens")):
                            self.metrics.tokens.labels(kind).inc((raw.usage_metadata or {}).get(key) or 0)
                    elif node == "parse_tools":
                        final = update["messages"][-1]
                        added.append(final.id)
                        meta["tool_calls_dropped"] = final.response_metadata.get("tool_calls_dropped")
                    elif node == "persist" and final is not None:
                        stored = True
            if stored:  # the first run's checkpoint is written: the turn is safe, the reply goes out
                await commit_turn(self.deps, request.session_id, final.id)
                # What the stream could not show as it came (a reply that ignored the contract).
                rest = final.text[len(streamed):] if final.text.startswith(streamed) else ""
                if request.stream and rest:
                    queue.put_nowait(TurnEvent("text", rest, meta=meta))
                queue.put_nowait(TurnEvent("final", message=final, meta=meta))
                delivered = True
                self.metrics.turns.labels("ok").inc()
                if name_after:  # fire-and-forget, outside this run's callbacks
                    first_user = next((m.text for m in graph_input["messages"] if m.type == "human"), "")
                    self._spawn(name_session(self.deps, request.session_id, first_user, final.text),
                                context=contextvars.Context())
                if summary_due:
                    async for _ in self.graph.astream(None, config, stream_mode="updates", durability="exit"):
                        pass  # summarise
                self._settled.add(request.session_id)
        except Exception as exc:
            self._settled.discard(request.session_id)
            if delivered:
                log.exception("session %s: the run failed after the reply was stored", request.session_id)
            else:
                if await self._rollback(config, added):  # else start-up repair reconciles the episode
                    await discard_turn(self.deps, request.session_id)
                self.metrics.turns.labels("error").inc()
                if stored or is_storage_failure(exc):  # after persist, only storing the turn can fail
                    log.error("session %s: storing the turn failed: %r", request.session_id, exc)
                    exc = storage_error(exc)
                queue.put_nowait(TurnEvent("error", error=exc, meta=meta))
        except BaseException as exc:  # cancelled (its client left, or shutdown): the turn is undone
            self._settled.discard(request.session_id)
            if not delivered:
                if await asyncio.shield(self._rollback(config, added)):
                    await asyncio.shield(discard_turn(self.deps, request.session_id))
                self.metrics.turns.labels("cancelled").inc()
                log.info("session %s: turn cancelled before its reply was complete; rolled back",
                         request.session_id)
                queue.put_nowait(TurnEvent("error", error=exc, meta=meta))
            raise
        else:
            if not delivered:
                queue.put_nowait(TurnEvent("error", error=RuntimeError("the run ended without a reply"), meta=meta))
        finally:
            self.locks.release(request.session_id)

    async def _repaired_state(self, config: dict):
        """The thread's state, after undoing the half turn of a run that never finished (the process
        died mid-turn). Call with the session's lock held."""
        state = await self.graph.aget_state(config)
        if state.next:
            await self._rollback(config, await asyncio.to_thread(self._unfinished, state.values))
            state = await self.graph.aget_state(config)
        return state

    async def settled_state(self, session_id: str):
        """A session's state once any turn running on it has finished (a reply just sent is in it)."""
        async with self.exclusive(session_id):
            return await self._repaired_state({"configurable": {"thread_id": session_id}})

    @asynccontextmanager
    async def exclusive(self, session_id: str) -> AsyncIterator[None]:
        """Hold the session while moving or deleting it: no turn of it runs meanwhile."""
        await self.locks.acquire(session_id)
        try:
            yield
        finally:
            self.locks.release(session_id)

    def refuse_if_busy(self, session_id: str) -> None:
        """With DOUBLE_TEXTING=reject, a 409 while the session is answering another message."""
        if self.reject_busy and self.locks.held(session_id):
            raise busy_error(session_id)

    @property
    def in_progress(self) -> int:
        """Sessions with a turn running or queued."""
        return self.locks.busy()

    def forget(self, session_id: str) -> None:
        """The session's checkpoint was deleted: load it afresh on its next turn. Call with its lock held."""
        self._settled.discard(session_id)

    def _unfinished(self, values: dict) -> list[str]:
        """Ids of the messages after the last reply that was stored as an episode (blocking)."""
        messages = values.get("messages", [])
        ids: list[str] = []
        for message in reversed(messages):
            if isinstance(message, AIMessage) and message.id and self.deps.episodes.has_reply(message.id):
                break
            ids.append(message.id)
        return ids

    async def _rollback(self, config: dict, message_ids: list[str | None]) -> bool:
        """Remove the failed turn's messages, so the session reads exactly as before it; False if that failed
        (the turn's uncommitted episode is then left to start-up repair, which follows the checkpoint)."""
        ids = [i for i in message_ids if i]
        try:
            state = await self.graph.aget_state(config)
            present = {m.id for m in state.values.get("messages", [])}
            removals = [RemoveMessage(id=i) for i in ids if i in present]
            if removals or state.next:
                await self.graph.aupdate_state(config, {"messages": removals}, as_node="summarise")
        except Exception:
            log.exception("rolling back a failed turn failed")
            return False
        return True

    def _spawn(self, coro, context=None) -> asyncio.Task:
        task = asyncio.create_task(coro, context=context)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return task

    async def drain(self) -> None:
        """Wait for runs still going (summaries, naming) to finish."""
        if self._runs:
            await asyncio.gather(*list(self._runs), return_exceptions=True)
