"""Where the added latency goes: the overhead benchmark with parts of the turn switched off by settings.

Configurations (empty store, non-streaming and streaming, same turns as `overhead.py`):
  default | RECALL_TOP_K=0 (no recall: no query embedding, no FTS5/vector search) |
  SUMMARY_TRIGGER_MESSAGES=100000 (no rolling summary) | both | OMP_NUM_THREADS=1 (torch on one thread) |
  default with 250 ms of untimed think time between turns (background indexing of the previous episode
  finishes before the next turn, as it would in front of a real model) | the recall variants' EPISODE_EMBEDDING,
  `context-idle` (the default) against `message` with turns 1.05 s apart (its context vectors made then).
Usage: `python bench/ablation.py [--turns 100] [--only LABEL-PART ...]`; writes bench/results/ablation.json.
Not run by run_all.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.overhead import run_overhead  # noqa: E402
from bench.service import Service  # noqa: E402

CONFIGS: dict[str, tuple[dict[str, str], float]] = {
    "default": ({}, 0.0),
    "no recall": ({"RECALL_TOP_K": "0"}, 0.0),
    "no summary": ({"SUMMARY_TRIGGER_MESSAGES": "100000"}, 0.0),
    "no recall, no summary": ({"RECALL_TOP_K": "0", "SUMMARY_TRIGGER_MESSAGES": "100000"}, 0.0),
    "torch 1 thread": ({"OMP_NUM_THREADS": "1"}, 0.0),
    "default, 250 ms think time": ({}, 0.25),
    "no recall, 250 ms think time": ({"RECALL_TOP_K": "0"}, 0.25),
    # Recall variants of issue 20 (BENCHMARKS.md, LoCoMo): what a second embedding per turn costs a turn.
    "EPISODE_EMBEDDING=message": ({"EPISODE_EMBEDDING": "message"}, 0.0),
    "EPISODE_EMBEDDING=exchange": ({"EPISODE_EMBEDDING": "exchange"}, 0.0),
    "EPISODE_EMBEDDING=context": ({"EPISODE_EMBEDDING": "context"}, 0.0),
    "EPISODE_EMBEDDING=context, 250 ms think time": ({"EPISODE_EMBEDDING": "context"}, 0.25),
    # context-idle (the default since the third round): the context vector is made once no turn has finished
    # for REFINE_IDLE_SECONDS (1 s); with 1.05 s between turns, the next turn arrives as it is being made.
    "EPISODE_EMBEDDING=context-idle, 1.05 s think time": ({"EPISODE_EMBEDDING": "context-idle"}, 1.05),
    "EPISODE_EMBEDDING=message, 1.05 s think time": ({"EPISODE_EMBEDDING": "message"}, 1.05),
}


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--only", action="append", default=[], help="run only the configurations whose label "
                        "contains this (repeatable)")
    args = parser.parse_args()
    records = []
    with BackendProcess() as backend:
        for label, (env, pause) in CONFIGS.items():
            if args.only and not any(part in label for part in args.only):
                continue
            with tempfile.TemporaryDirectory(prefix="bench-abl-") as tmp:
                with Service(Path(tmp), backend.base_url, extra_env=env) as service:
                    records.append({"env": env, **run_overhead(service.base_url, backend.base_url, label,
                                                                args.turns, args.turns // 2, pause)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ablation.json").write_text(json.dumps(records, indent=2))
    print("\n| configuration | added p50 (ms) | added p95 (ms) | TTFT added p50 (ms) |\n|---|---|---|---|")
    for r in records:
        ns, st = r["non_streaming"]["added_ms"], r["streaming_ttft"]["added_ms"]
        print(f"| {r['label']} | {ns['p50']:.1f} | {ns['p95']:.1f} | {st['p50']:.1f} |")


if __name__ == "__main__":
    main()
