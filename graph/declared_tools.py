"""Tool calls held to the tools the client declared: a call the client cannot run never reaches it.

A small model asked for `get_weather` may still call `weather-today`, or pass arguments its schema
forbids; a client that gets such a call fails on it (or loops). When the client declared tools, a call to
another name, or with arguments that do not validate against the declared JSON schema, is dropped and
recorded; the reply's text stands. A client that declared no tools is not checked (LangServe and
`langgraph dev` callers may describe tools in their own prompts).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError


def declared_names(tools: list[dict[str, Any]] | None) -> list[str]:
    """The names of the declared tools (OpenAI function format, or bare `{"name": ...}`), in order."""
    names = []
    for tool in tools or []:
        name = (tool.get("function") or tool).get("name")
        if name and name not in names:
            names.append(name)
    return names


def _schema_problem(schema: Any, arguments: dict[str, Any]) -> str | None:
    """Why `arguments` do not satisfy `schema`, or None. A schema that is not valid JSON schema checks nothing:
    the client's mistake is no reason to withhold a call it asked for."""
    if not isinstance(schema, dict) or not schema:
        return None
    cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    # No format checker and no remote $ref retrieval (the `referencing` default): nothing leaves the machine.
    error = next(iter(cls(schema).iter_errors(arguments)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"arguments{' at ' + where if where else ''}: {error.message}"[:300]


def check_calls(calls: list[dict[str, Any]], tools: list[dict[str, Any]] | None
                ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(calls kept, calls dropped as `{"name", "reason"}`). Without declared tools every call is kept."""
    if not tools:
        return list(calls), []
    schemas: dict[str | None, Any] = {}
    for tool in tools:
        fn = tool.get("function") or tool
        schemas.setdefault(fn.get("name"), fn.get("parameters") or fn.get("input_schema"))
    kept, dropped = [], []
    for call in calls:
        name = call.get("name")
        if name not in schemas:
            dropped.append({"name": str(name), "reason": "not a declared tool"})
            continue
        problem = _schema_problem(schemas[name], call.get("args") or {})
        if problem:
            dropped.append({"name": str(name), "reason": problem})
            continue
        kept.append(call)
    return kept, dropped
