"""Machine description, target checks and Markdown tables of a results dict."""

from __future__ import annotations

import os
import platform

from bench.checkpoint_retention import flat_ratio
from bench.checkpoint_retention import markdown as retention_table


def machine() -> dict:
    """nproc, RAM and CPU model of this machine."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as fh:
        mem_kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    return {"nproc": os.cpu_count(), "ram_gib": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "python": platform.python_version(), "kernel": platform.release()}


def _overhead(results: dict, label: str) -> dict | None:
    return next((r for r in results.get("overhead", []) if r["label"] == label), None)


def targets(results: dict) -> list[dict]:
    """Each target with its measured value and met/missed (worst case over the store sizes measured)."""
    out = []
    runs = results.get("overhead", [])
    if runs:
        p50 = max(r["non_streaming"]["added_ms"]["p50"] for r in runs)
        p95 = max(r["non_streaming"]["added_ms"]["p95"] for r in runs)
        ttft = max(r["streaming_ttft"]["added_ms"]["p50"] for r in runs)
        out += [
            {"target": "added latency p50 <= 15 ms", "measured_ms": p50, "met": p50 <= 15},
            {"target": "added latency p95 <= 40 ms", "measured_ms": p95, "met": p95 <= 40},
            {"target": "streaming TTFT overhead (p50) <= 15 ms", "measured_ms": ttft, "met": ttft <= 15},
        ]
    rows = {r["episodes"]: r for r in results.get("recall_scaling", [])}
    if 1000 in rows:
        top = max(rows)
        ratio = rows[top]["recall_ms"]["total"]["p50"] / rows[1000]["recall_ms"]["total"]["p50"]
        name = f"recall p50 at {top // 1000}k <= 2x recall p50 at 1k"
        if top < 100_000:
            name += " (100k not measured)"
        out.append({"target": name, "measured_ratio": round(ratio, 2), "met": ratio <= 2})
    race = {row["clients"]: row for row in (results.get("peer_race") or {}).get("levels", [])}
    if 8 in race:
        ratio = race[8]["throughput_ratio"]
        out.append({"target": ">= 5x the turns/s of langgraph dev at 8 clients", "measured_ratio": ratio,
                    "met": ratio >= 5})
    flat = flat_ratio(results.get("checkpoint_retention") or {})
    if flat is not None:
        out.append({"target": "checkpoint bytes flat per session after the first turns (CHECKPOINTS_KEPT=10; "
                    "bytes at the last mark / at 1k turns <= 1.1)", "measured_ratio": flat, "met": flat <= 1.1})
    churn = results.get("project_churn")
    if churn:
        files_bound = churn["open_files_start"] + CHURN_FILES_OVER_START
        out.append({"target": f"project churn ({churn['projects']} projects): open files <= start + "
                              f"{CHURN_FILES_OVER_START}, RSS of the second half <= first half + "
                              f"{CHURN_RSS_GROWTH_MB} MB, deletes give the files back",
                    "measured": f"files {churn['open_files_start']} -> max {churn['open_files_max']} -> "
                                f"{churn['open_files_after_delete']} after deletes; RSS {churn['rss_mb_start']} -> "
                                f"max {churn['rss_mb_max']} MB, second half +{churn['rss_mb_growth_second_half']}",
                    "met": churn["open_files_max"] <= files_bound
                    and churn["rss_mb_growth_second_half"] <= CHURN_RSS_GROWTH_MB
                    and churn["open_files_after_delete"] <= churn["open_files_start"] + 20})
    rss = [v for k, v in results.get("footprint", {}).items() if k.endswith("rss_mb")]
    rss += [r["rss_mb"] for r in results.get("recall_scaling", [])]
    if rss:
        out.append({"target": "RSS <= 1 GB with the embedder loaded", "measured_mb": max(rss),
                    "met": max(rss) <= 1024})
    return out


CHURN_FILES_OVER_START = 4 * 64 + 64
"""Project churn's bound on open files: 64 loaded scopes (VECTOR_MAX_OPEN_COLLECTIONS) of 4 files, and slack."""
CHURN_RSS_GROWTH_MB = 100
"""How much the second half of the churned projects may add to the RSS peak of the first half."""


