"""Scale-out (issue 18): the Postgres + Chroma-server profile against the embedded (SQLite + Chroma directory)
one, in one run, on the same zero-latency inference node.

Per profile: (a) added latency p50/p95 (bench/overhead.py's measure: the same turns straight to the node and
through the service); (b) turns/s at 8 and 32 concurrent sessions with 1 worker, and on Postgres with 2
(two `python -m server` processes on two ports sharing DATABASE_URL and CHROMA_URL, sessions spread over
them; the embedded profile cannot run 2: one process owns its store); (c) on Postgres, what a turn costs the
engines (bench/engine_costs.py): statements, transactions, rows, connections, Chroma calls (counted by a
proxy, bench/counting_proxy.py), CPU seconds of each server. With both profiles, (d) the Postgres-minus-
embedded added latency on interleaved rounds with both services up (bench/profile_ab.py): the issue's target.

The bench starts its own throwaway PostgreSQL cluster and Chroma server (tests/engines.py).
`python bench/scale_out.py [--profiles embedded,postgres] [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from bench.common import summary_ms  # noqa: E402
from bench.concurrency import _session  # noqa: E402
from bench.counting_proxy import CountingProxy  # noqa: E402
from bench.engine_costs import (  # noqa: E402
    ConnectionSampler,
    PgWindow,
    chroma_per_turn,
    connections,
    enable_statement_stats,
    postmaster_pid,
)
from bench.fake_backend import BackendProcess  # noqa: E402
from bench.overhead import run_overhead, turn_loop  # noqa: E402
from bench.service import Service  # noqa: E402

PROFILES = ("embedded", "postgres")
LEVELS = (8, 32)
P50_TARGET_MS = 5.0  # the Postgres profile may add at most this much over the embedded one at p50


class ProfileUnavailable(RuntimeError):
    """The tree's service does not run the asked profile (it ignored DATABASE_URL / CHROMA_URL)."""


def _service(workdir: Path, backend_url: str, env: dict[str, str] | None = None) -> Service:
    """A service (not started) with its own DATA_DIR/CHROMA_DIR and log under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return Service(workdir, backend_url, env)


def _sizes(quick: bool) -> dict[str, int]:
    return {"turns": 40, "stream_turns": 20, "level_turns": 48, "cost_turns": 20, "ab_rounds": 2,
            "ab_turns": 40} if quick else \
        {"turns": 200, "stream_turns": 100, "level_turns": 160, "cost_turns": 60, "ab_rounds": 4, "ab_turns": 100}


async def _level(urls: list[str], sessions: int, total_turns: int, tag: str) -> dict[str, Any]:
    """`sessions` chat clients side by side, session i on worker i mod len(urls); turns/s and latency."""
    per_session = max(3, total_turns // sessions)
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=sessions + 4, max_keepalive_connections=sessions + 4)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(
            _session(client, urls[i % len(urls)] + "/v1/chat/completions", f"scale-{tag}-{sessions}-{i}",
                     per_session, t0 + 120.0, latencies, errors)
            for i in range(sessions)))
        wall = time.perf_counter() - t0
    stats = summary_ms(latencies)
    print(f"  {len(urls)} worker(s) {sessions:>3} sessions: {len(latencies) / wall:.1f} turns/s, "
          f"p50 {stats['p50']:.0f} ms, p95 {stats['p95']:.0f} ms, errors {len(errors)}", flush=True)
    return {"workers": len(urls), "sessions": sessions, "turns": len(latencies), "wall_s": round(wall, 2),
            "turns_per_s": round(len(latencies) / wall, 2), "latency_ms": stats, "errors": len(errors),
            "first_error": errors[0] if errors else None}


def _levels(urls: list[str], total_turns: int, tag: str, sampler_args: tuple[str, str] | None) -> list[dict]:
    out = []
    for sessions in LEVELS:
        if sampler_args is None:
            out.append(asyncio.run(_level(urls, sessions, total_turns, tag)))
            continue
        with ConnectionSampler(*sampler_args) as sampler:
            record = asyncio.run(_level(urls, sessions, total_turns, tag))
        record["postgres_connections_peak"] = sampler.peak
        out.append(record)
    return out


def run_embedded(workdir: Path, backend_url: str, sizes: dict[str, int]) -> dict[str, Any]:
    """The default profile: 1 worker (a second process cannot open the same store)."""
    print("[scale-out] embedded profile (SQLite + Chroma directory), 1 worker", flush=True)
    with _service(workdir / "embedded", backend_url) as service:
        overhead = run_overhead(service.base_url, backend_url, "embedded", sizes["turns"], sizes["stream_turns"])
        levels = _levels([service.base_url], sizes["level_turns"], "emb", None)
    return {"overhead": overhead, "throughput": levels,
            "not_measured": "2 workers: the embedded store is owned by one process (its lock refuses a second)"}


def check_profile(database_url: str, chroma_url: str) -> None:
    """After a few turns the service's tables are in its database and its vectors on the Chroma server."""
    import psycopg

    base = "/api/v2/tenants/default_tenant/databases/default_database/collections"
    deadline = time.monotonic() + 15
    tables = collections = 0
    while time.monotonic() < deadline:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'").fetchone()
            tables = int(row[0]) if row else 0
        collections = len(httpx.get(chroma_url + base, timeout=10).json())
        if tables and collections:
            return
        time.sleep(1.0)
    raise ProfileUnavailable(
        f"the service ignored DATABASE_URL/CHROMA_URL ({tables} tables in Postgres, {collections} Chroma "
        "collections after the warm-up turns): the Postgres profile (issue 18's stores, checkpoints and vectors "
        "parts) is not in this tree yet. Run `python bench/scale_out.py --profiles embedded` meanwhile.")


