"""The dialogue graph from langgraph.json, run by `langgraph dev` (its own checkpointer) via langgraph_sdk."""

from __future__ import annotations

import pytest
from langgraph_sdk import get_client

from tests.dialogue_voices import Voice
from tests.fake_backend import FakeBackend
from tests.integration.servers import DevServer

pytestmark = pytest.mark.integration


@pytest.mark.anyio
async def test_the_dialogue_graph_runs_under_langgraph_dev(tmp_path):
    with FakeBackend(Voice("Configured")) as node, FakeBackend(Voice("Bob")) as bob, \
            DevServer(tmp_path, {"INFERENCE_BASE_URL": node.base_url}) as dev:
        client = get_client(url=dev.url)
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "dialogue", input={
            "topic": "glaciers", "min_turns": 1, "max_turns": 3,
            "participants": [{"name": "Ann"}, {"name": "Bob", "base_url": bob.base_url}]})
        assert [t["speaker"] for t in result["turns"]] == ["Ann", "Bob", "Ann"]
        assert result["ending_reason"] == "max_turns"
        assert result["turns"][1]["text"].startswith("Bob thinks of")
        assert len(node.requests) == 2 and len(bob.requests) == 1