def markdown(results: dict) -> str:
    """All tables of a run, as Markdown."""
    lines = ["### Added latency (orchestrator minus direct, ms)", "",
             "| store | mode | direct p50 | orch p50 | orch p95 | orch p99 | added p50 | added p95 | added p99 "
             "| n | errors |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("overhead", []):
        for mode in ("non_streaming", "streaming_ttft"):
            m = r[mode]
            d, o, a = m["direct_ms"], m["orchestrated_ms"], m["added_ms"]
            errs = m["errors"]["direct"] + m["errors"]["orchestrated"]
            lines.append(f"| {r['label']} | {mode} | {d['p50']:.1f} | {o['p50']:.1f} | {o['p95']:.1f} | "
                         f"{o['p99']:.1f} | {a['p50']:.1f} | {a['p95']:.1f} | {a['p99']:.1f} | {o['n']} | {errs} |")
    lines += ["", "### Recall latency vs store size (embed + vector + FTS5 + fuse, ms)", "",
              "| episodes | p50 | p95 | embed p50 | vector p50 | FTS5 p50 | FTS5 p95 | fuse p50 | RSS MiB | seeding |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.get("recall_scaling", []):
        t = r["recall_ms"]
        seeding = "; ".join(f"{k}: " + ", ".join(f"{kk}={vv}" for kk, vv in v.items())
                            for k, v in r["seeding"].items())
        lines.append(f"| {r['episodes']} | {t['total']['p50']:.1f} | {t['total']['p95']:.1f} | "
                     f"{t['embed']['p50']:.1f} | {t['vector']['p50']:.1f} | {t['fts5']['p50']:.1f} | "
                     f"{t['fts5']['p95']:.1f} | {t['fuse']['p50']:.2f} | {r['rss_mb']:.0f} | {seeding} |")
    lines += ["", "### Concurrency (empty store)", "", "| sessions | turns | turns/s | p50 ms | p95 ms | errors |",
              "|---|---|---|---|---|---|"]
    for r in results.get("concurrency", []):
        lines.append(f"| {r['sessions']} | {r['turns']} | {r['turns_per_s']:.1f} | {r['latency_ms']['p50']:.0f} | "
                     f"{r['latency_ms']['p95']:.0f} | {r['errors']} |")
    lines += ["", "### Peer race: the same graph under `langgraph dev` vs. this service", "",
              "| clients | langgraph dev turns/s | its p50 ms | service turns/s | its p50 ms | ratio | errors |",
              "|---|---|---|---|---|---|---|"]
    for r in (results.get("peer_race") or {}).get("levels", []):
        dev, svc = r["langgraph_dev"], r["service"]
        lines.append(f"| {r['clients']} | {dev['turns_per_s']:.1f} | {dev['latency_ms']['p50']:.0f} | "
                     f"{svc['turns_per_s']:.1f} | {svc['latency_ms']['p50']:.0f} | x{r['throughput_ratio']} | "
                     f"{dev['errors'] + svc['errors']} |")
    lines += ["", "### Prompt budget: a Claude-Code-shaped request (estimated tokens)", "",
              "| context | turn | offered | sent | budget | tools kept | user message | trimmed |",
              "|---|---|---|---|---|---|---|---|"]
    for r in results.get("prompt_budget", []):
        lines.append(f"| {r['context']} | {r['turn']} | {r['tokens_offered']} | {r['tokens_sent']} | {r['budget']} | "
                     f"{r['tools_kept']}/{r['tools_offered']} | {'kept' if r['user_message_kept'] else 'LOST'} | "
                     f"{', '.join(r['trimmed']) or '-'} |")
    if results.get("checkpoint_retention"):
        lines += ["", f"### Checkpoint retention ({results['checkpoint_retention']['turns']} turns through the "
                  "graph and saver)", "", retention_table(results["checkpoint_retention"]).rstrip()]
    churn = results.get("project_churn")
    if churn:
        lines += ["", f"### Project churn ({churn['projects']} one-turn projects, then all deleted; process tree)",
                  "", "| phase | projects | open files | RSS MiB | of which children | processes |",
                  "|---|---|---|---|---|---|"]
        for r in churn["samples"]:
            lines.append(f"| {r['phase']} | {r['projects']} | {r['open_files']} | {r['rss_mb']:.0f} | "
                         f"{r['children_rss_mb']:.0f} | {r['processes']} |")
    lines += ["", "### Footprint", "", "| measure | value |", "|---|---|"]
    for key, value in results.get("footprint", {}).items():
        lines.append(f"| {key} | {value} |")
    lines += ["", "### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in targets(results):
        value = next(v for k, v in t.items() if k.startswith("measured"))
        lines.append(f"| {t['target']} | {value} | {'met' if t['met'] else 'MISSED'} |")
    return "\n".join(lines) + "\n"
