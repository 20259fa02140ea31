"""Token usage of streamed replies, through the official `openai` and `anthropic` SDKs against the real server:
the node's own counts when it reports them, else the estimate `count_tokens` uses; never zeros.

Two scripted nodes: one reports usage as OpenAI and llama.cpp's server do (in a stream only when asked with
`stream_options.include_usage`), one never does (as llama-cpp-python's server, the embedded node, in a stream).
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from graph.budget import estimate_tokens
from tests.fake_backend import FakeBackend, default_responder
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["reporting", "silent"])
def node_and_service(request, tmp_path_factory):
    """(node, service) for a node that reports usage, then for one that does not."""
    with FakeBackend(usage=request.param == "reporting") as node:
        data = tmp_path_factory.mktemp(f"usage-{request.param}")
        with ServiceProcess(data, {"INFERENCE_BASE_URL": node.base_url, "INFERENCE_MODEL": "fake-model"}) as svc:
            yield node, svc


def gpt(service, session: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.base_url + "/v1", api_key="unused", max_retries=0,
                         default_headers={"X-Session-Id": session, "X-Project-Id": session})


def claude(service, session: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=service.base_url, api_key="unused", max_retries=0,
                               default_headers={"X-Session-Id": session, "X-Project-Id": session})


def expected(node: FakeBackend, estimated_prompt: int) -> tuple[int, int]:
    """(input, output) tokens the last turn should report: the node's, else the estimates."""
    reported = node.turn_usages()[-1]
    if reported is not None:
        return reported["prompt_tokens"], reported["completion_tokens"]
    return estimated_prompt, estimate_tokens(default_responder(last_turn(node)))  # the raw reply's estimate


def last_turn(node: FakeBackend) -> dict:
    """The node's last conversation-turn request (not a naming or summary request)."""
    return [b for b in node.requests if b["messages"][0]["role"] == "system"][-1]


def prompt_estimate(service, session: str, text: str) -> int:
    """What `count_tokens` says the turn's prompt is, asked before the turn (fresh session and project)."""
    return claude(service, session).messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": text}]).input_tokens


def test_openai_stream_reports_usage(node_and_service):
    node, service = node_and_service
    text = "count the tokens of this streamed reply"
    estimate = prompt_estimate(service, "oa-stream", text)
    stream = gpt(service, "oa-stream").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True})
    usage = [c.usage for c in stream if c.usage is not None][-1]
    assert last_turn(node)["stream_options"] == {"include_usage": True}  # the node is asked for its counts
    prompt, completion = expected(node, estimate)
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion)
    assert prompt > 0 and completion > 0 and usage.total_tokens == prompt + completion


def test_openai_plain_reply_reports_usage(node_and_service):
    node, service = node_and_service
    text = "count the tokens of this plain reply"
    estimate = prompt_estimate(service, "oa-plain", text)
    reply = gpt(service, "oa-plain").chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": text}])
    prompt, completion = expected(node, estimate)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt, completion)
    assert prompt > 0 and completion > 0


def test_anthropic_stream_reports_usage(node_and_service):
    node, service = node_and_service
    text = "count the tokens of this anthropic stream"
    estimate = prompt_estimate(service, "an-stream", text)
    with claude(service, "an-stream").messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": text}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == f"You said: {text}"
    prompt, completion = expected(node, estimate)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (prompt, completion)
    assert prompt > 0 and completion > 0
