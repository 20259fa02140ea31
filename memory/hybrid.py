"""Hybrid recall: BM25 (FTS5) and vector hits fused by weighted reciprocal rank."""

from __future__ import annotations

from dataclasses import dataclass

from memory.episodes import EpisodeStore, StoredEpisode
from memory.vectors import VectorHit

RRF_K = 60


@dataclass(frozen=True)
class FusionWeights:
    """How much each retriever counts, and the floor under which a vector hit is ignored."""

    lexical: float = 0.7
    vector: float = 0.3
    vector_threshold: float = 0.3


def fuse(
    lexical: list[StoredEpisode],
    vector: list[VectorHit],
    weights: FusionWeights,
    exclude_ai_ids: set[str],
    k: int,
    episodes: EpisodeStore,
) -> list[StoredEpisode]:
    """Weighted RRF of both rankings; episodes already in the recent window are left out.

    Vector hits only contribute their id and rank: their text is read back from SQLite, the source
    of truth, so a vector whose episode was deleted can never be recalled.
    """
    scores: dict[str, float] = {}
    for rank, hit in enumerate(lexical):
        scores[hit.id] = scores.get(hit.id, 0.0) + weights.lexical / (RRF_K + rank + 1)
    kept_vectors = [h for h in vector if h.similarity >= weights.vector_threshold]
    for rank, hit in enumerate(kept_vectors):
        scores[hit.id] = scores.get(hit.id, 0.0) + weights.vector / (RRF_K + rank + 1)
    by_id = {e.id: e for e in lexical}
    missing = [h.id for h in kept_vectors if h.id not in by_id]
    by_id.update(episodes.get_many(missing))
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    out: list[StoredEpisode] = []
    for episode_id, score in ranked:
        episode = by_id.get(episode_id)
        if episode is None or (episode.ai_msg_id and episode.ai_msg_id in exclude_ai_ids):
            continue
        out.append(
            StoredEpisode(
                id=episode.id,
                session_id=episode.session_id,
                scope=episode.scope,
                document=episode.document,
                ai_msg_id=episode.ai_msg_id,
                created_at=episode.created_at,
                score=score,
            )
        )
        if len(out) >= k:
            break
    return out
