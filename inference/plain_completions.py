"""The openai SDK's chat completions call without its parameter transform.

`AsyncCompletions.create` walks the whole request through `async_maybe_transform` (aliases and formats
for typed params) before sending it. For the plain JSON dicts langchain-openai builds, that walk changes
nothing and costs ~2-3 ms a call for a 14-message prompt, five times the HTTP round trip to a local node.
This subclass sends the body as it is; retries, timeouts, typed errors and stream parsing stay the SDK's.
"""

from __future__ import annotations

from typing import Any

from openai._base_client import make_request_options
from openai._streaming import AsyncStream
from openai._types import NOT_GIVEN, NotGiven, Omit
from openai.resources.chat.completions import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk


class PlainCompletions(AsyncCompletions):
    """`client.chat.completions` whose `create` posts the parameters untransformed."""

    async def create(self, *, extra_headers: Any = None, extra_query: Any = None, extra_body: Any = None,
                     timeout: Any = NOT_GIVEN, **params: Any) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        body = {k: v for k, v in params.items() if not isinstance(v, NotGiven | Omit)}
        return await self._post(
            "/chat/completions",
            body=body,
            options=make_request_options(extra_headers=extra_headers, extra_query=extra_query,
                                         extra_body=extra_body, timeout=timeout, security={"bearer_auth": True}),
            cast_to=ChatCompletion,
            stream=bool(body.get("stream")),
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
