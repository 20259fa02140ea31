"""A request in the shape Claude Code sends to `POST /v1/messages?beta=true`.

Modelled on recorded Claude Code traffic: the system prompt as text blocks with `cache_control`
(tens of thousands of characters, the environment block with the working directory at its end), its
built-in tools with long, multi-paragraph descriptions and draft-07 input schemas, `metadata.user_id`
naming the session, user content with `<system-reminder>` blocks, and the headers it sets. The texts
are stand-ins of the same size and structure, not Anthropic's.
"""

from __future__ import annotations

import uuid
from typing import Any

SCHEMA = "http://json-schema.org/draft-07/schema#"
_GUIDANCE = (
    "Follow the conventions of the codebase; read files before editing them; prefer small, verifiable steps. "
    "Never invent file paths, commands or APIs: look them up first. Keep answers short unless asked for detail. "
)

_PARAMS: dict[str, dict[str, tuple[str, str]]] = {
    "Task": {"description": ("string", "A short (3-5 word) description of the task"),
             "prompt": ("string", "The task for the agent to perform"),
             "subagent_type": ("string", "The type of specialized agent to use for this task")},
    "Bash": {"command": ("string", "The command to execute"),
             "timeout": ("number", "Optional timeout in milliseconds (max 600000)"),
             "description": ("string", "Clear, concise description of what this command does in 5-10 words"),
             "run_in_background": ("boolean", "Set to true to run this command in the background")},
    "Glob": {"pattern": ("string", "The glob pattern to match files against"),
             "path": ("string", "The directory to search in. Defaults to the current working directory.")},
    "Grep": {"pattern": ("string", "The regular expression pattern to search for in file contents"),
             "path": ("string", "File or directory to search in"),
             "glob": ("string", "Glob pattern to filter files"),
             "output_mode": ("string", "Output mode: content, files_with_matches or count"),
             "-i": ("boolean", "Case insensitive search"),
             "-n": ("boolean", "Show line numbers in output"),
             "head_limit": ("number", "Limit output to first N lines/entries")},
    "ExitPlanMode": {"plan": ("string", "The plan you came up with, that you want to run by the user")},
    "Read": {"file_path": ("string", "The absolute path to the file to read"),
             "offset": ("number", "The line number to start reading from"),
             "limit": ("number", "The number of lines to read")},
    "Edit": {"file_path": ("string", "The absolute path to the file to modify"),
             "old_string": ("string", "The text to replace"),
             "new_string": ("string", "The text to replace it with (must be different from old_string)"),
             "replace_all": ("boolean", "Replace all occurences of old_string (default false)")},
    "MultiEdit": {"file_path": ("string", "The absolute path to the file to modify"),
                  "edits": ("array", "Array of edit operations to perform sequentially on the file")},
    "Write": {"file_path": ("string", "The absolute path to the file to write (must be absolute)"),
              "content": ("string", "The content to write to the file")},
    "NotebookEdit": {"notebook_path": ("string", "The absolute path to the Jupyter notebook file to edit"),
                     "cell_id": ("string", "The ID of the cell to edit"),
                     "new_source": ("string", "The new source for the cell"),
                     "edit_mode": ("string", "The type of edit to make (replace, insert, delete)")},
    "WebFetch": {"url": ("string", "The URL to fetch content from"),
                 "prompt": ("string", "The prompt to run on the fetched content")},
    "TodoWrite": {"todos": ("array", "The updated todo list")},
    "BashOutput": {"bash_id": ("string", "The ID of the background shell to retrieve output from"),
                   "filter": ("string", "Optional regular expression to filter the output lines")},
    "KillShell": {"shell_id": ("string", "The ID of the background shell to kill")},
    "SlashCommand": {"command": ("string", "The slash command to execute with its arguments")},
    "ListMcpResourcesTool": {"server": ("string", "Optional server name to filter resources by")},
    "ReadMcpResourceTool": {"server": ("string", "The MCP server name"), "uri": ("string", "The resource URI")},
    "mcp__git__status": {"repo_path": ("string", "Path to the git repository")},
    "mcp__git__diff": {"repo_path": ("string", "Path to the git repository"),
                       "target": ("string", "The branch or commit to diff against")},
    "mcp__git__log": {"repo_path": ("string", "Path to the git repository"),
                      "max_count": ("number", "Maximum number of commits to show")},
    "mcp__tests__run": {"path": ("string", "Test file or directory"), "filter": ("string", "Test name filter")},
}


def tool(name: str, params: dict[str, tuple[str, str]], paragraphs: int = 8) -> dict[str, Any]:
    """One tool as Claude Code defines it: a long usage guide and a strict draft-07 schema."""
    lines = [f"Use the {name} tool when the task calls for it. It is one of the built-in tools."]
    for i in range(paragraphs):
        lines.append(f"Usage note {i + 1}:\n- " + _GUIDANCE + f"\n- When using {name}, check the result before "
                     "relying on it, and report failures plainly instead of retrying blindly.")
    properties = {p: {"type": t, "description": d} for p, (t, d) in params.items()}
    for spec in properties.values():
        if spec["type"] == "array":
            spec["items"] = {"type": "object", "properties": {"content": {"type": "string"}}}
    return {"name": name, "description": "\n\n".join(lines), "input_schema": {
        "type": "object", "properties": properties, "required": [next(iter(params))],
        "additionalProperties": False, "$schema": SCHEMA}}


def system_blocks(cwd: str, size_chars: int = 60_000) -> list[dict[str, Any]]:
    """Claude Code's system prompt: identity, a long body of instructions, then the environment."""
    body, n = [], 0
    while sum(len(p) for p in body) < size_chars:
        n += 1
        body.append(f"# Guideline {n}\n{_GUIDANCE * 3}\n<example>\nuser: run the tests\nassistant: [runs them]\n"
                    "</example>\n")
    env = (f"<env>\nWorking directory: {cwd}\nIs directory a git repo: Yes\nPlatform: linux\n"
           "OS Version: Linux 6.8.0\nToday's date: 2026-11-22\n</env>\nYou are powered by the model "
           "claude-sonnet-4-5.\n\ngitStatus: This is the git status at the start of the conversation.\n"
           "Current branch: main\n\nStatus:\n(clean)")
    return [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
         "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "\n".join(body) + "\n\n" + env, "cache_control": {"type": "ephemeral"}},
    ]


def request(cwd: str = "/home/dev/projects/webapp", user_text: str = "Where is the config loaded?",
            session: str | None = None, stream: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """A first-turn request body and its headers."""
    session = session or str(uuid.uuid4())
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "system": system_blocks(cwd),
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, you can use the "
             "following context: the project's CLAUDE.md says to run `make test` before committing.\n"
             "</system-reminder>"},
            {"type": "text", "text": user_text, "cache_control": {"type": "ephemeral"}},
        ]}],
        "tools": [tool(name, params) for name, params in _PARAMS.items()],
        "metadata": {"user_id": f"user_{'a' * 64}_account__session_{session}"},
        "temperature": 1,
        "stream": stream,
    }
    headers = {"X-Claude-Code-Session-Id": session, "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
               "x-app": "cli", "User-Agent": "claude-cli/2.0.0 (external, cli)"}
    return body, headers
