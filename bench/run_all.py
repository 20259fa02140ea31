"""Run every benchmark (about 6-8 minutes on 2 cores) and write bench/results/{results.json,summary.md,*.png}.

Phases, each with its own store under a temporary directory and the service as a child process:
  A. empty store: cold start, idle RSS, added latency, concurrency 1/8/32, RSS after load; then the peer
     race (the same graph under `langgraph dev`, driven by langgraph_sdk, vs. this service, 1 and 8 clients),
     the prompt budget of a Claude-Code-shaped request, checkpoint bytes with and without retention, and
     the dialogues (bench/dialogues.py), realtime voice turns (bench/realtime.py), routing and the semantic
     cache (bench/classify.py), LoCoMo recall on one dev conversation (bench/memory_eval.py --quick), and
     the scale-out profiles (bench/scale_out.py --quick: embedded vs Postgres + Chroma server, 1 and 2
     workers, per-turn engine costs; a tree without the Postgres profile records why under "unavailable");
  B. 1k -> 10k real-embedded episodes: recall scaling, then the service on the 10k store;
  C. (unless --skip-100k or the run is already long) 10k -> 100k episodes with cheap vectors: recall
     scaling, then the service on the 100k store;
  D. project churn: 1,000 one-turn projects created, then deleted, on a fresh store; open files and RSS of
     the service's process tree (bench/project_churn.py; --churn-projects 0 skips it).
Only 127.0.0.1 is contacted; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cache_service import measure_service as measure_cache_service  # noqa: E402
from bench.checkpoint_retention import measure as measure_retention  # noqa: E402
from bench.classify import markdown as routing_markdown  # noqa: E402
from bench.classify import measure_cache, measure_classifier  # noqa: E402
from bench.common import RESULTS, ROOT  # noqa: E402
from bench.concurrency import run_concurrency  # noqa: E402
from bench.dialogues import markdown as dialogue_markdown  # noqa: E402
from bench.dialogues import run_dialogues  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.memory_eval import markdown as memory_eval_markdown  # noqa: E402
from bench.memory_eval import run_memory_eval  # noqa: E402
from bench.overhead import run_overhead  # noqa: E402
from bench.peer_race import run_peer_race  # noqa: E402
from bench.plots import plot_all  # noqa: E402
from bench.project_churn import run_project_churn  # noqa: E402
from bench.prompt_budget import CONTEXTS, measure  # noqa: E402
from bench.realtime import markdown as realtime_markdown  # noqa: E402
from bench.realtime import run_realtime  # noqa: E402
from bench.report import machine, markdown, targets  # noqa: E402
from bench.scale_out import markdown as scale_out_markdown  # noqa: E402
from bench.scale_out import run_scale_out  # noqa: E402
from bench.service import Service  # noqa: E402

PHASE_C_START_LIMIT_S = 420.0  # skip the 100k phase if the run is already this long
# Turns of the checkpoint retention measure (x4 runs, ~20-40 s in all); `python bench/checkpoint_retention.py`
# alone runs 10k (~2.5 min).
RETENTION_TURNS = 3000


def recall_scaling(workdir: Path, stages: str, embedded_up_to: int) -> list[dict]:
    """Run bench/recall_scaling.py in its own process (it must own the Chroma directory alone)."""
    out = workdir / f"recall-{stages.replace(',', '_')}.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "recall_scaling.py"), str(workdir), "--stages", stages,
                    "--embedded-up-to", str(embedded_up_to), "--out", str(out)], check=True, cwd=ROOT,
                   timeout=600)
    return json.loads(out.read_text())


def serve_and_measure(workdir: Path, backend_url: str, label: str, results: dict, turns: int,
                      with_concurrency: bool = False) -> None:
    """Start the service on `workdir`, record cold start and RSS, measure overhead (and concurrency)."""
    footprint = results["footprint"]
    slug = label.replace(" ", "_")
    with Service(workdir, backend_url) as service:
        footprint[f"cold_start_s_{slug}"] = round(service.cold_start_s, 2)
        time.sleep(1.0)
        footprint[f"idle_rss_mb_{slug}"] = round(service.rss_mb(), 1)
        print(f"  service up in {service.cold_start_s:.1f} s, idle RSS {service.rss_mb():.0f} MiB", flush=True)
        results["overhead"].append(run_overhead(service.base_url, backend_url, label, turns, turns // 2))
        if with_concurrency:
            results["concurrency"] = run_concurrency(service.base_url, (1, 8, 32), slug)
        time.sleep(1.0)  # let background indexing/summaries finish before reading RSS
        footprint[f"after_load_rss_mb_{slug}"] = round(service.rss_mb(), 1)
        print(f"  RSS after load {footprint[f'after_load_rss_mb_{slug}']:.0f} MiB", flush=True)


def run_routing(workdir: Path) -> dict:
    """The classifier and the semantic cache (bench/classify.py), and the cache through the service."""
    from memory.embedder import Embedder

    workdir.mkdir(parents=True, exist_ok=True)
    embedder = Embedder()
    out = {"classifier": measure_classifier(embedder), "cache": measure_cache(embedder, workdir)}
    out["service"] = measure_cache_service(workdir / "service")
    return out


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200, help="non-streaming turns per store (streaming: half)")
    parser.add_argument("--skip-100k", action="store_true", help="stop at 10k episodes")
    parser.add_argument("--churn-projects", type=int, default=1000, help="projects of the churn phase (0: skip)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict = {"machine": machine(), "overhead": [], "recall_scaling": [], "concurrency": [],
                     "footprint": {}, "peer_race": {}, "prompt_budget": [], "checkpoint_retention": {},
                     "skipped": []}
    print(f"machine: {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, BackendProcess() as backend:
        empty, seeded = Path(tmp) / "empty", Path(tmp) / "seeded"
        empty.mkdir()
        seeded.mkdir()
        print("[A] empty store", flush=True)
        serve_and_measure(empty, backend.base_url, "0 episodes", results, args.turns, with_concurrency=True)
        results["peer_race"] = run_peer_race(Path(tmp) / "race", backend.base_url)
        results["prompt_budget"] = [measure(c, m, turn) for c, m in CONTEXTS for turn in (1, 8)]
        print(f"[A] checkpoint retention: {RETENTION_TURNS} turns through the graph and saver", flush=True)
        results["checkpoint_retention"] = asyncio.run(measure_retention(RETENTION_TURNS))
        print("[A] dialogues (MAX_CONCURRENT_DIALOGUES 1 and 8)", flush=True)
        results["dialogues"] = run_dialogues(Path(tmp) / "dialogues")
        print("[A] realtime voice turns (bench/realtime.py)", flush=True)
        results["realtime"] = run_realtime(Path(tmp) / "realtime")
        results["routing"] = run_routing(Path(tmp) / "routing")
        print("[A] LoCoMo recall, --quick (bench/memory_eval.py)", flush=True)
        results["memory_eval"] = run_memory_eval(Path(tmp) / "locomo", quick=True)
        print("[A] scale-out profiles, --quick (bench/scale_out.py)", flush=True)
        results["scale_out"] = run_scale_out(Path(tmp) / "scale-out", backend.base_url, quick=True, strict=False)
        print("[B] seeding 1k -> 10k embedded episodes", flush=True)
        results["recall_scaling"] += recall_scaling(seeded, "1000,10000", 10_000)
        serve_and_measure(seeded, backend.base_url, "10k episodes", results, args.turns)
        elapsed = time.perf_counter() - t0
        if args.skip_100k or elapsed > PHASE_C_START_LIMIT_S:
            results["skipped"].append(f"100k phase (elapsed {elapsed:.0f} s, --skip-100k={args.skip_100k})")
        else:
            print("[C] growing to 100k episodes (cheap vectors beyond 10k)", flush=True)
            results["recall_scaling"] += recall_scaling(seeded, "100000", 10_000)
            serve_and_measure(seeded, backend.base_url, "100k episodes", results, args.turns)
        if args.churn_projects > 0:
            print(f"[D] project churn: {args.churn_projects} projects", flush=True)
            results["project_churn"] = run_project_churn(Path(tmp) / "churn", backend.base_url, args.churn_projects)
        else:
            results["skipped"].append("project churn (--churn-projects 0)")
    results["targets"] = targets(results)
    results["total_runtime_s"] = round(time.perf_counter() - t0, 1)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2))
    summary = (markdown(results) + "\n" + dialogue_markdown(results["dialogues"]) + "\n"
               + realtime_markdown(results["realtime"]) + "\n\n" + routing_markdown(results["routing"]) + "\n\n"
               + memory_eval_markdown(results["memory_eval"]) + "\n\n" + scale_out_markdown(results["scale_out"]))
    (RESULTS / "summary.md").write_text(summary)
    plots = plot_all(results, RESULTS)
    print("\n" + summary)
    print(f"total {results['total_runtime_s']} s; wrote {RESULTS / 'results.json'}, summary.md, "
          + ", ".join(p.name for p in plots))


if __name__ == "__main__":
    main()
