"""What LangServe's chat playground needs to see in `/agent`'s schemas to offer its chat.

The playground (langserve 0.3.3's bundled page) shows its chat only if the input schema has a single key, a
list of messages, and the output schema is a string or a union with a member whose `type` has an `enum`
holding "ai". Pydantic 2 writes a one-value `Literal` as `const` only (older versions wrote `enum` too), so
the output schema below writes both: the same constraint, in both spellings.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from pydantic import RootModel


def with_const_enums(schema: Any) -> Any:
    """The schema with `"enum": [x]` beside each `"const": x` (JSON Schema reads both the same)."""
    if isinstance(schema, dict):
        out = {key: with_const_enums(value) for key, value in schema.items()}
        if "const" in out and "enum" not in out:
            out["enum"] = [out["const"]]
        return out
    if isinstance(schema, list):
        return [with_const_enums(item) for item in schema]
    return schema


class AgentOutput(RootModel[AIMessage | AIMessageChunk]):
    """What `/agent` answers: an AI message (`invoke`), or its chunks (`stream`), tool calls on the last."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Pydantic's schema, with each `const` also written as an `enum` (see the module docstring)."""
        return with_const_enums(super().model_json_schema(*args, **kwargs))
