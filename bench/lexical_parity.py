"""Lexical recall of the Postgres profile against SQLite/FTS5 on the same data: the LoCoMo dev half.

Each dev conversation's sessions are turned into episodes exactly as an import makes them (bench/memory_eval.py's
lines, server/turns/importer.py's `exchanges`: one project per conversation, dated, speakers named) and stored in
an `EpisodeStore` of each dialect; then every question of categories 1-4 goes through the lexical search alone
(`EpisodeStore.search`, k=10). A hit: a returned episode contains an evidence turn's text (evidence recall@10) /
comes from an evidence session (session recall@10). Latency is the search call's (each question
asked `REPEATS` times), p50/p95.

    python bench/lexical_parity.py [--database-url postgresql://...] [--out results.json]
    python bench/lexical_parity.py --scale 10000,50000   # search latency as one scope grows (synthetic)

Without `--database-url`, a throwaway PostgreSQL cluster is started (tests/engines.py; Debian's `postgresql`).
Variants of the Postgres search are measured side by side: the text search configuration ('simple', 'english')
and the ranking (BM25 computed in SQL, Postgres' `ts_rank_cd`). Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import percentile, synthetic_exchange, synthetic_question  # noqa: E402
from bench.memory_eval import CATEGORIES, DEV, questions, session_lines, sessions_of  # noqa: E402
from memory.db import SqliteDatabase  # noqa: E402
from memory.episodes import Episode, EpisodeStore  # noqa: E402
from memory.pg import PgDatabase  # noqa: E402
from memory.pg_lexical import Config, PgLexicalIndex, Ranking  # noqa: E402
from memory.sessions import scope_of  # noqa: E402
from server.turns.importer import exchanges, to_message  # noqa: E402
from server.turns.transcript_lines import ImportedMessage, timestamp_of  # noqa: E402

K = 10
REPEATS = 3
"""Each question is searched this many times: the machine is shared, and more samples steady the p50."""
VARIANTS: list[tuple[str, Config | None, Ranking | None]] = [
    ("sqlite-fts5", None, None),
    ("postgres-simple-bm25", "simple", "bm25"),
    ("postgres-english-bm25", "english", "bm25"),
    ("postgres-simple-ts_rank_cd", "simple", "ts_rank_cd"),
    ("postgres-english-ts_rank_cd", "english", "ts_rank_cd"),
]


def conversation_episodes(conv: dict, name: str) -> list[Episode]:
    """The conversation's episodes as `POST /sessions/{id}/import` stores them (bench/memory_eval.py's replay)."""
    project = f"locomo-{name}"
    out: list[Episode] = []
    for n in sessions_of(conv):
        messages = [ImportedMessage(**line) for line in session_lines(conv, n, name)]
        stamped = [(to_message(m, m.id or "", ts), ts) for m in messages for ts in [timestamp_of(m, 0.0)]]
        out += exchanges(f"{project}-s{n}", scope_of(project), stamped)
    return out


def evaluate(store: EpisodeStore, conversations: dict[str, dict]) -> dict:
    """Evidence and session recall@10 overall and per category, and the search's latency."""
    rows: list[dict] = []
    latencies: list[float] = []
    for name, conv in conversations.items():
        project = f"locomo-{name}"
        for qa, evidence, sessions in questions(conv, project)[0]:
            for _ in range(REPEATS):  # the same hits each time; the latency of each is kept
                t0 = time.perf_counter()
                hits = store.search(scope_of(project), qa["question"], K)
                latencies.append(time.perf_counter() - t0)
            rows.append({"category": qa["category"],
                         "evidence": any(text in h.document for h in hits for text in evidence),
                         "session": any(h.session_id in sessions for h in hits)})

    def recall(picked: list[dict], key: str) -> float:
        return round(100 * sum(r[key] for r in picked) / len(picked), 1) if picked else float("nan")

    by_category = {CATEGORIES[c]: {"questions": len(p), "evidence": recall(p, "evidence"),
                                   "session": recall(p, "session")}
                   for c in CATEGORIES for p in [[r for r in rows if r["category"] == c]]}
    return {"questions": len(rows), "evidence_recall@10": recall(rows, "evidence"),
            "session_recall@10": recall(rows, "session"), "by_category": by_category,
            "p50_ms": round(1000 * percentile(latencies, 50), 2), "p95_ms": round(1000 * percentile(latencies, 95), 2)}


