"""The live voice sockets of one service: one per session (a second connection takes the session over), and
their metrics (/metrics: thinking time, barge-ins, cancelled generations, live sessions)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

from server.metrics import Metrics

THINKING_BUCKETS = (0.01, 0.025, 0.05, 0.08, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Live(Protocol):
    session_id: str

    async def take_over(self) -> None:
        """Another connection took the session: stop, and close with a reason."""


class RealtimeHub:
    """Which socket holds each session, and the realtime metrics on the service's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.thinking = Histogram("orchestrator_realtime_thinking_seconds", "Voice turns: end of the user's turn "
                                  "(vad_end, silence or a typed turn) to the first token", buckets=THINKING_BUCKETS,
                                  registry=r)
        self.barge_ins = Counter("orchestrator_realtime_barge_ins_total", "Voice turns interrupted by their user",
                                 registry=r)
        self.cancelled = Counter("orchestrator_realtime_cancelled_generations_total", "Generations cancelled "
                                 "mid-reply by a barge-in, a takeover or a socket that closed", registry=r)
        self.live_gauge = Gauge("orchestrator_realtime_sessions", "Sessions with a live voice socket", registry=r)
        self._live: dict[str, Live] = {}
        self._lock = asyncio.Lock()

    @property
    def active(self) -> int:
        """Sessions with a live voice socket."""
        return len(self._live)

    async def attach(self, socket: Live) -> None:
        """`socket` holds its session from now on; the one that held it is taken over first (its generation
        ended, its socket closed), so two sockets never answer on one session."""
        async with self._lock:
            previous = self._live.get(socket.session_id)
            if previous is not None:
                await previous.take_over()
            self._live[socket.session_id] = socket
            self.live_gauge.set(len(self._live))

    def detach(self, socket: Live) -> None:
        """`socket` closed: its session is free (unless another socket has taken it over)."""
        if self._live.get(socket.session_id) is socket:
            del self._live[socket.session_id]
            self.live_gauge.set(len(self._live))
