"""Recall variants on LoCoMo's dev half, offline: many fusion variants compared in seconds over one import.

`bench/memory_eval.py` measures one configuration through the API; this imports the dev conversations once
the same way (through the service), stops it, and recomputes recall in-process over its store: the lexical
candidates from the service's own `EpisodeStore.search`, the days a question names from `memory/dates.py`,
and the vector candidates by exact cosine over every episode's vectors of each kind (embedded here with the
service's embedder: `message`, `exchange`, `context`, `reply`), fused by `memory/hybrid.py` or by a variant
written here. Figures differ from the API's by a few tenths (Chroma's index is approximate); the table in
BENCHMARKS.md ("LoCoMo recall, third round") is this script's output.

    python bench/recall_variants.py [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fake_backend import BackendProcess  # noqa: E402
from bench.memory_eval import CATEGORIES, DEV, questions, replay  # noqa: E402
from bench.service import Service, store_dirs  # noqa: E402
from memory.dates import dated_episodes  # noqa: E402
from memory.db import SqliteDatabase  # noqa: E402
from memory.embedder import Embedder  # noqa: E402
from memory.episodes import EpisodeStore, StoredEpisode  # noqa: E402
from memory.hybrid import FusedHit, FusionWeights, fuse_explained, spread_sessions  # noqa: E402
from memory.indexer import BULK_THREADS  # noqa: E402
from memory.vectors import VectorHit  # noqa: E402

DEPTH = 30  # lexical candidates kept per question (variants take the first n)
K = 10


@dataclass
class Question:
    text: str
    category: int
    scope: str
    evidence: list[str]
    sessions: set[str]
    lexical: list[StoredEpisode]
    dated: list[StoredEpisode]
    vector: np.ndarray


class Corpus:
    """The imported episodes, their vectors of each kind, and the dev questions with their candidates."""

    def __init__(self, store: EpisodeStore, embedder: Embedder) -> None:
        self.store = store
        self.rows = [dict(r) for r in store.db.query(
            "SELECT id, session_id, scope, user_text, assistant_text, document FROM episodes WHERE committed = 1"
            " ORDER BY seq")]
        self.at = {r["id"]: i for i, r in enumerate(self.rows)}
        previous: dict[str, str] = {}
        before: dict[str, str] = {}
        for r in self.rows:
            previous[r["id"]] = before.get(r["session_id"], "")
            before[r["session_id"]] = r["document"]
        texts = {
            "message": [r["user_text"] or r["document"] for r in self.rows],
            "exchange": [r["document"] for r in self.rows],
            "context": [f"{r['document']}\n{previous[r['id']]}" if previous[r["id"]] else r["document"]
                        for r in self.rows],
            "reply": [r["assistant_text"] or r["document"] for r in self.rows],
        }
        self.vectors = {kind: np.asarray(embedder.embed_background(t, BULK_THREADS), dtype=np.float32)
                        for kind, t in texts.items()}
        by_scope: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(self.rows):
            by_scope[r["scope"]].append(i)
        self.by_scope = {scope: np.asarray(rows) for scope, rows in by_scope.items()}
        self.questions: list[Question] = []

    def add_questions(self, conv: dict, project: str, embedder: Embedder) -> None:
        scope = f"project:{project}"
        for qa, evidence, sessions in questions(conv, project)[0]:
            self.questions.append(Question(
                qa["question"], qa["category"], scope, evidence, sessions,
                self.store.search(scope, qa["question"], DEPTH), dated_episodes(self.store, scope, qa["question"]),
                np.asarray(embedder.embed_one(qa["question"]), dtype=np.float32)))

    def vector_hits(self, q: Question, kind: str | tuple[str, ...], n: int) -> list[VectorHit]:
        """The `n` nearest episodes of the question's scope by one kind of vector (or the best of several)."""
        rows = self.by_scope[q.scope]
        kinds = (kind,) if isinstance(kind, str) else kind
        sims = np.max(np.stack([self.vectors[k][rows] @ q.vector for k in kinds]), axis=0)
        return [VectorHit(self.rows[rows[j]]["id"], float(sims[j])) for j in np.argsort(-sims)[:n]]

    def session_of(self, episode_id: str) -> str:
        return str(self.rows[self.at[episode_id]]["session_id"])

    def score(self, pick: Callable[[Question], list[str]]) -> dict:
        """Evidence and session recall@10, overall and per category."""
        per: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for q in self.questions:
            ids = pick(q)[:K]
            docs = [self.rows[self.at[i]]["document"] for i in ids]
            counts = per[q.category]
            counts[0] += 1
            counts[1] += any(t in d for d in docs for t in q.evidence)
            counts[2] += any(self.session_of(i) in q.sessions for i in ids)
        n = sum(c[0] for c in per.values())
        out = {"evidence": round(100 * sum(c[1] for c in per.values()) / n, 1),
               "session": round(100 * sum(c[2] for c in per.values()) / n, 1)}
        for cat, c in sorted(per.items()):
            out[f"{cat} {CATEGORIES[cat]}"] = f"{100 * c[1] / c[0]:.1f} / {100 * c[2] / c[0]:.1f}"
        return out