def run(database_url: str | None, files: list[Path] | None = None) -> dict:
    """Load the dev half into a store per variant and evaluate each."""
    files = files or sorted(DEV.glob("*.json"))
    conversations = {p.stem: json.loads(p.read_text()) for p in files}
    episodes = [e for name, conv in conversations.items() for e in conversation_episodes(conv, name)]
    results: dict = {"episodes": len(episodes), "conversations": sorted(conversations), "variants": {}}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        cluster = stack.enter_context(ThrowawayPostgres()) if database_url is None else None
        for label, config, ranking in VARIANTS:
            if config is None:
                db: SqliteDatabase | PgDatabase = SqliteDatabase(Path(tmp) / f"{label}.db")
                store = EpisodeStore(db)
            else:
                url = cluster.database() if cluster is not None else database_url
                assert url is not None
                db = PgDatabase(url, max_size=2)
                if cluster is None:  # a given database: start from an empty table
                    db.executescript("DROP TABLE IF EXISTS turn_recalls; DROP TABLE IF EXISTS episodes;")
                assert ranking is not None
                store = EpisodeStore(db, lexical=PgLexicalIndex(db, config, ranking))
            for episode in episodes:
                store.add(episode)
            if isinstance(db, PgDatabase):
                db.executescript("ANALYZE episodes;")
            store.search(scope_of(f"locomo-{files[0].stem}"), "warm up the caches", K)
            results["variants"][label] = evaluate(store, conversations)
            print(f"{label:30} evidence {results['variants'][label]['evidence_recall@10']:5}  "
                  f"session {results['variants'][label]['session_recall@10']:5}  "
                  f"p50 {results['variants'][label]['p50_ms']} ms", flush=True)
            db.close()
    return results


def scaling(database_url: str | None, sizes: list[int], questions: int = 200) -> dict:
    """Search latency as one scope grows (synthetic exchanges, bench/common.py), FTS5 against Postgres' default
    search: the cost of reading every row the query's words match."""
    rng = random.Random(7)
    asked = [synthetic_question(rng) for _ in range(questions)]
    out: dict = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        url = database_url or stack.enter_context(ThrowawayPostgres()).database()
        stores = {"sqlite-fts5": EpisodeStore(SqliteDatabase(Path(tmp) / "scale.db")),
                  "postgres": EpisodeStore(PgDatabase(url, max_size=2))}
        stored = 0
        for size in sizes:
            batch = [Episode(f"s{i // 500}", "default", *synthetic_exchange(rng), created_at=1.7e9 + i)
                     for i in range(stored, size)]
            for label, store in stores.items():
                for start in range(0, len(batch), 500):
                    part = batch[start:start + 500]
                    store.add_uncommitted(part)
                    for session in dict.fromkeys(e.session_id for e in part):
                        store.commit_session(session)
                if isinstance(store.db, PgDatabase):
                    store.db.executescript("ANALYZE episodes;")
                latencies = []
                for question in asked:
                    t0 = time.perf_counter()
                    store.search("default", question, K)
                    latencies.append(time.perf_counter() - t0)
                out.setdefault(str(size), {})[label] = {"p50_ms": round(1000 * percentile(latencies, 50), 2),
                                                        "p95_ms": round(1000 * percentile(latencies, 95), 2)}
                print(f"{size:>7} episodes  {label:12} {out[str(size)][label]}", flush=True)
            stored = size
        for store in stores.values():
            store.db.close()
    return out


class ThrowawayPostgres:
    """A throwaway cluster (tests/engines.py), entered as a context."""

    def __enter__(self):
        from tests.engines import PostgresCluster

        self.cluster = PostgresCluster()
        return self.cluster.__enter__()

    def __exit__(self, *exc) -> None:
        self.cluster.__exit__(*exc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="an empty Postgres database (default: a throwaway cluster)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--scale", help="instead: search latency at these sizes of one scope, e.g. 10000,50000")
    args = parser.parse_args()
    if args.scale:
        results = scaling(args.database_url, [int(n) for n in args.scale.split(",")])
    else:
        results = run(args.database_url)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
