"""Recall on LoCoMo through the service's own API (the protocol in shared/eval/README.md).

Each dev conversation is imported into its own project (`POST /sessions/{id}/import`, one session per LoCoMo
session, every turn dated with its session's date; speaker A is the user, speaker B the assistant), then every
question of categories 1-4 is asked through `POST /memory/search` with k=10. A hit: a returned episode contains
an evidence turn's text (evidence recall@10) / comes from an evidence session (session recall@10).

    python bench/memory_eval.py [--quick] [--postgres] [--env KEY=VALUE ...] [--out results.json]

`--quick` takes the first conversation only. `--env` starts the service with other settings (variants).
`--postgres` runs it on the scale-out profile: a throwaway PostgreSQL cluster and `chroma run` (tests/engines.py).
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, percentile  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.service import Service  # noqa: E402

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
DEV = next((p for p in (ROOT.parent / "shared" / "eval" / "locomo-dev", Path("/work/shared/eval/locomo-dev"))
            if p.is_dir()), ROOT.parent / "shared" / "eval" / "locomo-dev")


def sessions_of(conv: dict) -> list[int]:
    """The conversation's session numbers, in order."""
    return sorted(int(m.group(1)) for k in conv if (m := re.fullmatch(r"session_(\d+)", k)))


def session_lines(conv: dict, n: int, name: str) -> list[dict]:
    """Session `n` as import lines: dated with the session's date (a second apart, to keep their order)."""
    start = datetime.strptime(conv[f"session_{n}_date_time"], "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
    return [{"id": f"locomo{name}-{turn['dia_id']}", "role": "user" if turn["speaker"] == conv["speaker_a"]
             else "assistant", "name": turn["speaker"], "content": turn["text"],
             "timestamp": (start + timedelta(seconds=i)).isoformat()} for i, turn in enumerate(conv[f"session_{n}"])]


def replay(client: httpx.Client, conv: dict, name: str, project: str) -> tuple[int, float]:
    """Import the conversation into `project`; (episodes stored, seconds)."""
    client.post("/projects", json={"id": project, "name": f"LoCoMo {name}"}).raise_for_status()
    episodes, t0 = 0, time.perf_counter()
    for n in sessions_of(conv):
        done = client.post(f"/sessions/{project}-s{n}/import", params={"projectId": project},
                           json={"messages": session_lines(conv, n, name)})
        done.raise_for_status()
        episodes += done.json()["episodes"]
    return episodes, time.perf_counter() - t0


def questions(conv: dict, project: str) -> tuple[list[tuple[dict, list[str], set[str]]], int]:
    """The conversation's questions of categories 1-4, each with its evidence turns' texts and its evidence
    sessions' ids in `project`; and how many were left out (no evidence turn found in the conversation)."""
    texts = {turn["dia_id"]: turn["text"] for n in sessions_of(conv) for turn in conv[f"session_{n}"]}
    out, left_out = [], 0
    for qa in conv["qa"]:
        if qa.get("category") not in CATEGORIES:
            continue
        evidence = [e.strip() for e in qa.get("evidence", []) if e.strip() in texts]
        if not evidence:
            left_out += 1
            continue
        out.append((qa, [texts[e] for e in evidence], {f"{project}-s{e.split(':')[0][1:]}" for e in evidence}))
    return out, left_out


def ask(client: httpx.Client, conv: dict, project: str, rows: list[dict], latencies: list[float]) -> int:
    """Ask the conversation's questions of categories 1-4; append one row per question; returns how many were
    left out (no evidence turn found in the conversation)."""
    asked, left_out = questions(conv, project)
    for qa, evidence, sessions in asked:
        t0 = time.perf_counter()
        done = client.post("/memory/search", json={"query": qa["question"], "projectId": project, "k": 10})
        latencies.append(time.perf_counter() - t0)
        done.raise_for_status()
        hits = done.json()["results"]
        rows.append({"category": qa["category"],
                     "evidence": any(text in h["text"] for h in hits for text in evidence),
                     "session": any(h["sessionId"] in sessions for h in hits)})
    return left_out


def table(rows: list[dict]) -> list[dict]:
    """Evidence and session recall@10 per category and overall."""
    out = []
    for label, picked in [*((f"{c} {CATEGORIES[c]}", [r for r in rows if r["category"] == c]) for c in CATEGORIES),
                          ("overall", rows)]:
        n = len(picked)
        out.append({"category": label, "questions": n,
                    "evidence_recall@10": round(100 * sum(r["evidence"] for r in picked) / n, 1) if n else None,
                    "session_recall@10": round(100 * sum(r["session"] for r in picked) / n, 1) if n else None})
    return out


def run_memory_eval(workdir: Path, quick: bool = False, env: dict[str, str] | None = None,
                    files: list[Path] | None = None) -> dict:
    """Replay and ask; the figures as a dict (`skipped` if the dev half is not there)."""
    files = files or sorted(DEV.glob("*.json"))[: 1 if quick else None]
    if not files:
        return {"skipped": f"no LoCoMo dev files under {DEV}"}
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    latencies: list[float] = []
    episodes, import_s, left_out = 0, 0.0, 0
    with BackendProcess() as backend, Service(workdir, backend.base_url, env) as service, \
            httpx.Client(base_url=service.base_url, timeout=600) as client:
        for path in files:
            conv = json.loads(path.read_text())
            project = f"locomo-{path.stem}"
            stored, seconds = replay(client, conv, path.stem, project)
            episodes, import_s = episodes + stored, import_s + seconds
            left_out += ask(client, conv, project, rows, latencies)
    return {"conversations": [p.stem for p in files], "env": env or {}, "episodes": episodes,
            "import_s": round(import_s, 1), "import_episodes_per_s": round(episodes / import_s, 1),
            "search_p50_ms": round(1000 * percentile(latencies, 50), 1),
            "search_p95_ms": round(1000 * percentile(latencies, 95), 1),
            "questions_left_out": left_out, "table": table(rows)}


def markdown(result: dict) -> str:
    """The figures as a Markdown table."""
    if "skipped" in result:
        return f"LoCoMo recall: skipped ({result['skipped']})\n"
    lines = [f"LoCoMo dev ({', '.join(result['conversations'])}; {result['episodes']} episodes imported in "
             f"{result['import_s']} s; search p50 {result['search_p50_ms']} ms, p95 {result['search_p95_ms']} ms"
             + (f"; env {result['env']}" if result["env"] else "") + ")", "",
             "| category | questions | evidence recall@10 | session recall@10 |", "|---|---:|---:|---:|"]
    lines += [f"| {r['category']} | {r['questions']} | {r['evidence_recall@10']} | {r['session_recall@10']} |"
              for r in result["table"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the first conversation only")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the service (a variant)")
    parser.add_argument("--postgres", action="store_true", help="on a throwaway Postgres cluster + Chroma server")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="memory-eval-") as tmp, ExitStack() as engines:
        if args.postgres:
            from tests.engines import ChromaServer, PostgresCluster

            cluster, chroma = engines.enter_context(PostgresCluster()), engines.enter_context(ChromaServer())
            env |= {"DATABASE_URL": cluster.database("locomo"), "CHROMA_URL": chroma.url}
        result = run_memory_eval(Path(tmp), args.quick, env)
    print(markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
