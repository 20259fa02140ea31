"""Running one turn of the graph for a door: ordering per session, token streaming, rollback on failure.

The graph run goes on in a background task after the client has its reply (summarise runs last and
must not delay it); the session's lock is held until the run ends, so turns of one session never
interleave. Every failure reaches the door as the ApiError it answers with (`TurnEvent.failure`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StreamMode

from graph.deps import Deps
from graph.window import last_user_text
from memory.sessions import scope_of
from nodes.recall import PREFETCH_KEY, RecallPrefetch
from server.metrics import Metrics
from server.storage_outage import refused_on_outage
from server.turns.access import busy_error, check_reachable, open_session
from server.turns.commit import commit_turn, discard_turn
from server.turns.conversations import continues
from server.turns.failures import turn_failure
from server.turns.interrupted import keep_heard
from server.turns.locks import KeyedLocks, SettledSessions
from server.turns.naming import name_session
from server.turns.progress import TurnProgress
from server.turns.repair import repaired_state, rollback
from server.turns.storable import check_turn_input
from server.turns.truncate import Truncation, truncate_reply
from server.turns.types import BadTurn, TurnEvent, TurnRequest, new_messages

log = logging.getLogger(__name__)

__all__ = ["BadTurn", "TurnEvent", "TurnRequest", "TurnRunner"]


class TurnRunner:
    """Runs turns on the compiled, checkpointed graph."""

    def __init__(self, graph: CompiledStateGraph, deps: Deps, metrics: Metrics | None = None,
                 reject_busy: bool = False, max_message_chars: int = 100_000,
                 inference_url: str | None = None, locks: KeyedLocks | None = None,
                 settled: SettledSessions | None = None) -> None:
        self.graph = graph
        self.deps = deps
        self.metrics = metrics or Metrics()
        self.reject_busy = reject_busy
        self.max_message_chars = max_message_chars
        self.inference_url = inference_url
        """Named in the error a failed inference call answers with (INFERENCE_BASE_URL)."""
        # Across workers (DATABASE_URL): Postgres advisory locks, and settled sessions checked against the
        # shared checkpoints (server/turns/pg_locks.py, server/runtime.py).
        self.locks = locks or KeyedLocks()
        self._runs: set[asyncio.Task] = set()
        self._settled = settled or SettledSessions()

    async def events(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """The events of one turn; ends after `final` or `error`. A request that makes no turn raises its
        ApiError (BadTurn: 400; another key's session: 404; DOUBLE_TEXTING=reject: 409)."""
        if self.deps.limits.recall_top_k or self.deps.limits.entity_top_k or self.deps.router is not None:
            # recall's (and classify's) query embedding starts now, beside the session's lookup and the state's load.
            self.deps.embedder.prefetch(last_user_text(request.messages))
        if request.owner is not None:  # before the busy check: another key learns nothing of the session
            with refused_on_outage():
                await asyncio.to_thread(check_reachable, self.deps.sessions, request.session_id,
                                        request.project_id, request.owner)
        with refused_on_outage():  # the sessions' advisory locks live in Postgres on the shared profile
            if not self.reject_busy:
                await self.locks.acquire(request.session_id)
            elif not await self.locks.try_acquire(request.session_id):  # busy here or on another worker
                raise busy_error(request.session_id)
        try:
            with refused_on_outage():  # the database down: a 503 before any turn starts
                start = await self._start(request)
        except BaseException:
            self.locks.release(request.session_id)
            raise
        if start is None:  # another conversation lives here: this one gets its own session
            self.locks.release(request.session_id)
            assert request.side_session is not None  # _start moves only a request that names one
            async for event in self.events(replace(request, session_id=request.side_session, side_session=None)):
                yield event
            return
        config, graph_input, name_after = start
        queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        progress = TurnProgress(request.session_id, [m.id for m in graph_input["messages"]], self.metrics)
        run = self._spawn(self._drive(request, config, graph_input, queue, progress, name_after))
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
            # complete (persist may be writing it). Nothing of it is stored; see the README.
            if not ended and not progress.inferred:
                run.cancel()

    async def _start(self, request: TurnRequest) -> tuple[RunnableConfig, dict[str, Any], bool] | None:
        """With the session's lock held: the session opened (created on first use), the run's config, the
        graph's input and whether to name the session after it; None if the request belongs to another
        conversation than the one stored here (its side session takes it)."""
        session = await asyncio.to_thread(open_session, self.deps.sessions, request.session_id,
                                          request.project_id, request.owner)
        config: RunnableConfig = {"configurable": {**request.configurable, "thread_id": request.session_id,
                                                   "scope": scope_of(session["project_id"], session.get("owner")),
                                                   "owner": request.owner}}  # the semantic cache's key
        if not request.side_session and await self._settled.still_settled(request.session_id):
            history = True  # its last turn ran here to the end: nothing to load or repair
        else:
            state = await repaired_state(self.graph, self.deps.episodes, config)
            history = bool(state.values.get("messages"))
            if request.side_session and not continues(request.messages, state.values.get("messages") or []):
                return None
        fresh = new_messages(history, request.messages)
        check_turn_input(fresh, request.system, request.tools, self.max_message_chars)
        for message in fresh:
            message.id = message.id or f"in-{uuid.uuid4().hex}"
        # recall's search starts now, beside the graph's start and the checkpoint's load (nodes/recall.py).
        prefetch = request.configurable.get(PREFETCH_KEY)
        if not isinstance(prefetch, RecallPrefetch):  # a door may have started it already (realtime, speculatively)
            prefetch = RecallPrefetch.start(self.deps, config["configurable"]["scope"], last_user_text(fresh))
        if prefetch is not None:
            config["configurable"][PREFETCH_KEY] = prefetch
        graph_input: dict[str, Any] = {"messages": fresh, "tools": request.tools or []}
        if request.system is not None:
            graph_input["system"] = request.system
        return config, graph_input, not session.get("name") and not session.get("turn_count")

    async def end_interrupted(self, session_id: str, user: HumanMessage, heard: str) -> AIMessage | None:
        """After a turn of `user` was cancelled mid-reply (barge-in): once its rollback is done, store `user` and
        the `heard` part of the reply, marked interrupted (server/turns/interrupted.py); nothing if `heard` is
        empty. Returns the stored reply, or None."""
        async with self.exclusive(session_id):  # waits for the cancelled run to finish rolling back
            if not heard:
                return None
            reply = await keep_heard(self.graph, self.deps, session_id, user, heard)
            if reply is not None:
                self.metrics.turns.labels("interrupted").inc()
            return reply

    async def truncate_reply(self, session_id: str, reply_id: str, heard: str) -> Truncation:
        """A stored reply its user cut off while it still played: keep only its `heard` part, marked
        interrupted, or take the turn back if nothing was heard (server/turns/truncate.py)."""
        async with self.exclusive(session_id):  # waits for the reply's run (its summary) to end
            self.forget(session_id)  # the turn may be gone: the next one loads the checkpoint afresh
            outcome = await truncate_reply(self.graph, self.deps, session_id, reply_id, heard)
            if outcome != "unchanged":
                self.metrics.turns.labels("interrupted").inc()
            return outcome

    async def _drive(self, request: TurnRequest, config: RunnableConfig, graph_input: dict, queue: asyncio.Queue,
                     progress: TurnProgress, name_after: bool) -> None:
        """Run the turn, feeding `queue`: its text as it comes, then the stored reply or the failure."""
        delivered = False
        try:
            await self._run_to_persist(config, graph_input, queue, progress, request.stream)
            if progress.stored:  # the first run's checkpoint is written: the turn is safe, the reply goes out
                self._deliver(request, progress, queue, await self._commit(request, progress))
                delivered = True
                await self._after_reply(request, config, graph_input, progress, name_after)
        except Exception as exc:
            self._settled.discard(request.session_id)
            if delivered:
                log.exception("session %s: the run failed after the reply was stored", request.session_id)
            else:
                await self._undo(config, progress.added, request.session_id)
                self.metrics.turns.labels("error").inc()
                failure = turn_failure(self.inference_url, exc, progress.stored)
                queue.put_nowait(TurnEvent("error", error=failure, meta=progress.meta))
        except BaseException as exc:  # cancelled (its client left, or shutdown): the turn is undone
            self._settled.discard(request.session_id)
            if not delivered:
                await asyncio.shield(self._undo(config, progress.added, request.session_id))
                self.metrics.turns.labels("cancelled").inc()
                log.info("session %s: turn cancelled before its reply was complete; rolled back",
                         request.session_id)
                failure = turn_failure(self.inference_url, exc, False)
                queue.put_nowait(TurnEvent("error", error=failure, meta=progress.meta))
            raise
        else:
            if not delivered:
                failure = turn_failure(self.inference_url, RuntimeError("the run ended without a reply"), False)
                queue.put_nowait(TurnEvent("error", error=failure, meta=progress.meta))
        finally:
            self.locks.release(request.session_id)

    async def _run_to_persist(self, config: RunnableConfig, graph_input: dict, queue: asyncio.Queue,
                              progress: TurnProgress, stream: bool) -> None:
        """recall → … → persist in one run, its text streamed into `queue` as it comes.

        One checkpoint for the whole run, which holds the whole turn before the reply goes out; when a summary
        is due, the run stops before summarise and a second run does it after the reply. Saving after every
        node instead (the default) cost five more writes of the whole state per turn, on the reply's path."""
        modes: list[StreamMode] = ["updates", "messages"] if stream else ["updates"]
        async for mode, chunk in self.graph.astream(graph_input, config, stream_mode=modes,
                                                    interrupt_before=["summarise"], durability="exit"):
            if mode == "messages":
                text = progress.token(*chunk)
                if text:
                    queue.put_nowait(TurnEvent("text", text, meta=progress.meta))
            else:
                progress.updates(chunk)

    async def _commit(self, request: TurnRequest, progress: TurnProgress) -> AIMessage:
        """The turn's episode becomes memory now that its checkpoint holds the turn (server/turns/commit.py)."""
        final = progress.final
        assert final is not None  # persist ran after parse_tools
        await commit_turn(self.deps, request.session_id, final.id)
        return final

    def _deliver(self, request: TurnRequest, progress: TurnProgress, queue: asyncio.Queue, final: AIMessage) -> None:
        """The rest of the text the stream could not show, then the stored reply."""
        rest = progress.unshown()
        if request.stream and rest:
            queue.put_nowait(TurnEvent("text", rest, meta=progress.meta))
        queue.put_nowait(TurnEvent("final", message=final, meta=progress.meta))
        self.metrics.turns.labels("ok").inc()

    async def _after_reply(self, request: TurnRequest, config: RunnableConfig, graph_input: dict,
                           progress: TurnProgress, name_after: bool) -> None:
        """A new session's name (fire-and-forget, outside this run's callbacks) and the summary, if due."""
        if name_after and progress.final is not None:
            first_user = next((m.text for m in graph_input["messages"] if m.type == "human"), "")
            self._spawn(name_session(self.deps, request.session_id, first_user, progress.final.text),
                        context=contextvars.Context())
        if progress.summary_due:
            async for _ in self.graph.astream(None, config, stream_mode="updates", durability="exit"):
                pass  # summarise
        await self._settled.settle(request.session_id)

    async def _undo(self, config: RunnableConfig, added: list[str | None], session_id: str) -> None:
        """A failed turn leaves nothing: its messages rolled back, then its uncommitted episode discarded (if the
        rollback failed, start-up repair follows the checkpoint instead)."""
        if await rollback(self.graph, config, added):
            await discard_turn(self.deps, session_id)

    async def settled_state(self, session_id: str):
        """A session's state once any turn running on it has finished (a reply just sent is in it)."""
        async with self.exclusive(session_id):
            return await repaired_state(self.graph, self.deps.episodes, {"configurable": {"thread_id": session_id}})

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

    def _spawn(self, coro, context=None) -> asyncio.Task:
        task = asyncio.create_task(coro, context=context)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return task

    async def drain(self) -> None:
        """Wait for runs still going (summaries, naming) to finish."""
        if self._runs:
            await asyncio.gather(*list(self._runs), return_exceptions=True)
