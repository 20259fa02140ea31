"""The whole graph with a fake chat model, a temp-file SQLite checkpointer and real memory stores."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tests.fakes import FakeChatModel, contract


def cfg(thread: str) -> dict:
    return {"configurable": {"thread_id": thread}}


@pytest.mark.anyio
async def test_a_turn_answers_stores_an_episode_and_recalls_it_elsewhere(settings, compiled):
    model = FakeChatModel([contract("Noted: the key is under the blue pot."), contract("Under the blue pot.")])
    deps, graph = await compiled(model)
    out = await graph.ainvoke({"messages": [HumanMessage("Remember: the spare key is under the blue pot")]},
                              cfg("s1"))
    reply = out["messages"][-1]
    assert isinstance(reply, AIMessage) and reply.content == "Noted: the key is under the blue pot."
    assert reply.response_metadata["contract"] == "ok"
    assert deps.episodes.count() == 1
    await deps.indexer.drain()
    assert deps.episodes.pending(10) == []

    await graph.ainvoke({"messages": [HumanMessage("Where is the spare key?")]}, cfg("s2"))
    prompt = model.prompt_text(-1)
    assert "spare key is under the blue pot" in prompt  # recalled from session s1
    assert prompt.index("relevant memories") < prompt.index("Where is the spare key?")
    state = await graph.aget_state(cfg("s2"))
    assert state.values["recalled"]["degraded"] is False
    assert state.values["prompt"] == []  # cleared once persisted


@pytest.mark.anyio
async def test_tool_calls_and_tool_results_continue_the_turn(settings, compiled):
    call = {"id": "call_1", "name": "read_file", "arguments": {"path": "a.py"}}
    model = FakeChatModel([contract("Reading.", [call]), contract("It prints hello.")])
    deps, graph = await compiled(model)
    tools = [{"type": "function", "function": {"name": "read_file", "description": "Read a file",
                                               "parameters": {"type": "object"}}}]
    out = await graph.ainvoke({"messages": [HumanMessage("What does a.py do?")], "tools": tools}, cfg("t"))
    assert out["messages"][-1].tool_calls[0]["name"] == "read_file"
    assert "read_file: Read a file" in model.prompt_text(0)
    out = await graph.ainvoke({"messages": [ToolMessage("print('hello')", tool_call_id="call_1", name="read_file")]},
                              cfg("t"))
    assert out["messages"][-1].content == "It prints hello."
    assert "Tool result for call_1 (read_file)" in model.prompt_text(1)
    assert '"tool_calls": [{"id": "call_1"' in model.prompt_text(1)  # the earlier reply, in contract form


@pytest.mark.anyio
async def test_model_ignoring_the_contract_still_answers(settings, compiled):
    deps, graph = await compiled(FakeChatModel(["Plain words, no JSON."]))
    out = await graph.ainvoke({"messages": [HumanMessage("hi there")]}, cfg("p"))
    assert out["messages"][-1].content == "Plain words, no JSON."
    assert out["messages"][-1].response_metadata["contract"] == "fallback"


@pytest.mark.anyio
async def test_summary_folds_old_messages_and_reaches_the_prompt(settings, compiled):
    settings.recent_messages = 4
    settings.summary_trigger_messages = 6
    replies = []
    for i in range(5):
        replies.append(contract(f"answer {i}"))
        if i == 3:
            replies.append("The user's name is Ada and she likes Rust.")  # the summarise call
            replies.append('Here: [{"name": "Ada", "type": "person", "notes": "the user; likes Rust"}]')
    model = FakeChatModel(replies)
    deps, graph = await compiled(model)
    for i in range(5):
        out = await graph.ainvoke({"messages": [HumanMessage(f"question {i}")]}, cfg("sum"))
    state = await graph.aget_state(cfg("sum"))
    assert state.values["summary"] == "The user's name is Ada and she likes Rust."
    assert len(state.values["messages"]) <= 6
    assert "question 0" not in [m.content for m in state.values["messages"]]
    assert "Ada and she likes Rust" in model.prompt_text(-1)
    [ada] = deps.entities.list("default")
    assert (ada.name, ada.type, ada.source_session_id) == ("Ada", "person", "sum")
    assert out["messages"][-1].content == "answer 4"


@pytest.mark.anyio
async def test_a_broken_vector_store_degrades_recall_but_not_the_turn(settings, compiled):
    model = FakeChatModel([contract("first"), contract("second")])
    deps, graph = await compiled(model)
    await graph.ainvoke({"messages": [HumanMessage("The boat is named Calypso")]}, cfg("a"))
    await deps.indexer.drain()

    def broken(*args, **kwargs):
        raise RuntimeError("chroma is gone")

    deps.vectors.query = broken  # a real failure of the real store object's query path
    out = await graph.ainvoke({"messages": [HumanMessage("What is the boat named Calypso?")]}, cfg("b"))
    assert out["messages"][-1].content == "second"
    state = await graph.aget_state(cfg("b"))
    assert state.values["recalled"]["degraded"] is True
    assert "chroma is gone" in state.values["recalled"]["error"]
    assert "Calypso" in model.prompt_text(-1).split("Here are some relevant memories")[1]  # BM25 still recalls


@pytest.mark.anyio
async def test_a_turn_ends_at_persist_until_a_summary_is_due(settings, compiled):
    """A short session's turn is one run ending at persist: no second run for summarise."""
    deps, graph = await compiled(FakeChatModel([contract("first reply")]))
    async for _ in graph.astream({"messages": [HumanMessage("first", id="u1")]}, cfg("short"),
                                 interrupt_before=["summarise"], durability="exit"):
        pass
    state = await graph.aget_state(cfg("short"))
    assert state.next == () and [m.text for m in state.values["messages"]] == ["first", "first reply"]