def ranking(corpus: Corpus, q: Question, kind: str | tuple[str, ...] = "context", n: int = 10,
            dates: bool = True) -> list[FusedHit]:
    """Every candidate, fused by the service's rank fusion (memory/hybrid.py), best first."""
    dated = q.dated if dates else []
    return fuse_explained(q.lexical[:n], corpus.vector_hits(q, kind, n), FusionWeights(), set(),
                          2 * n + len(dated), corpus.store, dated)


def fused(corpus: Corpus, kind: str | tuple[str, ...] = "context", n: int = 10, share: float = 0.3,
          dates: bool = True) -> Callable[[Question], list[str]]:
    """The service's recall with these settings: fusion, then the spread over sessions."""
    return lambda q: [h.episode.id for h in spread_sessions(ranking(corpus, q, kind, n, dates), K, share)]


def capped(corpus: Corpus, cap: int) -> Callable[[Question], list[str]]:
    """At most `cap` episodes of one session among the 10 (then the others, by score)."""

    def pick(q: Question) -> list[str]:
        count: dict[str, int] = defaultdict(int)
        kept, rest = [], []
        for h in ranking(corpus, q):
            (kept if count[h.episode.session_id] < cap else rest).append(h.episode.id)
            count[h.episode.session_id] += 1
        return (kept + rest)[:K]
    return pick


def session_boosted(corpus: Corpus, gain: float) -> Callable[[Question], list[str]]:
    """Each candidate's fused score plus `gain` times the sum of its session's candidates' scores."""

    def pick(q: Question) -> list[str]:
        hits = ranking(corpus, q)
        by_session: dict[str, float] = defaultdict(float)
        for h in hits:
            by_session[h.episode.session_id] += h.episode.score
        ranked = sorted(hits, key=lambda h: -(h.episode.score + gain * by_session[h.episode.session_id]))
        return [h.episode.id for h in ranked]
    return pick


def features(corpus: Corpus, q: Question, n: int = 20) -> tuple[list[str], np.ndarray]:
    """Per candidate: BM25 over the best, 1/lexical rank, found lexically, cosine, cosine under the best,
    1/vector rank, the best BM25 (over the best) of its session's candidates."""
    lex, vec = q.lexical[:n], corpus.vector_hits(q, "context", n)
    ids = list(dict.fromkeys([e.id for e in lex] + [h.id for h in vec]))
    top = max((e.score for e in lex), default=1.0) or 1.0
    lr = {e.id: (r, e.score) for r, e in reversed(list(enumerate(lex, 1)))}
    vr = {h.id: (r, h.similarity) for r, h in reversed(list(enumerate(vec, 1)))}
    best, floor = vec[0].similarity if vec else 0.3, vec[-1].similarity if vec else 0.3
    rows = []
    for i in ids:
        rank, bm25 = lr.get(i, (0, 0.0))
        vrank, sim = vr.get(i, (0, floor))
        rows.append([bm25 / top, 1 / rank if rank else 0, 1.0 if rank else 0, sim, sim - best,
                     1 / vrank if vrank else 0])
    x = np.asarray(rows)
    session_best: dict[str, float] = defaultdict(float)
    for i, row in zip(ids, x, strict=True):
        session_best[corpus.session_of(i)] = max(session_best[corpus.session_of(i)], row[0])
    return ids, np.hstack([x, [[session_best[corpus.session_of(i)]] for i in ids]])


