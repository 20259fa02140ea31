"""Project churn: open files and RSS of the whole service (its process tree) over many projects.

A user of the Claude Code door gets a project per repository, and each project is a scope with its own
Chroma collections. This creates `projects` projects with one turn each (indexed, so each scope's vector
index is loaded), sampling the open files and RSS of the service's process tree as it goes, then deletes
them all (cascade) and samples again. Run alone: `python bench/project_churn.py --projects 1000`.
Only 127.0.0.1 is contacted; the loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import process_tree, rss_mb  # noqa: E402
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.service import Service  # noqa: E402


def sample(service: Service, done: int, phase: str) -> dict:
    """One reading of the service's process tree."""
    children = [p for p in process_tree(service.pid) if p != service.pid]
    return {"phase": phase, "projects": done, "open_files": service.open_files(),
            "rss_mb": round(service.rss_mb(), 1), "processes": 1 + len(children),
            "children_rss_mb": round(sum(rss_mb(p) for p in children), 1),
            "children_open_files": sum(len(os.listdir(f"/proc/{p}/fd")) for p in children)}


def settle() -> None:
    """Let the indexer (which loads each new scope's index) reach the newest episodes."""
    time.sleep(1.5)


def run_project_churn(workdir: Path, backend_url: str, projects: int = 1000, every: int = 100,
                      budget_s: float = 900.0, max_open: int | None = None) -> dict:
    """Create `projects` one-turn projects, then delete them; samples every `every` projects."""
    workdir.mkdir(parents=True, exist_ok=True)
    extra = {"VECTOR_MAX_OPEN_COLLECTIONS": str(max_open)} if max_open else {}
    samples: list[dict] = []
    deadline = time.perf_counter() + budget_s
    made = 0
    with Service(workdir, backend_url, extra_env=extra) as service, \
            httpx.Client(base_url=service.base_url, timeout=60) as client:
        time.sleep(1.0)
        samples.append(sample(service, 0, "start"))
        for i in range(projects):
            if time.perf_counter() > deadline:
                break
            pid = f"churn-{i}"
            client.post("/projects", json={"id": pid, "name": f"Repository {i}"}).raise_for_status()
            client.post("/chat", json={"sessionId": f"{pid}-s", "projectId": pid,
                                       "message": f"The build of repository {i} needs make {i % 7}"}).raise_for_status()
            made += 1
            if made % every == 0:
                settle()
                samples.append(sample(service, made, "create"))
                print(f"  {made} projects: {samples[-1]}", flush=True)
        settle()
        samples.append(sample(service, made, "created"))
        for i in range(made):
            if time.perf_counter() > deadline + budget_s / 2:
                break
            client.delete(f"/projects/churn-{i}", params={"cascade": "true"}).raise_for_status()
            if (i + 1) % (every * 2) == 0:
                samples.append(sample(service, made - i - 1, "delete"))
        settle()
        samples.append(sample(service, 0, "deleted"))
    created = [s for s in samples if s["phase"] in ("create", "created")]
    second_half = [s for s in created if s["projects"] > made // 2] or created
    first_half = [s for s in samples if s["projects"] <= made // 2 and s["phase"] in ("start", "create")]
    first_half_files = [s["open_files"] for s in first_half]
    first_half_rss = [s["rss_mb"] for s in first_half]
    return {
        "projects": made,
        "max_open_collections": max_open or 64,
        "samples": samples,
        "open_files_start": samples[0]["open_files"],
        "open_files_max": max(s["open_files"] for s in samples),
        "open_files_after_delete": samples[-1]["open_files"],
        "rss_mb_start": samples[0]["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "rss_mb_after_delete": samples[-1]["rss_mb"],
        # Flat: how much the second half of the projects added on top of the first half's peak.
        "open_files_growth_second_half": max(s["open_files"] for s in second_half) - max(first_half_files),
        "rss_mb_growth_second_half": round(max(s["rss_mb"] for s in second_half) - max(first_half_rss), 1),
    }


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--max-open", type=int, default=None, help="VECTOR_MAX_OPEN_COLLECTIONS")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="churn-") as tmp, BackendProcess() as backend:
        result = run_project_churn(Path(tmp), backend.base_url, args.projects, max_open=args.max_open)
    text = json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
