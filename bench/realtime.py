"""Realtime voice turns (GET /orchestrate, issue 19): thinking time, barge-in latency, 8 voice sessions at once.

    python bench/realtime.py                     # ~1 min; prints a table, writes bench/results/realtime.json
    python bench/realtime.py --episodes 0,100000 # the issue's larger store (seeding 100k takes minutes)

- *thinking*: `vad_end` to the first token, as the service reports it (`response_ready.thinking_ms`) and as the
  client sees it, minus the node's own time to first token (measured straight against the node), with
  speculative recall on and off, on an empty store and a seeded one. Each spoken turn sends partials 30 ms
  apart, a final, then waits 200 ms before `vad_end` (a VAD's end-of-speech hangover: the time speculative
  recall has to run in).
- *barge-in*: `interrupt` to the node seeing its connection closed (FakeBackend's `aborted`, polled every
  millisecond, on a node writing a piece every 5 ms), and `interrupt` to the `LISTENING` state (the run
  cancelled and rolled back, what was heard stored).
- *8 concurrent voice sessions*: 8 sockets, each 5 spoken turns at once.
Only 127.0.0.1 is contacted; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.common import RESULTS, ROOT, summary_ms, synthetic_question  # noqa: E402
from bench.service import Service  # noqa: E402
from tests.fake_backend import FakeBackend  # noqa: E402
from tests.integration.realtime_client import is_state, of_type, open_voice, read_until, send  # noqa: E402
from tests.integration.test_realtime import story_responder  # noqa: E402

VAD_HANGOVER_S = 0.2
ENV = {"REALTIME_SILENCE_TIMEOUT_MS": "0", "SUMMARY_TRIGGER_MESSAGES": "200"}


def node_ttft(node: FakeBackend, n: int = 20) -> list[float]:
    """The node's own time to the first character of the answer, straight from an HTTP client."""
    out = []
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            text = ""
            with client.stream("POST", node.base_url + "/chat/completions", json=body) as reply:
                for line in reply.iter_lines():
                    if line.startswith("data: {"):
                        choices = json.loads(line[6:]).get("choices") or [{}]
                        text += choices[0].get("delta", {}).get("content") or ""
                    if '"assistant_response": "' in text and not text.endswith('"assistant_response": "'):
                        out.append(time.perf_counter() - t0)
                        break
    return out


def spoken_turn(ws, question: str) -> dict:
    """Partials, a final, the VAD's hangover, `vad_end`; the thinking times of the answer."""
    words = question.split()
    for k in range(2, len(words), 2):
        send(ws, {"type": "stt_fragment", "text": " ".join(words[:k]), "is_final": False})
        time.sleep(0.03)
    send(ws, {"type": "stt_fragment", "text": question, "is_final": True})
    time.sleep(VAD_HANGOVER_S)
    t0 = time.perf_counter()
    send(ws, {"type": "vad_end", "confidence": 0.95})
    first = None
    while True:
        frame = read_until(ws, lambda f: f["type"] in ("response_delta", "response_ready", "error"))[-1]
        if frame["type"] == "error":
            raise RuntimeError(frame)
        if first is None:
            first = time.perf_counter() - t0
        if frame["type"] == "response_ready":
            read_until(ws, is_state("IDLE"))
            return {"client_s": first, "server_s": frame["thinking_ms"] / 1000, "turn_s": time.perf_counter() - t0,
                    "speculative": frame["timings"]["speculative_recall"]}


def thinking(base_url: str, turns: int, rng: random.Random) -> list[dict]:
    """`turns` spoken turns, a new session every 5 (the first one a warm-up, dropped)."""
    out = []
    for start in range(0, turns + 1, 5):
        with open_voice(base_url, f"bench-{uuid.uuid4().hex[:8]}") as ws:
            read_until(ws, is_state("LISTENING"))
            for _ in range(min(5, turns + 1 - start)):
                out.append(spoken_turn(ws, synthetic_question(rng)))
    return out[1:]


def barge_ins(base_url: str, node: FakeBackend, n: int) -> dict:
    """`n` barge-ins on a streaming reply: to the node's connection closed, and to LISTENING."""
    closed, listening = [], []
    with open_voice(base_url, f"bench-barge-{uuid.uuid4().hex[:8]}") as ws:
        read_until(ws, is_state("LISTENING"))
        for _ in range(n):
            aborted = node.aborted
            send(ws, {"type": "text", "text": "tell me a long story"})
            for _ in range(3):
                read_until(ws, of_type("response_delta"))
            send(ws, {"type": "playback", "spoken_chars": 10})
            seen: list[float] = []
            watcher = threading.Thread(target=_watch_aborted, args=(node, aborted, seen))
            watcher.start()
            t0 = time.perf_counter()
            send(ws, {"type": "interrupt"})
            read_until(ws, is_state("LISTENING"))
            listening.append(time.perf_counter() - t0)
            watcher.join(15)
            if seen:
                closed.append(seen[0] - t0)
    return {"to_node_closed_ms": summary_ms(closed), "to_listening_ms": summary_ms(listening)}


def _watch_aborted(node: FakeBackend, before: int, seen: list[float]) -> None:
    """Append the time the node first sees a stream's connection closed (polled every millisecond, ≤ 10 s)."""
    deadline = time.monotonic() + 10
    while node.aborted == before and time.monotonic() < deadline:
        time.sleep(0.001)
    if node.aborted != before:
        seen.append(time.perf_counter())