def learned(corpus: Corpus, share: float) -> Callable[[Question], list[str]]:
    """A logistic model over `features` (L2, gradient descent), each conversation scored by a model fitted
    on the four others (leave one conversation out); then the spread of the service."""
    data = {id(q): features(corpus, q) for q in corpus.questions}
    labels = {id(q): np.asarray([any(t in corpus.rows[corpus.at[i]]["document"] for t in q.evidence)
                                 for i in data[id(q)][0]], dtype=float) for q in corpus.questions}
    models = {}
    for scope in corpus.by_scope:
        train = [q for q in corpus.questions if q.scope != scope]
        x = np.vstack([data[id(q)][1] for q in train])
        y = np.concatenate([labels[id(q)] for q in train])
        w, b = np.zeros(x.shape[1]), 0.0
        for _ in range(3000):
            p = 1 / (1 + np.exp(-(x @ w + b)))
            w -= 0.5 * (x.T @ (p - y) / len(y) + 1e-3 * w)
            b -= 0.5 * float(np.mean(p - y))
        models[scope] = (w, b)

    def pick(q: Question) -> list[str]:
        ids, x = data[id(q)]
        w, b = models[q.scope]
        order = [ids[j] for j in np.argsort(-(x @ w + b))]
        found = corpus.store.get_many(order)
        return [h.episode.id for h in spread_sessions([FusedHit(found[i], None, None) for i in order], K, share)]
    return pick


def variants(corpus: Corpus) -> dict[str, Callable[[Question], list[str]]]:
    out: dict[str, Callable[[Question], list[str]]] = {
        "shipped: context vectors, rrf 10/10, named days, spread 0.3": fused(corpus),
        "lexical alone (BM25, stemmed)": lambda q: [e.id for e in q.lexical],
        "context vectors alone": lambda q: [h.id for h in corpus.vector_hits(q, "context", K)],
        "message vectors, no named days, no spread (the second round's shipped)": fused(
            corpus, "message", share=0.0, dates=False),
    }
    for kind in ("exchange", "context", ("message", "reply"), ("context", "message")):
        out[f"{kind} vectors, no named days, no spread"] = fused(corpus, kind, share=0.0, dates=False)
    for n in (8, 12, 15, 20):
        out[f"shipped with {n} candidates a retriever"] = fused(corpus, n=n)
    for share in (0.0, 0.2, 0.4, 0.5):
        out[f"shipped with spread {share}"] = fused(corpus, share=share)
    out["shipped without named days"] = fused(corpus, dates=False)
    for cap in (1, 2, 3):
        out[f"at most {cap} a session (instead of the spread)"] = capped(corpus, cap)
    for gain in (0.1, 0.3):
        out[f"session boost {gain} (instead of the spread)"] = session_boosted(corpus, gain)
    out["learned fusion (logistic, leave one conversation out), no spread"] = learned(corpus, 0.0)
    out["learned fusion, spread 0.3"] = learned(corpus, 0.3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    files = sorted(DEV.glob("*.json"))
    with tempfile.TemporaryDirectory(prefix="recall-variants-") as tmp:
        workdir = Path(tmp)
        with BackendProcess() as backend, Service(workdir, backend.base_url) as service, \
                httpx.Client(base_url=service.base_url, timeout=600) as client:
            for path in files:
                replay(client, json.loads(path.read_text()), path.stem, f"locomo-{path.stem}")
        data, _ = store_dirs(workdir)
        store = EpisodeStore(SqliteDatabase(data / "memory.db"))
        embedder = Embedder()
        corpus = Corpus(store, embedder)
        for path in files:
            corpus.add_questions(json.loads(path.read_text()), f"locomo-{path.stem}", embedder)
        results = {label: corpus.score(pick) for label, pick in variants(corpus).items()}
    print(f"| variant ({len(corpus.questions)} questions) | evidence | session | "
          + " | ".join(f"{c} {CATEGORIES[c]}" for c in CATEGORIES) + " |")
    print("|---|---:|---:|" + "---|" * len(CATEGORIES))
    for label, r in results.items():
        print(f"| {label} | {r['evidence']} | {r['session']} | "
              + " | ".join(r.get(f"{c} {CATEGORIES[c]}", "") for c in CATEGORIES) + " |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