def run_postgres(workdir: Path, backend_url: str, sizes: dict[str, int]) -> dict[str, Any]:
    """The scale-out profile on a throwaway cluster and Chroma server: latency, turns/s 1 and 2 workers, costs."""
    from tests.engines import ChromaServer, PostgresCluster, postgres_bin

    print("[scale-out] Postgres profile (throwaway cluster + chroma run)", flush=True)
    if postgres_bin() is None:  # `make test` installs it; a bench-only machine may lack it
        raise ProfileUnavailable("no PostgreSQL server binaries (apt-get install postgresql)")
    with PostgresCluster() as cluster, ChromaServer() as chroma:
        statements = enable_statement_stats(cluster)
        url = cluster.database("bench")
        database, admin = url.rsplit("/", 1)[1], cluster.url()
        env = {"DATABASE_URL": url, "CHROMA_URL": chroma.url}
        out: dict[str, Any] = {"statement_stats": statements}
        with _service(workdir / "pg-1", backend_url, env) as service:
            turn_loop(service.base_url + "/v1/chat/completions", 5, False, "check", 0)
            check_profile(url, chroma.url)
            out["overhead"] = run_overhead(service.base_url, backend_url, "postgres", sizes["turns"],
                                           sizes["stream_turns"])
            out["throughput"] = _levels([service.base_url], sizes["level_turns"], "pg1", (admin, database))
        with _service(workdir / "pg-2a", backend_url, env) as a, _service(workdir / "pg-2b", backend_url, env) as b:
            out["throughput"] += _levels([a.base_url, b.base_url], sizes["level_turns"], "pg2", (admin, database))
        with CountingProxy(chroma.url) as proxy, \
                _service(workdir / "pg-cost", backend_url, {**env, "CHROMA_URL": proxy.url}) as service:
            out["costs"] = measure_costs(service, proxy, admin, database, statements, postmaster_pid(cluster),
                                         chroma.proc.pid if chroma.proc else None, sizes["cost_turns"])
    return out


def measure_costs(service: Service, proxy: CountingProxy, admin: str, database: str, statements: bool,
                  pg_pid: int, chroma_pid: int | None, turns: int) -> dict[str, Any]:
    """Sequential turns (sessions of TURNS_PER_SESSION, as in overhead.py) through one worker; per-turn deltas."""
    url = service.base_url + "/v1/chat/completions"
    turn_loop(url, 3, False, "cost-warm", 0)
    window = PgWindow(admin, database, statements, pg_pid, chroma_pid)
    window.start()
    before = proxy.counts()
    latencies, errors = turn_loop(url, turns, False, "cost", 7)
    done = len(latencies)
    per_turn = window.stop(done)
    idle = connections(admin, database)
    record = {"turns": done, "errors": errors, "postgres_per_turn": per_turn,
              "postgres_connections_idle_1_worker": idle,
              "chroma": chroma_per_turn(before, proxy.counts(), done)}
    print(f"  per turn: {per_turn.get('statements', float('nan')):.1f} statements, "
          f"{per_turn['xact_commit']:.1f} commits, Postgres CPU {per_turn['postgres_cpu_s'] * 1000:.2f} ms, "
          f"{record['chroma']['calls_per_turn']:.1f} Chroma calls; {idle} connections idle", flush=True)
    return record


