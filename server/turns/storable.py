"""What the service can store, checked before a turn starts (with MAX_MESSAGE_CHARS); and failures of its own
storage, named as such.

A turn's input is saved in its checkpoint (msgpack) and its episode (SQLite text). Neither holds an integer
outside 64 bits (msgpack's range) nor a string with a lone surrogate (not UTF-8: `"\\ud800"` is valid JSON).
Such input is the client's mistake, refused with a 400 that names the field, instead of a run that fails
at its end. A failure of the stores themselves (a locked or read-only database, a full disk) is the
service's: a 500 that says so, never blamed on the inference node.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from langchain_core.messages import BaseMessage

from server.errors import ApiError
from server.turns.types import BadTurn

INT_RANGE = (-(2**63), 2**64 - 1)
MESSAGE_FIELDS = ("content", "additional_kwargs", "response_metadata", "tool_calls", "name", "id",
                  "tool_call_id", "artifact")


def unstorable(value: Any, path: str) -> tuple[str, str] | None:
    """(where, what is wrong) for the first value under `path` that cannot be stored; None if all can."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return where, f"{where}: a string with a lone surrogate (not valid UTF-8) cannot be stored"
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        elif isinstance(item, int):
            if not INT_RANGE[0] <= item <= INT_RANGE[1]:
                # Its bit length, not its digits: Python refuses to print integers over 4300 digits.
                return where, (f"{where}: an integer of {item.bit_length()} bits is outside the 64-bit range "
                               "that can be stored")
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and unstorable(key, where) is not None:
                    return where, f"{where}: a key with a lone surrogate (not valid UTF-8) cannot be stored"
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def turn_input_problem(messages: list[BaseMessage], system: str | None,
                       tools: list[dict] | None) -> tuple[str, str] | None:
    """(field, why) a turn's new messages, system prompt or tools cannot be stored (the first found), or None."""
    for i, message in enumerate(messages):
        for name in MESSAGE_FIELDS:
            problem = unstorable(getattr(message, name, None), f"messages[{i}].{name}")
            if problem:
                return problem
    return unstorable(system, "system") or unstorable(tools, "tools")


def check_turn_input(fresh: list[BaseMessage], system: str | None, tools: list[dict] | None,
                     max_chars: int) -> None:
    """BadTurn for new messages over `max_chars` (MAX_MESSAGE_CHARS) or values the checkpoint could not store.
    New messages only: clients that resend the whole history (Anthropic's API, Claude Code) must not be locked
    out by a long message the session already holds."""
    for message in fresh:
        if len(message.text) > max_chars:
            raise BadTurn(f"a message has {len(message.text)} characters; at most {max_chars} are accepted "
                          "(MAX_MESSAGE_CHARS)")
    problem = turn_input_problem(fresh, system, tools)
    if problem:  # refused now, not by the checkpoint's write at the end of the run
        raise BadTurn(problem[1], param=problem[0])


def body_problem(body: Any) -> tuple[str, str] | None:
    """`turn_input_problem` for a raw JSON body (LangServe's, checked before its stream starts: its events
    echo the input, and an integer beyond 64 bits cuts the stream while it is serialised)."""
    if isinstance(body, dict):
        for key, value in body.items():
            problem = unstorable(value, str(key))
            if problem:
                return problem
    return None


def storage_error(exc: BaseException) -> ApiError:
    """The 500 for a turn our own storage could not keep."""
    return ApiError(500, f"The service could not store the turn (its own storage failed; the inference node "
                    f"is not at fault), so nothing of it was kept: {type(exc).__name__}: {exc}",
                    type_="storage_error", code="storage_failed")


def is_storage_failure(exc: BaseException) -> bool:
    """A failure of SQLite (the checkpoints or the memory database)."""
    return isinstance(exc, sqlite3.Error)
