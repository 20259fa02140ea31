"""Score-aware fusion and per-turn vector ids: the recall variants measured for issue 20 (BENCHMARKS.md).

Rank fusion (memory/hybrid.py) throws the scores away: the 10th BM25 hit counts nearly as much as the 1st
whatever their scores. `convex_parts` keeps them: each BM25 score divided by the best one of the list, each
cosine similarity's margin over the vector threshold divided by the best one's, and a candidate's score is
`lexical_weight * bm25_norm + vector_weight * cosine_norm` (a convex combination when the weights add up to
1). A candidate missing from one list gets 0 from it. (Min-max scaling of the cosines was measured first and
dropped: over a few candidates it turns a hair of similarity into the whole vector weight.)

Per-turn vectors (`EPISODE_EMBEDDING=turns`): an episode has its user message's vector under its own id and
its reply's under `<id>#reply`, so the reply's words are reachable by meaning too. `episode_id` maps a
vector id back to its episode; the best of an episode's two vectors is the one that counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from memory.vectors import VectorHit

REPLY_SUFFIX = "#reply"


def reply_vector_id(episode_id: str) -> str:
    """The id of an episode's reply vector (per-turn vectors)."""
    return episode_id + REPLY_SUFFIX


def episode_id(vector_id: str) -> str:
    """The episode a vector id belongs to (its own id, or that of its reply vector)."""
    return vector_id[: -len(REPLY_SUFFIX)] if vector_id.endswith(REPLY_SUFFIX) else vector_id


def with_reply_ids(ids: Iterable[str]) -> list[str]:
    """Episode ids and their reply vectors' ids: what deleting episodes' vectors deletes (a store made
    without per-turn vectors has no reply vectors; deleting an absent id is a no-op)."""
    out: list[str] = []
    for i in ids:
        out += [i, reply_vector_id(i)]
    return out


def by_episode(hits: list[VectorHit]) -> list[VectorHit]:
    """Vector hits mapped to their episodes, each episode once at its best similarity, best first."""
    best: dict[str, float] = {}
    for hit in hits:
        key = episode_id(hit.id)
        if hit.similarity > best.get(key, float("-inf")):
            best[key] = hit.similarity
    return [VectorHit(i, s) for i, s in sorted(best.items(), key=lambda item: item[1], reverse=True)]


@dataclass(frozen=True)
class ConvexParts:
    """Each candidate's share of the fused score, per retriever (episode id -> contribution)."""

    lexical: dict[str, float]
    vector: dict[str, float]


def convex_parts(lexical: list[tuple[str, float]], vector: list[tuple[str, float]], lexical_weight: float,
                 vector_weight: float, floor: float = 0.0) -> ConvexParts:
    """Contributions of (episode id, BM25 score) and (episode id, cosine) candidates, normalised per list.

    BM25 scores are divided by the best one (they are positive here: higher is better), so the top lexical
    hit always brings the whole lexical weight; a cosine counts by its margin over `floor` (the vector
    threshold: MiniLM's similarities of unrelated texts sit well above 0) relative to the best one's.
    """
    lex: dict[str, float] = {}
    top = max((s for _, s in lexical), default=0.0)
    for i, score in lexical:
        if i not in lex:
            lex[i] = lexical_weight * (score / top if top > 0 else 1.0)
    vec: dict[str, float] = {}
    best = max((s for _, s in vector), default=floor) - floor
    for i, sim in vector:
        if i not in vec:
            vec[i] = vector_weight * (max(0.0, sim - floor) / best if best > 0 else 1.0)
    return ConvexParts(lex, vec)