def run_scale_out(workdir: Path, backend_url: str, profiles: tuple[str, ...] = PROFILES,
                  quick: bool = False, strict: bool = True) -> dict[str, Any]:
    """Every profile asked for, then the Postgres-minus-embedded added latency when both ran. A profile the
    tree cannot run raises ProfileUnavailable (`strict`) or is recorded under "unavailable" (`make bench`)."""
    sizes = _sizes(quick)
    out: dict[str, Any] = {"quick": quick, "sizes": sizes, "profiles": {}, "unavailable": {}}
    for profile in profiles:
        run = run_embedded if profile == "embedded" else run_postgres
        try:
            out["profiles"][profile] = run(workdir, backend_url, sizes)
        except ProfileUnavailable as exc:
            if strict:
                raise
            print(f"  {profile}: {exc}", flush=True)
            out["unavailable"][profile] = str(exc)
    if {"embedded", "postgres"} <= set(out["profiles"]):
        from bench.profile_ab import run_ab  # it imports this module

        # The target is read on interleaved rounds (bench/profile_ab.py), not on the two runs above, which
        # ran minutes apart on a machine whose load drifts.
        out["postgres_minus_embedded_ms"] = run_ab(workdir, backend_url, sizes["ab_rounds"], sizes["ab_turns"])
    return out


def markdown(result: dict[str, Any]) -> str:
    """The tables of BENCHMARKS.md's issue-18 section."""
    lines = ["#### Scale-out: added latency by profile (ms, non-streaming / streaming TTFT)", "",
             "| Profile | added p50 | added p95 | TTFT added p50 | TTFT added p95 |", "|---|---|---|---|---|"]
    for name, run in result["profiles"].items():
        ns, st = run["overhead"]["non_streaming"]["added_ms"], run["overhead"]["streaming_ttft"]["added_ms"]
        lines.append(f"| {name} | {ns['p50']:.1f} | {ns['p95']:.1f} | {st['p50']:.1f} | {st['p95']:.1f} |")
    if "postgres_minus_embedded_ms" in result:
        from bench.profile_ab import markdown as ab_markdown

        lines += ["", "#### Scale-out: Postgres minus embedded, interleaved rounds (non-streaming)", "",
                  ab_markdown(result["postgres_minus_embedded_ms"])]
    lines += ["", "#### Scale-out: turns/s", "", "| Profile | workers | sessions | turns/s | p50 ms | p95 ms | "
              "errors | Postgres connections (peak) |", "|---|---|---|---|---|---|---|---|"]
    for name, run in result["profiles"].items():
        for r in run["throughput"]:
            lines.append(f"| {name} | {r['workers']} | {r['sessions']} | {r['turns_per_s']:.1f} | "
                         f"{r['latency_ms']['p50']:.0f} | {r['latency_ms']['p95']:.0f} | {r['errors']} | "
                         f"{r.get('postgres_connections_peak', '—')} |")
    for name, reason in result.get("unavailable", {}).items():
        lines += ["", f"Not measured, {name}: {reason}"]
    costs = result["profiles"].get("postgres", {}).get("costs")
    if costs:
        pg, ch = costs["postgres_per_turn"], costs["chroma"]
        lines += ["", f"#### Scale-out: per-turn engine costs ({costs['turns']} turns, 1 worker)", "",
                  "| statements | commits | rollbacks | rows read | rows written | Postgres CPU ms (net of idle) |"
                  " Chroma calls | Chroma CPU ms (net of idle) | connections idle |",
                  "|---|---|---|---|---|---|---|---|---|",
                  f"| {pg.get('statements', float('nan')):.1f} | {pg['xact_commit']:.1f} | "
                  f"{pg['xact_rollback']:.1f} | {pg['tup_returned'] + pg['tup_fetched']:.0f} | "
                  f"{pg['tup_inserted'] + pg['tup_updated'] + pg['tup_deleted']:.1f} | "
                  f"{pg['postgres_cpu_s'] * 1000:.2f} ({pg['postgres_cpu_s_net'] * 1000:.2f}) | "
                  f"{ch['calls_per_turn']:.1f} | {pg.get('chroma_cpu_s', float('nan')) * 1000:.2f} "
                  f"({pg.get('chroma_cpu_s_net', float('nan')) * 1000:.2f}) | "
                  f"{costs['postgres_connections_idle_1_worker']} |",
                  "", "Postgres statements per turn by kind: " + ", ".join(
                      f"{k.removeprefix('statements_')} {v:.1f}" for k, v in sorted(pg.items())
                      if k.startswith("statements_") and v),
                  "", "Chroma calls per turn by operation: "
                  + ", ".join(f"{op} {n}" for op, n in ch["by_operation_per_turn"].items())]
    return "\n".join(lines)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default=",".join(PROFILES), help="embedded, postgres or both (default)")
    parser.add_argument("--quick", action="store_true", help="fewer turns (about a quarter)")
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()
    profiles = tuple(p.strip() for p in args.profiles.split(",") if p.strip())
    if unknown := set(profiles) - set(PROFILES):
        parser.error(f"unknown profile(s) {sorted(unknown)}; choose from {', '.join(PROFILES)}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, BackendProcess() as backend:
            result = run_scale_out(Path(tmp), backend.base_url, profiles, args.quick)
    except ProfileUnavailable as exc:
        sys.exit(f"scale_out: {exc}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print("\n" + markdown(result))


if __name__ == "__main__":
    main()
