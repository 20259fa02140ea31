"""Postgres minus embedded added latency, interleaved: both profiles' services up side by side on the same
node, bench/overhead.py's turns run on one then the other, the order swapped every round, so that drift of a
shared machine (other processes, CPU frequency) shows as spread between rounds rather than as a difference.

Run by bench/scale_out.py when both profiles are asked for; the issue's target (≤ 5 ms more at p50) is read
on the median of the rounds' differences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.overhead import run_overhead, turn_loop


def run_ab(workdir: Path, backend_url: str, rounds: int, turns: int) -> dict[str, Any]:
    """`rounds` rounds of `turns` non-streaming (and turns/2 streaming) turns on each profile, order alternating."""
    from bench.scale_out import P50_TARGET_MS, _service, check_profile
    from tests.engines import ChromaServer, PostgresCluster

    print(f"[scale-out] interleaved A/B: {rounds} rounds, embedded and Postgres side by side", flush=True)
    with PostgresCluster() as cluster, ChromaServer() as chroma:
        url = cluster.database("ab")
        env = {"DATABASE_URL": url, "CHROMA_URL": chroma.url}
        with _service(workdir / "ab-embedded", backend_url) as emb, _service(workdir / "ab-pg", backend_url, env) as pg:
            turn_loop(pg.base_url + "/v1/chat/completions", 5, False, "ab-check", 0)
            check_profile(url, chroma.url)
            services = {"embedded": emb.base_url, "postgres": pg.base_url}
            rows = []
            for r in range(rounds):
                order = ("embedded", "postgres") if r % 2 == 0 else ("postgres", "embedded")
                added = {name: run_overhead(services[name], backend_url, f"ab{r}-{name}", turns, turns // 2)
                         for name in order}
                rows.append({"round": r, "order": list(order),
                             **{f"{name}_added_ms": {mode: added[name][mode]["added_ms"]
                                                     for mode in ("non_streaming", "streaming_ttft")}
                                for name in order}})
    diffs = {q: [row["postgres_added_ms"]["non_streaming"][q] - row["embedded_added_ms"]["non_streaming"][q]
                 for row in rows] for q in ("p50", "p95")}
    median = {q: round(percentile(values, 50), 3) for q, values in diffs.items()}
    return {"rounds": rows, "diff_ms_by_round": diffs, **median, "target_p50_ms": P50_TARGET_MS,
            "met": median["p50"] <= P50_TARGET_MS}


def markdown(ab: dict[str, Any]) -> str:
    """One line per round, then the medians against the target."""
    lines = ["| round | order | embedded added p50 / p95 ms | Postgres added p50 / p95 ms | difference p50 / p95 ms |",
             "|---|---|---|---|---|"]
    for row, d50, d95 in zip(ab["rounds"], ab["diff_ms_by_round"]["p50"], ab["diff_ms_by_round"]["p95"],
                             strict=True):
        e, p = row["embedded_added_ms"]["non_streaming"], row["postgres_added_ms"]["non_streaming"]
        lines.append(f"| {row['round']} | {' → '.join(row['order'])} | {e['p50']:.1f} / {e['p95']:.1f} | "
                     f"{p['p50']:.1f} / {p['p95']:.1f} | {d50:+.1f} / {d95:+.1f} |")
    lines += ["", f"Postgres minus embedded, median of {len(ab['rounds'])} rounds: p50 {ab['p50']:+.1f} ms, "
              f"p95 {ab['p95']:+.1f} ms (target ≤ {ab['target_p50_ms']:.0f} ms at p50: "
              f"{'met' if ab['met'] else 'missed'})."]
    return "\n".join(lines)