def concurrent_sessions(base_url: str, sessions: int = 8, turns: int = 5) -> dict:
    """`sessions` voice sockets at once, `turns` spoken turns each."""
    results: list[dict] = []
    errors: list[str] = []

    def one(i: int) -> None:
        rng = random.Random(100 + i)
        try:
            with open_voice(base_url, f"bench-c{i}-{uuid.uuid4().hex[:6]}") as ws:
                read_until(ws, is_state("LISTENING"))
                for _ in range(turns):
                    results.append(spoken_turn(ws, synthetic_question(rng)))
        except Exception as exc:  # reported, not raised: the table says how many failed
            errors.append(repr(exc))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    wall = time.perf_counter() - t0
    return {"sessions": sessions, "turns": len(results), "errors": errors, "wall_s": round(wall, 2),
            "thinking_ms": summary_ms([r["server_s"] for r in results]),
            "turn_ms": summary_ms([r["turn_s"] for r in results])}


def seed(workdir: Path, episodes: int) -> None:
    """`episodes` in the store (300 embedded with MiniLM, the rest cheap vectors), in a child process."""
    code = ("import random,sys; from pathlib import Path; from bench.seed import open_stores, seed_embedded, "
            "seed_filler; s = open_stores(Path(sys.argv[1])); r = random.Random(3); n = int(sys.argv[2]); "
            "seed_embedded(s, min(n, 300), r); n > 300 and seed_filler(s, n - 300, r); s.close()")
    subprocess.run([sys.executable, "-c", code, str(workdir), str(episodes)], check=True, cwd=ROOT, timeout=900)


def run_realtime(workdir: Path, episode_counts: tuple[int, ...] = (0, 5_000), turns: int = 12) -> dict:
    """Every measure of the module docstring; a dict for results.json."""
    results: dict = {"thinking": [], "vad_hangover_ms": VAD_HANGOVER_S * 1000}
    with FakeBackend(story_responder) as node:
        ttft = node_ttft(node)
        node_ms = statistics.median(ttft) * 1000
        results["node_ttft_ms"] = summary_ms(ttft)
        for episodes in episode_counts:
            store = workdir / f"store-{episodes}"
            store.mkdir(parents=True, exist_ok=True)
            if episodes:
                t0 = time.perf_counter()
                seed(store, episodes)
                print(f"  seeded {episodes} episodes in {time.perf_counter() - t0:.1f} s", flush=True)
            for speculative in (True, False):
                env = {**ENV, "REALTIME_SPECULATIVE_RECALL": str(speculative).lower()}
                with Service(store, node.base_url, env) as service:
                    rows = thinking(service.base_url, turns, random.Random(episodes))
                    row = {"episodes": episodes, "speculative": speculative,
                           "reused": sum(r["speculative"] for r in rows),
                           "server_minus_node_ms": summary_ms([max(0.0, r["server_s"] - node_ms / 1000)
                                                               for r in rows]),
                           "client_minus_node_ms": summary_ms([max(0.0, r["client_s"] - node_ms / 1000)
                                                               for r in rows])}
                    results["thinking"].append(row)
                    print(f"  thinking, {episodes} episodes, speculative {speculative}: "
                          f"{row['server_minus_node_ms']['p50']:.1f} / {row['server_minus_node_ms']['p95']:.1f} ms",
                          flush=True)
                    if episodes == episode_counts[0] and speculative:
                        results["concurrent"] = concurrent_sessions(service.base_url)
                        node.chunk_delay = 0.005
                        results["barge_in"] = barge_ins(service.base_url, node, 15)
                        node.chunk_delay = 0.0
    return results


def markdown(results: dict) -> str:
    """The tables of BENCHMARKS.md's realtime section."""
    lines = ["| store | speculative recall | reused | thinking − node TTFT, server p50 / p95 ms | "
             "client p50 / p95 ms |", "|---|---|---|---|---|"]
    for row in results["thinking"]:
        s, c = row["server_minus_node_ms"], row["client_minus_node_ms"]
        lines.append(f"| {row['episodes']:,} episodes | {'on' if row['speculative'] else 'off'} | "
                     f"{row['reused']}/{s['n']} | {s['p50']:.1f} / {s['p95']:.1f} | {c['p50']:.1f} / {c['p95']:.1f} |")
    b = results["barge_in"]
    lines += ["", f"| barge-in (n = {b['to_node_closed_ms']['n']}) | p50 ms | p95 ms |", "|---|---|---|",
              f"| interrupt → node's connection closed | {b['to_node_closed_ms']['p50']:.1f} | "
              f"{b['to_node_closed_ms']['p95']:.1f} |",
              f"| interrupt → LISTENING (rolled back, heard part stored) | {b['to_listening_ms']['p50']:.1f} | "
              f"{b['to_listening_ms']['p95']:.1f} |"]
    c = results["concurrent"]
    lines += ["", "| 8 voice sessions at once | turns | errors | thinking p50 / p95 ms | vad_end → response_ready "
              "p50 / p95 ms |", "|---|---|---|---|---|",
              f"| 8 × 5 spoken turns | {c['turns']} | {len(c['errors'])} | {c['thinking_ms']['p50']:.1f} / "
              f"{c['thinking_ms']['p95']:.1f} | {c['turn_ms']['p50']:.1f} / {c['turn_ms']['p95']:.1f} |"]
    return "\n".join(lines) + f"\n\nNode TTFT p50 {results['node_ttft_ms']['p50']:.1f} ms (subtracted).\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", default="0,5000", help="comma-separated store sizes")
    parser.add_argument("--turns", type=int, default=12, help="measured spoken turns per configuration")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as tmp:
        results = run_realtime(Path(tmp), tuple(int(x) for x in args.episodes.split(",")), args.turns)
    results["runtime_s"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "realtime.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"total {results['runtime_s']} s")


if __name__ == "__main__":
    main()