@pytest.mark.anyio
async def test_a_turn_cut_between_its_two_runs_is_kept_and_settled(settings, compiled):
    """Once a summary is due, TurnRunner runs recall → persist (one checkpoint), replies, then summarise. A
    process that dies in between leaves the stored turn with summarise pending: the next turn keeps it,
    carries on, and summarises."""
    from server.turns.runner import TurnRequest, TurnRunner

    settings.summary_trigger_messages, settings.recent_messages = 4, 2
    replies = [contract(f"reply {i}") for i in (1, 2, 3, 4)]
    model = FakeChatModel([*replies[:3], replies[3], "The user counted to four.", "[]"])
    deps, graph = await compiled(model)
    for i, text in enumerate(("one", "two", "three")):
        async for _ in graph.astream({"messages": [HumanMessage(text, id=f"u{i}")]}, cfg("cut"),
                                     interrupt_before=["summarise"], durability="exit"):
            pass  # the third run stops before summarise; the process "dies" here: no second run
    assert (await graph.aget_state(cfg("cut"))).next == ("summarise",)
    runner = TurnRunner(graph, deps)
    events = [e async for e in runner.events(TurnRequest("cut", [HumanMessage("four")]))]
    assert events[-1].kind == "final" and events[-1].message.text == "reply 4"
    await runner.drain()
    state = await graph.aget_state(cfg("cut"))
    assert [m.text for m in state.values["messages"]] == ["four", "reply 4"]
    assert state.values["summary"] == "The user counted to four." and state.next == ()


