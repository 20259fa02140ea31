"""The checkpoint half of `orchestrator migrate`: every checkpoint of a SQLite store, with its parent and pending
writes, read back the same from Postgres; a second run changes nothing."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from server.migrate import Moved, copy_checkpoints
from tests.fakes import FakeChatModel, contract

pytestmark = pytest.mark.anyio


async def test_checkpoints_move_to_postgres_with_their_history(settings, compiled, postgres):
    model = FakeChatModel([contract("first answer"), contract("second answer"), contract("other answer")])
    _, graph = await compiled(model)
    for thread, text in (("s1", "hello"), ("s1", "and again"), ("s2", "elsewhere")):
        await graph.ainvoke({"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread}})
    source = graph.checkpointer
    assert source is not None
    url = postgres.database("ckpt")

    moved = Moved()
    await copy_checkpoints(settings.checkpoints_path, url, moved)
    count = sum([1 async for _ in source.alist(None)])
    assert moved.checkpoints == count > 4

    async with AsyncPostgresSaver.from_conn_string(url) as target:
        for thread in ("s1", "s2"):
            config = {"configurable": {"thread_id": thread}}
            want = [t async for t in source.alist(config)]
            got = [t async for t in target.alist(config)]
            assert [t.checkpoint["id"] for t in got] == [t.checkpoint["id"] for t in want]
            assert [(t.parent_config or {}).get("configurable", {}).get("checkpoint_id") for t in got] == \
                [(t.parent_config or {}).get("configurable", {}).get("checkpoint_id") for t in want]
            assert got[0].checkpoint["channel_values"]["messages"] == want[0].checkpoint["channel_values"]["messages"]
            assert sorted(map(str, got[0].pending_writes or [])) == sorted(map(str, want[0].pending_writes or []))

    again = Moved()
    await copy_checkpoints(settings.checkpoints_path, url, again)
    async with AsyncPostgresSaver.from_conn_string(url) as target:
        assert sum([1 async for _ in target.alist(None)]) == count
