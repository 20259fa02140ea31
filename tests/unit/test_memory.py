"""Episodes, lexical search, vectors and hybrid recall on real SQLite (FTS5) and Postgres (tsvector), Chroma and
the packaged MiniLM model. Store tests take the `database` fixture: they run on both dialects."""

from __future__ import annotations

import time

import numpy as np
import pytest

from memory.db import Database, SqliteDatabase
from memory.embedder import DIMENSIONS, Embedder
from memory.episodes import Episode, EpisodeStore
from memory.hybrid import FusionWeights, fuse
from memory.indexer import Indexer
from memory.lexical import LexicalPlanner, Pass
from memory.pg import PgDatabase
from memory.text import match_expression, query_terms
from memory.vector_process import VectorIndex, VectorStoreError


@pytest.fixture
def store(database) -> EpisodeStore:
    """An episode store of each dialect."""
    return EpisodeStore(database)



def reopen(db: Database) -> Database:
    """A second handle on the same database (a restarted process)."""
    return SqliteDatabase(db.path) if isinstance(db, SqliteDatabase) else PgDatabase(db.url, max_size=2)


def test_query_terms_drop_stopwords():
    assert query_terms("Where is the spare key of my car?") == ["spare", "key", "car"]
    assert match_expression("default", "what is it?") is None
    assert '"spar"*' in match_expression("default", "the spare key")  # stemmed: memory/stemming.py


def test_episode_document_is_dated_with_speaker_labels():
    ep = Episode("s1", "default", "I like tea", "Noted.", created_at=0)
    assert ep.document == "[1970-01-01] User: I like tea\nAssistant: Noted."


def test_lexical_search_ranks_and_respects_scope(store):
    store.add(Episode("s1", "default", "The spare key is under the blue flower pot", "Got it."))
    store.add(Episode("s2", "default", "My cat is called Miso", "Nice name."))
    store.add(Episode("s3", "project:a", "The spare key is in the drawer", "OK."))
    hits = store.search("default", "Where is the spare key?", 10)
    assert [h.session_id for h in hits] == ["s1"]
    assert [h.session_id for h in store.search("project:a", "spare key", 10)] == ["s3"]
    assert store.search("default", "the of and", 10) == []


def test_a_rare_word_outranks_a_common_one_and_committed_rows_alone_are_found(store):
    """BM25 on both dialects: a word few episodes hold weighs more than one most of them hold (Postgres'
    own ts_rank_cd would rank by counts alone), and a longer episode weighs a word less."""
    for i in range(8):
        store.add(Episode(f"common{i}", "default", f"the backup ran fine on night {i}, backup backup", "OK."))
    store.add(Episode("rare", "default", "the backup went to the zanzibar bucket", "OK."))
    store.add(Episode("ghost", "default", "zanzibar zanzibar zanzibar", "OK."), committed=False)
    hits = store.search("default", "backup zanzibar", 10)
    assert hits[0].session_id == "rare" and len(hits) == 9 and "ghost" not in {h.session_id for h in hits}
    assert hits[0].score > hits[1].score > 0


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_postgres_search_stems_its_words(store):
    store.add(Episode("s1", "default", "I was deploying the gardens service", "OK."))
    store.add(Episode("s2", "default", "Lunch was soup", "OK."))
    assert [h.session_id for h in store.search("default", "when did I deploy the garden?", 10)] == ["s1"]
    assert store.search("other-scope", "deploy garden", 10) == []


def test_embedder_is_offline_minilm(embedder):
    a, b, c = embedder.embed(["The spare key is under the blue flower pot", "Where is the spare key?",
                              "Quarterly revenue grew in Europe"])
    assert len(a) == DIMENSIONS
    sim = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731 - normalised vectors
    assert sim(a, b) > 0.6 > sim(a, c)


