"""Checkpoint bytes on disk with and without the retention policy (CHECKPOINTS_KEPT), and what pruning adds
to a turn.

Turns are written through a real LangGraph graph over the service's own State and checkpointer (the saver,
pragmas and background pruner of server/checkpoint_pruner.py), not over HTTP: the 40k turns measured here
would take ~10 minutes through the service, whose recall and inference are measured elsewhere. A turn is one
run that adds the user's message and a reply of ~560 characters each (the issue's measure), then, past
SUMMARY_TRIGGER_MESSAGES, a second checkpoint that folds the older messages into a summary, as summarise
does. "Over 100 sessions" spreads the same numbers of turns round-robin over 100 threads.

    python bench/checkpoint_retention.py [--turns 10000] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

from bench.common import summary_ms, synthetic_exchange  # noqa: E402
from graph.state import State  # noqa: E402
from memory.checkpoint_retention import SqliteCheckpointRetention  # noqa: E402
from server.checkpoint_pruner import CheckpointPruner, open_saver  # noqa: E402

KEPT = 10  # the default of CHECKPOINTS_KEPT
RECENT, TRIGGER = 12, 24  # the defaults of RECENT_MESSAGES and SUMMARY_TRIGGER_MESSAGES
CHARS = 560


class TimedRetention(SqliteCheckpointRetention):
    """The real store, with the time of each prune kept (it runs in the pruner's thread, off the turn)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.prune_s: list[float] = []

    def prune(self, thread_id: str, keep: int) -> int:
        start = time.perf_counter()
        try:
            return super().prune(thread_id, keep)
        finally:
            self.prune_s.append(time.perf_counter() - start)


def padded(text: str, rng: random.Random) -> str:
    """`text` grown to about CHARS characters with more of the synthetic vocabulary."""
    while len(text) < CHARS:
        text += " " + synthetic_exchange(rng)[0]
    return text[:CHARS]


def turn_graph():
    """One node that answers; State is the service's, so each checkpoint holds what the service's would."""
    def answer(state: State) -> dict:
        user = state["messages"][-1].text
        return {"messages": [AIMessage(padded("Noted: " + user[:80], random.Random(len(state["messages"]))))],
                "prompt": [], "recalled": {"episodes": [user[:200]] * 3, "degraded": False}}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder


async def run(workdir: Path, kept: int, sessions: int, turns: int, marks: tuple[int, ...]) -> dict:
    """`turns` turns round-robin over `sessions` threads; bytes on disk at each mark, turn latencies."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"checkpoints-{kept}-{sessions}.db"
    saver = await open_saver(path)
    store = TimedRetention(path)
    pruner = CheckpointPruner(store, kept)
    saver.on_put = pruner.mark
    pruner.start()
    put_s: list[float] = []  # the checkpoint write of each turn: where pruning could make a turn wait
    saver_put = saver.aput

    async def timed_put(*args, **kwargs):
        start = time.perf_counter()
        try:
            return await saver_put(*args, **kwargs)
        finally:
            put_s.append(time.perf_counter() - start)

    saver.aput = timed_put
    graph = turn_graph().compile(checkpointer=saver)
    rng = random.Random(7)
    latencies: list[float] = []
    at: dict[int, dict] = {}
    for i in range(1, turns + 1):
        config = {"configurable": {"thread_id": f"s{i % sessions}"}}
        message = HumanMessage(padded(synthetic_exchange(rng)[0], rng))
        start = time.perf_counter()
        out = await graph.ainvoke({"messages": [message]}, config, durability="exit")
        latencies.append(time.perf_counter() - start)
        if len(out["messages"]) > TRIGGER:  # the summarise run, after the reply
            old = out["messages"][:-RECENT]
            await graph.aupdate_state(config, {"summary": padded("Summary:", rng),
                                               "messages": [RemoveMessage(id=m.id) for m in old]})
        if i in marks:
            await pruner.drain()  # what the pruner has done 0.5 s after the last turn
            stats = store.stats()
            at[i] = {"bytes_on_disk": stats.bytes_on_disk, "file_bytes": path.stat().st_size,
                     "checkpoints": stats.checkpoints, "free_bytes": stats.free_bytes}
    await pruner.close()
    await saver.conn.close()
    return {"kept": kept, "sessions": sessions, "turns": turns, "at": at, "turn_ms": summary_ms(latencies),
            "put_ms": summary_ms(put_s),
            "prune_ms": summary_ms(store.prune_s), "prunes": len(store.prune_s)}


async def measure(turns: int) -> dict:
    """Both policies, on one session and over 100."""
    marks = tuple(sorted({100, 1000, turns // 2, turns} - {0}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        await run(Path(tmp) / "warm", KEPT, 1, 300, ())  # imports and first-call costs, not measured
        for sessions in (1, 100):
            for kept in (0, KEPT):
                started = time.perf_counter()
                row = await run(Path(tmp), kept, sessions, turns, marks)
                row["seconds"] = round(time.perf_counter() - started, 1)
                rows.append(row)
                last = row["at"][turns]
                print(f"  {sessions:>3} session(s), CHECKPOINTS_KEPT={kept:<2}: {turns} turns -> "
                      f"{last['bytes_on_disk'] / 1e6:.1f} MB, {last['checkpoints']} checkpoints; turn p50 "
                      f"{row['turn_ms']['p50']:.2f} ms p95 {row['turn_ms']['p95']:.2f}; {row['seconds']} s",
                      flush=True)
    return {"turns": turns, "kept": KEPT, "message_chars": CHARS, "runs": rows}


def markdown(result: dict) -> str:
    """The table of BENCHMARKS.md."""
    lines = ["| sessions | CHECKPOINTS_KEPT | turns | checkpoints | MB on disk (file + WAL) | file MB | free MB "
             "| turn p50 / p95 ms | checkpoint write p50 / p95 / p99 ms | prune p50 / p95 ms (background) |",
             "|---" * 10 + "|"]
    for row in result["runs"]:
        for turns, at in sorted(row["at"].items()):
            prune = f"{row['prune_ms']['p50']:.2f} / {row['prune_ms']['p95']:.2f}" if row["prunes"] else "-"
            put = row["put_ms"]
            lines.append(f"| {row['sessions']} | {row['kept'] or 'off (0)'} | {turns} | {at['checkpoints']} | "
                         f"{at['bytes_on_disk'] / 1e6:.2f} | {at['file_bytes'] / 1e6:.2f} | "
                         f"{at['free_bytes'] / 1e6:.2f} | {row['turn_ms']['p50']:.2f} / {row['turn_ms']['p95']:.2f} | "
                         f"{put['p50']:.2f} / {put['p95']:.2f} / {put['p99']:.2f} | {prune} |")
    return "\n".join(lines) + "\n"


def flat_ratio(result: dict) -> float | None:
    """Bytes on disk at the last mark over bytes at 1000 turns, one session with the policy on."""
    row = next((r for r in result.get("runs", []) if r["sessions"] == 1 and r["kept"]), None)
    if row is None or 1000 not in row["at"] or len(row["at"]) < 2:
        return None
    return round(row["at"][max(row["at"])]["bytes_on_disk"] / row["at"][1000]["bytes_on_disk"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(measure(args.turns))
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
