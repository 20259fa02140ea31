"""Score-aware fusion, per-turn vectors and query stemming (memory/fusion.py, memory/stemming.py) on real SQLite,
Chroma and the packaged MiniLM model."""

from __future__ import annotations

import pytest

from memory.db import SqliteDatabase
from memory.episodes import Episode, EpisodeStore, StoredEpisode
from memory.fusion import by_episode, convex_parts, episode_id, reply_vector_id, with_reply_ids
from memory.hybrid import FusionWeights, fuse_explained
from memory.indexer import Indexer, reply_text
from memory.stemming import fts_term, stem
from memory.text import match_expression, query_terms
from memory.vector_process import VectorIndex
from memory.vectors import VectorHit


@pytest.fixture
def store(tmp_path) -> EpisodeStore:
    return EpisodeStore(SqliteDatabase(tmp_path / "memory.db"))


def test_convex_parts_normalise_each_list():
    parts = convex_parts([("a", 8.0), ("b", 2.0)], [("b", 0.9), ("c", 0.5), ("a", 0.7)], 0.5, 0.5, 0.3)
    assert parts.lexical == {"a": 0.5, "b": 0.125}  # BM25 over the best one
    assert parts.vector == pytest.approx({"b": 0.5, "c": 0.5 / 3, "a": 0.5 * 2 / 3})  # margin over the floor
    assert convex_parts([], [("x", 0.4)], 0.5, 0.5, 0.3).vector == {"x": 0.5}  # a lone hit: the whole weight


def test_reply_vectors_map_to_their_episode_at_its_best_similarity():
    assert episode_id(reply_vector_id("e1")) == "e1" and episode_id("e1") == "e1"
    assert with_reply_ids(["e1"]) == ["e1", "e1#reply"]
    hits = by_episode([VectorHit("e1#reply", 0.8), VectorHit("e2", 0.7), VectorHit("e1", 0.6)])
    assert hits == [VectorHit("e1", 0.8), VectorHit("e2", 0.7)]


def test_query_words_are_stemmed_into_prefixes():
    assert stem("adopted") == "adopt" and stem("adoption") == "adopt" and stem("paintings") == "paint"
    assert stem("go") == "go" and stem("2023") == "2023"  # short words and numbers as they are
    assert fts_term("adopted") == '"adopt"*' and fts_term("cat") == '"cat"'
    assert match_expression(None, "When did she adopt?") == 'document:("adopt"*)'


def test_question_words_are_left_out_of_the_query():
    assert query_terms("What kind of pottery would Melanie likely make?") == ["pottery", "melanie", "make"]


def test_a_stemmed_question_finds_another_form_of_its_word(store):
    store.add(Episode("s1", "default", "We went to the adoption agency today", "How exciting!"))
    store.add(Episode("s2", "default", "The weather is nice", "Indeed."))
    assert [h.session_id for h in store.search("default", "Which agencies did she adopt from?", 10)] == ["s1"]


def test_convex_fusion_ranks_by_scores_not_ranks(store):
    store.add(Episode("s1", "default", "Paris trip notes: Louvre, Seine, croissants", "Lovely."))
    store.add(Episode("s2", "default", "Paris", "Short."))
    lexical = store.search("default", "Paris trip Louvre", 10)
    ids = {h.session_id: h.id for h in lexical}
    vector = [VectorHit(ids["s2"], 0.9), VectorHit(ids["s1"], 0.89)]
    rrf = fuse_explained(lexical, vector, FusionWeights(0.5, 0.5, 0.3), set(), 2, store)
    convex = fuse_explained(lexical, vector, FusionWeights(0.5, 0.5, 0.3, mode="convex"), set(), 2, store)
    assert convex[0].episode.session_id == "s1"  # the far better BM25 match wins over a hair of cosine
    assert convex[0].lexical is not None and convex[0].lexical.contribution == 0.5
    assert {h.episode.session_id for h in rrf} == {"s1", "s2"}


def test_reply_text_is_the_document_after_the_users_words():
    episode = Episode("s1", "default", "line one\nline two", "the reply\nspans lines", created_at=0,
                      speakers=("Caroline", "Melanie"))
    as_read = StoredEpisode(episode.id, "s1", "default", episode.document, None, 0.0, user_text=episode.user_text)
    assert reply_text(as_read) == "the reply\nspans lines"


@pytest.mark.anyio
async def test_per_turn_vectors_find_an_episode_by_its_reply_and_leave_with_it(store, tmp_path, embedder):
    vectors = VectorIndex(tmp_path / "chroma")
    store.add(Episode("s1", "default", "What should I cook tonight?",
                      "Try a mushroom risotto with parmesan.", ai_msg_id="ai1"))
    indexer = Indexer(store, vectors, embedder, by="turns")
    indexer.schedule()
    await indexer.drain()
    episode = store.for_session("s1")[0]
    raw = vectors.query("default", embedder.embed_one("risotto recipe with mushrooms"), 5)
    assert raw[0].id == reply_vector_id(episode.id)  # the reply's own vector is the nearest
    hits = fuse_explained([], raw, FusionWeights(vector_threshold=0.0), set(), 5, store)
    assert [h.episode.id for h in hits] == [episode.id]  # reported as its episode, once
    vectors.delete("default", with_reply_ids([episode.id]))
    assert vectors.query("default", embedder.embed_one("risotto"), 5) == []
    vectors.close()


@pytest.mark.anyio
async def test_context_vectors_embed_the_exchange_then_the_one_before_it(store, tmp_path, embedder):
    vectors = VectorIndex(tmp_path / "chroma")
    store.add(Episode("s1", "default", "I started a pottery class", "Fun!", ai_msg_id="ai1", created_at=0))
    store.add(Episode("s1", "default", "Guess what I made there?", "A bowl?", ai_msg_id="ai2", created_at=1))
    store.add(Episode("s2", "default", "Unrelated session", "Sure.", ai_msg_id="ai3", created_at=2))
    encoded: list[str] = []
    original = embedder._encode
    embedder._encode = lambda texts: encoded.extend(texts) or original(texts)
    try:
        indexer = Indexer(store, vectors, embedder, by="context")
        indexer.schedule()
        await indexer.drain()
    finally:
        embedder._encode = original
    second = next(t for t in encoded if t.startswith("[1970-01-01] User: Guess what I made there?"))
    assert second.endswith("User: I started a pottery class\nAssistant: Fun!")  # its predecessor follows it
    first = next(t for t in encoded if "I started a pottery class" in t and "Guess" not in t)
    assert first.endswith("Assistant: Fun!")  # a session's first exchange has none
    assert all("Unrelated" not in t or "pottery" not in t for t in encoded)  # never another session's
    vectors.close()