def test_onnx_runtime_gives_torch_s_vectors(tmp_path):
    """The ONNX export (made once into the cache dir) reproduces sentence-transformers on torch, for a
    batch with padding and for a text past the 256-token truncation; a second load reuses the file."""
    texts = ["hello", "Remember: my cat is called Miso and she likes the window seat.", "word " * 400]
    onnx = Embedder(runtime="onnx", cache_dir=tmp_path)
    torch = Embedder(runtime="torch")
    got, expected = onnx.embed(texts), torch.embed(texts)
    assert onnx.runtime == "onnx" and len(got[0]) == DIMENSIONS
    exported = list(tmp_path.glob("*.onnx"))
    assert len(exported) == 1
    for a, b in zip(got, expected, strict=True):
        assert sum(p * q for p, q in zip(a, b, strict=True)) > 0.9999
    alone = onnx.embed([texts[0]])[0]
    assert sum(p * q for p, q in zip(alone, got[0], strict=True)) > 0.9999  # padding changes nothing
    again = Embedder(runtime="onnx", cache_dir=tmp_path)
    again.load()
    assert again.runtime == "onnx" and list(tmp_path.glob("*.onnx")) == exported


def test_a_prefetched_query_is_embedded_once():
    """TurnRunner starts the query's embedding as the request arrives; recall's embed_one then waits for
    that vector instead of embedding again."""
    embedder = Embedder()
    calls: list[list[str]] = []
    original = embedder._encode

    def counting(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return original(texts)

    embedder._encode = counting
    embedder.prefetch("Where did I park the car?")
    vector = embedder.embed_one("Where did I park the car?")
    assert calls == [["Where did I park the car?"]]
    assert vector == original(["Where did I park the car?"])[0]
    embedder.prefetch("Where did I park the car?")  # known: nothing to do
    assert embedder.embed_one("Where did I park the car?") == vector and len(calls) == 1


def test_query_vectors_wait_for_the_indexer_through_seconds_of_back_to_back_turns(embedder):
    """The indexer runs at least every 5 s and reuses each turn's query vector for its episode. At ~100
    turns/s that is 500 turns: their vectors must still be there, exactly, and not be embedded again."""
    encoded: list[str] = []
    original = embedder._encode

    def fake(texts: list[str]) -> list[list[float]]:  # float32, as the model's; its cost is not tested here
        encoded.extend(texts)
        return [((np.arange(DIMENSIONS) + hash(t) % 997) / 997).astype(np.float32).tolist() for t in texts]

    embedder._encode = fake
    try:
        turns = [f"turn {i}: what did the backup log say?" for i in range(1000)]
        vectors = [embedder.embed_one(text) for text in turns]
        assert embedder.embed_background(turns[:3]) == vectors[:3]
        assert embedder.embed_one(turns[0]) == vectors[0]
    finally:
        embedder._encode = original
    assert encoded == turns  # each text once


def test_embedder_falls_back_to_torch_when_the_export_cannot_be_written(tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    embedder = Embedder(runtime="onnx", cache_dir=blocked)
    assert len(embedder.embed_one("still works")) == DIMENSIONS
    assert embedder.runtime == "torch"


@pytest.mark.anyio
async def test_indexer_catches_up_with_sqlite_and_hybrid_recall_finds_it(store, vector_store, embedder):
    vectors = vector_store
    facts = ["The spare key is under the blue flower pot", "My cat is called Miso",
             "The deploy script lives in tools/deploy.sh", "I prefer tabs over spaces"]
    for i, fact in enumerate(facts):
        store.add(Episode(f"s{i}", "default", fact, "Noted.", ai_msg_id=f"ai{i}", created_at=time.time()))
    assert len(store.pending(100)) == 4
    indexer = Indexer(store, vectors, embedder, batch=3)
    indexer.schedule()
    await indexer.drain()
    assert store.pending(100) == []
    query = "Where did I put the key?"
    lexical = store.search("default", query, 20)
    vector = vectors.query("default", embedder.embed_one(query), 20)
    assert vector[0].id == lexical[0].id  # both agree on the key episode
    hits = fuse(lexical, vector, FusionWeights(), set(), 2, store)
    assert "blue flower pot" in hits[0].document
    assert len(hits) == 1  # unrelated episodes fall under the vector threshold and share no word
    assert len(fuse(lexical, vector, FusionWeights(vector_threshold=-1.0), set(), 2, store)) == 2
    # Deduplicated against the recent window: the same episode is not recalled twice.
    again = fuse(lexical, vector, FusionWeights(vector_threshold=-1.0), {hits[0].ai_msg_id}, 2, store)
    assert all("flower pot" not in h.document for h in again)
    # Other scopes never see it.
    assert vectors.query("project:b", embedder.embed_one(query), 5) == []


@pytest.mark.anyio
async def test_unindexed_episodes_are_indexed_after_a_restart(database, embedder, vector_store):
    first = EpisodeStore(reopen(database))
    first.add(Episode("s1", "default", "The wifi password is hunter2", "Saved."))
    first.db.close()  # "crash" before the vector was written
    store = EpisodeStore(database)
    indexer = Indexer(store, vector_store, embedder)
    indexer.schedule()
    await indexer.drain()
    hits = vector_store.query("default", embedder.embed_one("what is the wifi password"), 3)
    assert hits and hits[0].id == store.for_session("s1")[0].id


@pytest.mark.anyio
@pytest.mark.parametrize("by", ["message", "exchange"])
async def test_an_episode_costs_one_embedding_by_message_two_by_exchange(store, vector_store, embedder, by):
    vectors = vector_store
    encoded: list[str] = []
    original = embedder._encode

    def counting(texts):
        encoded.extend(texts)
        return original(texts)

    embedder._encode = counting
    try:
        # A text of this run's own: the module's embedder keeps the query vectors of earlier runs.
        query = f"Where does the {by} backup run every night on {store.db.dialect} {type(vectors).__name__}?"
        query_vector = embedder.embed_one(query)  # what recall does with the turn's message
        store.add(Episode("s1", "default", query, "On the NAS.", ai_msg_id="ai1"))
        indexer = Indexer(store, vectors, embedder, by=by)
        indexer.schedule()
        await indexer.drain()
    finally:
        embedder._encode = original
    episode_id = store.for_session("s1")[0].id
    if by == "message":
        assert encoded == [query]  # the query's vector was reused for the episode
        assert vectors.query("default", query_vector, 1)[0].id == episode_id
        assert vectors.query("default", query_vector, 1)[0].similarity > 0.999
    else:
        assert len(encoded) == 2 and encoded[0] == query and "On the NAS." in encoded[1]  # the whole exchange


def test_a_vector_store_reports_a_bad_call_as_its_error_and_keeps_serving(vector_store):
    vector_store.add("default", ["a"], [[1.0] + [0.0] * 383], ["A"])
    with pytest.raises(VectorStoreError):
        vector_store.add("default", ["b"], [[1.0, 0.0]], ["wrong dimension"])
    assert [h.id for h in vector_store.query("default", [1.0] + [0.0] * 383, 3)] == ["a"]


def test_the_vector_process_is_replaced_when_it_dies(tmp_path):
    vectors = VectorIndex(tmp_path / "chroma")
    vectors.add("default", ["a"], [[1.0] + [0.0] * 383], ["A"])
    vectors._proc.kill()  # the child crashes
    vectors._proc.wait()
    assert [h.id for h in vectors.query("default", [1.0] + [0.0] * 383, 3)] == ["a"]  # a new child, same data
    vectors.close()


def test_a_store_made_before_the_recent_table_gets_it_filled_once(tmp_path):
    db = SqliteDatabase(tmp_path / "old.db")
    store = EpisodeStore(db, LexicalPlanner(recent_rows=3))
    for i in range(5):
        store.add(Episode(f"s{i}", "default", f"note {i}", "Noted."))
    db.query("DELETE FROM episodes_recent_fts")  # as an older version left it: no such rows
    EpisodeStore(db, LexicalPlanner(recent_rows=3))
    assert [r["rowid"] for r in db.query("SELECT rowid FROM episodes_recent_fts ORDER BY rowid")] == [3, 4, 5]


def test_words_most_episodes_contain_are_left_out_of_the_search(store):
    for i in range(40):
        store.add(Episode(f"s{i}", "default", f"ticket {i} tracks the {'alpha' if i % 10 == 0 else 'beta'} box",
                          "Noted."))
    assert store.lexical.plan("default", ["ticket", "alpha"]) == [Pass(("ticket", "alpha"))]  # small
    store.planner.prune_from = 20
    assert store.lexical.plan("default", ["ticket", "tracks", "alpha", "beta"]) == [Pass(("alpha",))]
    hits = store.search("default", "ticket alpha", 10)
    assert hits and all("alpha" in h.document for h in hits)
    assert store.search("default", "ticket tracks", 10) == []  # nothing but ubiquitous words


def test_a_large_store_is_searched_within_a_budget_and_rare_words_reach_all_of_it(store):
    """Past the budget, frequent words are scored over the newest rows only, while a word said once long
    ago is still found in the older ones."""
    store.planner = LexicalPlanner(prune_from=20, sample=40, budget=10, min_window=10, rare_rows=5, recent_rows=60)
    for i in range(200):
        extra = " near zanzibar" if i == 3 else ""
        store.add(Episode(f"s{i}", "default", f"episode {i}: {'the deploy broke' if i % 5 == 0 else 'lunch'}{extra}",
                          "Noted."))
    if store.db.dialect == "sqlite":  # Postgres bounds its passes by seq in the one table
        recent = store.db.query("SELECT min(rowid) AS low, count(*) AS n FROM episodes_recent_fts")[0]
        assert (recent["low"], recent["n"]) == (141, 60)  # the newest 60 only
    passes = store.lexical.plan("default", ["deploy", "zanzibar"])
    assert [(p.terms, p.recent) for p in passes] == [(("deploy", "zanzibar"), True), (("zanzibar",), False)]
    assert passes[0].after == passes[1].upto and passes[0].after >= 140
    hits = store.search("default", "deploy zanzibar", 20)
    sessions = [h.session_id for h in hits]
    assert "s3" in sessions  # the rare word, from the oldest rows
    assert all(int(s[1:]) > passes[0].after - 1 or s == "s3" for s in sessions)  # the rest from the newest
    exact = LexicalPlanner(prune_from=10**9)
    assert exact.plan(store.db, "default", ["deploy", "zanzibar"]) == [Pass(("deploy", "zanzibar"))]


def test_word_counts_are_reused_until_the_store_has_grown(store):
    """Counting a frequent word is the costly part of planning: its count is kept, and made again once a
    tenth of the sample's worth of episodes has been added."""
    store.planner = LexicalPlanner(prune_from=20, sample=40, budget=1000, min_window=10, recent_rows=60)
    for i in range(40):  # lunch in 10 of the newest 40: under the cut of 40 * 0.25 + 1 = 11
        store.add(Episode(f"s{i}", "default", f"episode {i} about {'lunch' if i >= 30 else 'work'}", "Noted."))
    assert store.lexical.plan("default", ["lunch"]) == [Pass(("lunch",))]
    for i in range(3):  # 13 now, but 3 new rows are under a tenth of the sample: the count of 10 stands
        store.add(Episode(f"l{i}", "default", "lunch again", "Noted."))
    assert store.lexical.plan("default", ["lunch"]) == [Pass(("lunch",))]
    for i in range(3, 5):  # 5 new rows: counted again, and lunch is now too common to search for
        store.add(Episode(f"l{i}", "default", "lunch again", "Noted."))
    assert store.lexical.plan("default", ["lunch"]) == []
