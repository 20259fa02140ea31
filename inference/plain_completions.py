"""The openai SDK's chat completions call without its parameter transform, through the SDK's public API only.

`AsyncCompletions.create` walks the whole request through `async_maybe_transform` (aliases and formats
for typed params) before sending it. For the plain JSON dicts langchain-openai builds, that walk changes
nothing and costs ~2-3 ms a call for a 14-message prompt, five times the HTTP round trip to a local node.
This subclass sends the body as it is with the client's public `post`; retries, timeouts, typed errors and
stream parsing stay the SDK's. (tests/unit/test_plain_completions.py checks the body equals the SDK's own.)
"""

from __future__ import annotations

from typing import Any

from openai import NOT_GIVEN, AsyncOpenAI, AsyncStream, NotGiven, Omit, RequestOptions
from openai.resources.chat.completions import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk


def request_options(extra_headers: Any = None, extra_query: Any = None, extra_body: Any = None,
                    timeout: Any = NOT_GIVEN) -> RequestOptions:
    """The per-request options `create` takes as keyword arguments, as the public `RequestOptions`."""
    options: RequestOptions = {"security": {"bearer_auth": True}}  # as `create` asks: the API key as a bearer
    if extra_headers is not None:
        options["headers"] = extra_headers
    if extra_query is not None:
        options["params"] = extra_query
    if extra_body is not None:
        options["extra_json"] = extra_body
    if not isinstance(timeout, NotGiven):
        options["timeout"] = timeout
    return options


class PlainCompletions(AsyncCompletions):
    """`client.chat.completions` whose `create` posts the parameters untransformed."""

    def __init__(self, client: AsyncOpenAI) -> None:
        super().__init__(client)
        self.plain_client = client

    # One signature for the SDK's overloads: langchain-openai calls it with keyword arguments only.
    async def create(  # type: ignore[override]
            self, *, extra_headers: Any = None, extra_query: Any = None, extra_body: Any = None,
            timeout: Any = NOT_GIVEN, **params: Any) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        body = {k: v for k, v in params.items() if not isinstance(v, NotGiven | Omit)}
        return await self.plain_client.post(
            "/chat/completions",
            body=body,
            options=request_options(extra_headers, extra_query, extra_body, timeout),
            cast_to=ChatCompletion,
            stream=bool(body.get("stream")),
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