@pytest.mark.anyio
async def test_two_conversations_starting_together_on_one_session_id_do_not_interleave(settings, compiled):
    """Claude Code's first message and its topic check arrive at once with one session id: whichever runs
    first keeps the session, the other moves to its side session once it holds the session's lock."""
    import asyncio

    from server.turns.runner import TurnRequest, TurnRunner

    deps, graph = await compiled(FakeChatModel([contract(f"reply {i}") for i in range(10)]))
    await asyncio.to_thread(deps.sessions.create, "both", "named", None)  # no naming call takes a reply
    runner = TurnRunner(graph, deps)

    async def turn(text: str, side: str) -> str:
        request = TurnRequest("both", [HumanMessage(text)], side_session=side)
        return [e async for e in runner.events(request)][-1].kind

    assert await asyncio.gather(turn("main task", "both:conv-a"), turn("topic check", "both:conv-b")) == [
        "final", "final"]
    await runner.drain()
    main = [m.text for m in (await graph.aget_state(cfg("both"))).values["messages"]]
    assert main in (["main task", "reply 0"], ["topic check", "reply 0"])
    moved = "both:conv-b" if main[0] == "main task" else "both:conv-a"
    assert len((await graph.aget_state(cfg(moved))).values["messages"]) == 2


@pytest.mark.anyio
async def test_a_session_whose_last_turn_ran_here_is_not_loaded_twice(settings, compiled):
    """The run loads the checkpoint itself; TurnRunner loads it beforehand only for sessions it has not
    seen end a turn (to repair a half turn), after a failed turn, and after the session was deleted."""
    import asyncio

    from server.turns.runner import TurnRequest, TurnRunner

    deps, graph = await compiled(FakeChatModel([contract("one"), contract("two"), contract("three")]))
    loads = []
    original = graph.aget_state

    async def counting(config, *args, **kwargs):
        loads.append(config["configurable"]["thread_id"])
        return await original(config, *args, **kwargs)

    graph.aget_state = counting
    await asyncio.to_thread(deps.sessions.create, "seen", "named", None)  # no naming call takes a reply
    runner = TurnRunner(graph, deps)

    async def turn(text: str) -> str:
        events = [e async for e in runner.events(TurnRequest("seen", [HumanMessage(text)]))]
        await runner.drain()
        return events[-1].message.text

    assert await turn("first") == "one" and len(loads) == 1
    assert await turn("second") == "two" and len(loads) == 1  # not loaded again
    runner.forget("seen")
    assert await turn("third") == "three" and len(loads) == 2
    state = await original(cfg("seen"))
    assert [m.text for m in state.values["messages"]][-2:] == ["third", "three"]


@pytest.mark.anyio
async def test_recall_uses_the_search_started_before_the_run_and_still_leaves_out_the_recent_window(
        settings, compiled, monkeypatch):
    from graph.config import DEFAULT_SCOPE
    from nodes.recall import PREFETCH_KEY, RecallPrefetch

    model = FakeChatModel([contract("Noted."), contract("Under the blue pot."), contract("Still there."),
                           contract("Under the pot.")])
    deps, graph = await compiled(model)
    await graph.ainvoke({"messages": [HumanMessage("Remember: the spare key is under the blue pot")]}, cfg("s1"))
    await deps.indexer.drain()
    searches = []
    search = deps.episodes.search
    monkeypatch.setattr(deps.episodes, "search", lambda *a: searches.append(a[1]) or search(*a))

    async def turn(session: str, text: str, prefetched: str) -> dict:
        config = cfg(session)
        config["configurable"][PREFETCH_KEY] = RecallPrefetch.start(deps, DEFAULT_SCOPE, prefetched)
        await graph.ainvoke({"messages": [HumanMessage(text)]}, config)
        return (await graph.aget_state(cfg(session))).values["recalled"]

    recalled = await turn("s2", "Where is the spare key?", "Where is the spare key?")
    assert any("blue pot" in e for e in recalled["episodes"]) and searches == ["Where is the spare key?"]
    assert "spare key is under the blue pot" in model.prompt_text(-1)  # searched once, before the run
    searches.clear()
    recalled = await turn("s2", "And the key?", "another question")  # not this turn's: searched again
    assert searches == ["another question", "And the key?"]
    # In s1 its own exchange is still in the recent window: that prefetched hit is left out, s2's are kept.
    recalled = await turn("s1", "Where is the spare key?", "Where is the spare key?")
    assert recalled["episodes"] and not any("Remember: the spare key" in e for e in recalled["episodes"])
    assert any("Under the blue pot." in e for e in recalled["episodes"])
