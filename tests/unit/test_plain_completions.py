"""`PlainCompletions` sends exactly what the openai SDK's own `chat.completions.create` sends (body, path and
auth), through the SDK's public API only."""

from __future__ import annotations

import ast
import inspect

import pytest
from openai import AsyncOpenAI

import inference.plain_completions as plain_module
from inference.plain_completions import PlainCompletions
from tests.fake_backend import FakeBackend

# What langchain-openai passes for a turn: messages, model, stream flags, and the node's extras in extra_body.
PARAMS = {
    "model": "fake-model",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
                 {"role": "assistant", "content": None,
                  "tool_calls": [{"id": "call_1", "type": "function",
                                  "function": {"name": "read_file", "arguments": "{\"path\": \"a.py\"}"}}]},
                 {"role": "tool", "tool_call_id": "call_1", "content": "print(1)"}],
    "temperature": 0.2,
    "tools": [{"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}}}}],
    "extra_body": {"max_tokens": 64, "response_format": {"type": "json_object", "schema": {"type": "object"}}},
    "extra_headers": {"X-Trace": "t-1"},
}


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_the_body_equals_what_the_sdk_sends(stream):
    params = {**PARAMS, **({"stream": True, "stream_options": {"include_usage": True}} if stream else {})}
    with FakeBackend() as node:
        client = AsyncOpenAI(base_url=node.base_url, api_key="sk-test", max_retries=0)
        replies = [await client.chat.completions.create(**params), await PlainCompletions(client).create(**params)]
        if stream:
            replies = [[chunk async for chunk in reply] for reply in replies]
            assert replies[0] == replies[1] and replies[1][-1].usage is not None
        else:
            assert replies[1].choices[0].message.content == replies[0].choices[0].message.content
        await client.close()
    sdk, plain = node.requests
    assert plain == sdk
    for headers in node.request_headers:
        assert headers["authorization"] == "Bearer sk-test" and headers["x-trace"] == "t-1"


def test_no_private_sdk_module_is_imported():
    tree = ast.parse(inspect.getsource(plain_module))
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    private = [name for name in imported
               if name and name.startswith("openai") and any(part.startswith("_") for part in name.split("."))]
    assert private == []
