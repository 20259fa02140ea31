"""infer: one call to the inference node over the OpenAI protocol (streamed when the caller streams)."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from graph.config import RunOptions
from graph.contract import contract_response_format, reply_text_limit
from graph.contract_stream import ContractTextStream
from graph.declared_tools import declared_names
from graph.deps import Deps
from graph.semantic import cached_reply
from graph.state import Node, State
from graph.usage import prompt_estimate, with_usage


def make_infer(deps: Deps) -> Node:
    """Build the infer node."""
    streaming_model = ContractTextStream(inner=deps.chat_model)
    routed = {label: ContractTextStream(inner=model)
              for label, model in (deps.router.models if deps.router else {}).items()}

    async def infer(state: State, config: RunnableConfig) -> dict[str, Any]:
        """Send the assembled prompt (to the backend and model of the turn's route, within its reply limit),
        unless the semantic cache holds the answer. Streaming callers get the response text token by token."""
        opts = RunOptions.from_config(config)
        route = state.get("route") or {}
        kwargs = opts.inference_kwargs(deps.limits.max_tokens)
        if route.get("max_tokens"):  # the class's reply limit caps the client's or the default one
            kwargs["extra_body"]["max_tokens"] = min(kwargs["extra_body"]["max_tokens"], int(route["max_tokens"]))
        if route.get("model"):
            kwargs["model"] = route["model"]
        cached = await cached_reply(deps, state, config, kwargs.get("model"))
        if cached is not None:
            return {"raw_output": with_usage(cached, prompt_estimate(state["prompt"], state.get("prompt_stats"))),
                    "route": {**route, "cache": "hit"}}
        response_format = contract_response_format(deps.contract, reply_text_limit(kwargs["extra_body"]["max_tokens"]),
                                                   declared_names(state.get("tools")))
        if response_format:
            kwargs["extra_body"]["response_format"] = response_format
        model = routed.get(route.get("class") or "", streaming_model).bind(**kwargs)
        reply = await model.ainvoke(state["prompt"], config)
        # Counts the node did not give are estimated here, once, for every door (never zeros).
        return {"raw_output": with_usage(reply, prompt_estimate(state["prompt"], state.get("prompt_stats")))}

    return infer

