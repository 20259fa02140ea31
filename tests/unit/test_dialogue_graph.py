"""The dialogue graph with a fake chat model on a real SQLite checkpointer: views, endings, failures, the
ending rules and metrics on their own, and the rate limiter."""

from __future__ import annotations

import aiosqlite
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from dialogue.builder import build_dialogue_graph, recursion_limit
from dialogue.deps import dialogue_deps
from dialogue.ending import EndingRules, decide
from dialogue.metrics import dialogue_metrics, distinct_n
from dialogue.rate_limit import RateLimiter
from memory.embedder import Embedder
from tests.fakes import FakeChatModel, contract

pytestmark = pytest.mark.anyio
PEOPLE = [{"name": "Ann", "persona": "You are Ann."}, {"name": "Bob", "persona": "You are Bob."}]


async def _run(tmp_path, settings, replies, *, min_turns=1, max_turns=4, model=None, embedder=None):
    model = model or FakeChatModel(replies)
    deps = dialogue_deps(settings, model, embedder=embedder)
    async with aiosqlite.connect(tmp_path / "checkpoints.db") as conn:
        graph = build_dialogue_graph(deps).compile(checkpointer=AsyncSqliteSaver(conn))
        config = {"configurable": {"thread_id": "dialogue:t"}, "recursion_limit": recursion_limit(max_turns)}
        state = await graph.ainvoke({"topic": "tea", "participants": PEOPLE, "min_turns": min_turns,
                                     "max_turns": max_turns}, config)
        history = [s async for s in graph.aget_state_history(config)]
    return state, model, history


async def test_each_speaker_sees_its_turns_as_assistant_and_a_checkpoint_follows_each_turn(tmp_path, settings):
    replies = ["green tea is grassy and bright", "black tea is malty and strong", "oolong sits in between them"]
    state, model, history = await _run(tmp_path, settings, replies, max_turns=3)
    assert [t["speaker"] for t in state["turns"]] == ["Ann", "Bob", "Ann"]
    assert state["ending_reason"] == "max_turns"
    roles = [[(m.type, m.content) for m in prompt[1:]] for prompt in model.prompts]
    assert roles[1] == [("human", replies[0])]
    assert roles[2][1:] == [("ai", replies[0]), ("human", replies[1])]
    bob_system = model.prompts[1][0].content
    assert "You are Bob." in bob_system and "talking with Ann about: tea" in bob_system
    stored_turns = sorted({len(s.values.get("turns") or []) for s in history})
    assert stored_turns == [0, 1, 2, 3]  # a checkpoint after every turn: a restart resumes from any of them


async def test_a_failing_model_ends_the_dialogue_with_the_reason(tmp_path, settings):
    class Broken(FakeChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if len(self.prompts) >= 1:
                raise ConnectionError("node went away")
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    state, _, _ = await _run(tmp_path, settings, [], model=Broken(["only one turn"]))
    assert len(state["turns"]) == 1 and state["ending_reason"] == "error"
    assert state["error"].startswith("Bob: configured failed: ConnectionError: node went away")


async def test_a_reply_in_the_json_contract_becomes_its_text(tmp_path, settings):
    replies = [contract("tea leaves unfurl slowly"), 'a quoted {"key": "value"} stays as is']
    state, _, _ = await _run(tmp_path, settings, replies, max_turns=2)
    assert [t["text"] for t in state["turns"]] == ["tea leaves unfurl slowly", replies[1]]


async def test_an_empty_reply_ends_it(tmp_path, settings):
    state, _, _ = await _run(tmp_path, settings, ["hello there friend", "   [END]  "], max_turns=6)
    assert state["ending_reason"] == "empty_reply" and len(state["turns"]) == 1


async def test_a_failing_embedder_leaves_the_ngram_check(tmp_path, settings):
    missing = Embedder(model_path=tmp_path / "no-model", cache_dir=tmp_path / "cache")  # fails to load
    replies = ["one two three four five", "six seven eight nine ten", "one two three four five"]
    state, _, _ = await _run(tmp_path, settings, replies, max_turns=6, embedder=missing)
    assert state["ending_reason"] == "repetition" and len(state["turns"]) == 3
    assert state["checks"][-1] == {"ngram_overlap": 1.0, "similarity": 0.0}


def test_only_the_last_sentence_can_say_goodbye():
    rules = EndingRules()
    assert rules.closes("That settles it. Goodbye, and take care!")
    assert not rules.closes("We should say goodbye to coal. What would replace it?")
    assert not rules.closes("Farewells are hard")  # a word, not the phrase


def test_repetition_by_ngrams_and_for_short_turns():
    rules = EndingRules(ngram=3, ngram_threshold=0.6)
    long_turn = "the quick brown fox jumps over the lazy dog"
    echo = rules.repetition([long_turn], "well the quick brown fox jumps over the lazy dog", None)
    assert echo["ngram_overlap"] >= 0.8
    assert rules.repetition(["a b c d e"], "v w x y z", None)["ngram_overlap"] == 0.0
    assert rules.repetition(["I agree."], "i agree", None)["ngram_overlap"] == 1.0
    assert rules.repetition([], "anything", None) == {"ngram_overlap": 0.0, "similarity": 0.0}
    same = rules.repetition(["x"], "y", lambda text: [1.0, 0.0])
    assert same["similarity"] == 1.0 and rules.repeats(same)


def test_decide_orders_the_reasons():
    rules = EndingRules()
    calm, loop = {"ngram_overlap": 0.1, "similarity": 0.2}, {"ngram_overlap": 0.9, "similarity": 0.2}
    assert decide(rules, "fine. goodbye", False, loop, 1, 4, 8) == "repetition"
    assert decide(rules, "fine. goodbye", False, calm, 1, 4, 8) is None
    assert decide(rules, "fine. goodbye", False, calm, 4, 4, 8) == "closing_phrase"
    assert decide(rules, "fine", True, calm, 4, 4, 8) == "end_signal"
    assert decide(rules, "fine", False, calm, 8, 4, 8) == "max_turns"


def test_metrics_per_participant_and_diversity():
    turns = [{"speaker": "Ann", "text": "a b c", "tokens": 3, "latency_ms": 10.0},
             {"speaker": "Bob", "text": "a b d", "tokens": 5, "latency_ms": 30.0}]
    checks = [{"ngram_overlap": 0.0, "similarity": 0.0}, {"ngram_overlap": 0.5, "similarity": 0.4}]
    m = dialogue_metrics(turns, checks, "max_turns")
    assert m["tokens"] == 8 and m["participants"]["Bob"] == {"turns": 1, "tokens": 5, "latency_ms": 30.0,
                                                            "mean_latency_ms": 30.0}
    assert m["distinct_1"] == round(4 / 6, 4) and m["distinct_2"] == 0.75 and m["repetition_score"] == 0.5
    assert m["mean_turn_words"] == 3.0 and distinct_n([], 2) == 0.0


async def test_the_rate_limiter_spaces_requests_per_key():
    limiter = RateLimiter(clock=lambda: 100.0)  # a frozen clock: each slot is the previous one + 60/rpm
    waits = [await limiter.acquire("node", 6000) for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.01, 0.02])
    assert await limiter.acquire("other node", 6000) == 0.0
    assert await limiter.acquire("node", 0) == 0.0  # no limit
