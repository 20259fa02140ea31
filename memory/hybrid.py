"""Hybrid recall: BM25 (FTS5) and vector hits fused by weighted reciprocal rank (or, with
`FusionWeights.mode="convex"`, by their normalised scores: memory/fusion.py), the episodes of a day the query
names first (memory/dates.py); `spread_sessions` then gives the last places to sessions not yet recalled."""

from __future__ import annotations

from dataclasses import dataclass, replace

from memory.episodes import EpisodeStore, StoredEpisode
from memory.fusion import by_episode, convex_parts
from memory.vectors import VectorHit

RRF_K = 60


@dataclass(frozen=True)
class FusionWeights:
    """How much each retriever counts, and the floor under which a vector hit is ignored."""

    lexical: float = 0.5  # as RECALL_LEXICAL_WEIGHT / RECALL_VECTOR_WEIGHT (equal since LoCoMo: BENCHMARKS.md)
    vector: float = 0.5
    vector_threshold: float = 0.3
    mode: str = "rrf"
    """"rrf" (weighted reciprocal rank) or "convex" (weighted normalised scores: memory/fusion.py)."""
    session_spread: float = 0.3
    """The share of places `spread_sessions` gives to sessions not yet among the hits (RECALL_SESSION_SPREAD)."""
    date: float = 2.0
    """The weight of the episodes of a day the query names (memory/dates.py): above what both retrievers
    together give (2 / 61 against at most 1 / 61), so they come first."""


@dataclass(frozen=True)
class LexicalPart:
    """Where the BM25 search ranked an episode (1 = best) and its BM25 score (higher = better match)."""

    rank: int
    bm25: float
    contribution: float
    """This retriever's share of the fused score: weight / (RRF_K + rank), or weight * normalised score."""


@dataclass(frozen=True)
class VectorPart:
    """The episode's cosine similarity to the query and, if it cleared the threshold, its rank among the
    vector hits that did (None: it was below the threshold and added nothing)."""

    similarity: float
    rank: int | None
    contribution: float


@dataclass(frozen=True)
class DatePart:
    """Where the episode ranked among those of a day the query names (1 = most of the query's words)."""

    rank: int
    contribution: float


@dataclass(frozen=True)
class FusedHit:
    """A recalled episode (its `score` the fused one) with the parts that score is made of."""

    episode: StoredEpisode
    lexical: LexicalPart | None
    vector: VectorPart | None
    date: DatePart | None = None


def fuse_explained(
    lexical: list[StoredEpisode],
    vector: list[VectorHit],
    weights: FusionWeights,
    exclude_ai_ids: set[str],
    k: int,
    episodes: EpisodeStore,
    dated: list[StoredEpisode] | None = None,
) -> list[FusedHit]:
    """Weighted RRF of both rankings, best first, each hit with what each retriever said of it; `dated`:
    the episodes of a day the query names, best first (memory/dates.py), weighted by `weights.date`.

    Episodes already in the recent window (`exclude_ai_ids`) are left out. Vector hits only contribute their
    id and rank: their text is read back from SQLite, the source of truth, so a vector whose episode was
    deleted can never be recalled.
    """
    vector = by_episode(vector)  # per-turn vectors: an episode's best one counts (memory/fusion.py)
    convex = convex_parts([(h.id, h.score) for h in lexical],
                          [(h.id, h.similarity) for h in vector if h.similarity >= weights.vector_threshold],
                          weights.lexical, weights.vector, weights.vector_threshold) \
        if weights.mode == "convex" else None
    lexical_parts: dict[str, LexicalPart] = {}
    for rank, hit in enumerate(lexical, start=1):
        if hit.id not in lexical_parts:
            share = convex.lexical[hit.id] if convex else weights.lexical / (RRF_K + rank)
            lexical_parts[hit.id] = LexicalPart(rank, hit.score, share)
    vector_parts: dict[str, VectorPart] = {}
    kept_rank = 0
    for vhit in vector:
        if vhit.similarity >= weights.vector_threshold:
            kept_rank += 1
            share = convex.vector[vhit.id] if convex else weights.vector / (RRF_K + kept_rank)
            vector_parts[vhit.id] = VectorPart(vhit.similarity, kept_rank, share)
        else:  # shown, so a user sees why a near miss did not count
            vector_parts[vhit.id] = VectorPart(vhit.similarity, None, 0.0)
    date_parts = {e.id: DatePart(rank, weights.date / ((RRF_K if weights.mode == "rrf" else 0) + rank))
                  for rank, e in enumerate(dated or [], start=1)}
    scores: dict[str, float] = {}
    for parts in (lexical_parts, vector_parts, date_parts):
        for episode_id, part in parts.items():
            if part.contribution:
                scores[episode_id] = scores.get(episode_id, 0.0) + part.contribution
    by_id = {e.id: e for e in [*(dated or []), *lexical]}
    by_id.update(episodes.get_many([i for i in scores if i not in by_id]))
    out: list[FusedHit] = []
    for episode_id, score in sorted(scores.items(), key=lambda item: item[1], reverse=True):
        episode = by_id.get(episode_id)
        if episode is None or (episode.ai_msg_id and episode.ai_msg_id in exclude_ai_ids):
            continue
        out.append(FusedHit(replace(episode, score=score, user_text=""), lexical_parts.get(episode_id),
                            vector_parts.get(episode_id), date_parts.get(episode_id)))
        if len(out) >= k:
            break
    return out


def fuse(
    lexical: list[StoredEpisode],
    vector: list[VectorHit],
    weights: FusionWeights,
    exclude_ai_ids: set[str],
    k: int,
    episodes: EpisodeStore,
) -> list[StoredEpisode]:
    """The episodes of `fuse_explained`, each with its fused score: what recall needs."""
    return [h.episode for h in fuse_explained(lexical, vector, weights, exclude_ai_ids, k, episodes)]


def spread_sessions(hits: list[FusedHit], k: int, share: float) -> list[FusedHit]:
    """The first `k` of `hits` (best first), except that the last `k * share` places (rounded down) go to the
    best hits of sessions not among the places before them, while there are such hits.

    A question about something said in several conversations (or one the lexical and vector searches both
    place in the wrong one) then sees more of them: on LoCoMo's dev half, with k=10 and a share of 0.3,
    session recall rose from 94.7 to 96.0 and evidence recall fell from 83.7 to 83.0 (BENCHMARKS.md).
    """
    head = k - int(k * share + 1e-9)
    out = hits[:head]
    seen = {h.episode.session_id for h in out}
    rest: list[FusedHit] = []
    for hit in hits[head:]:
        if len(out) == k:
            break
        if hit.episode.session_id in seen:
            rest.append(hit)
        else:
            out.append(hit)
            seen.add(hit.episode.session_id)
    return out + rest[: k - len(out)]
