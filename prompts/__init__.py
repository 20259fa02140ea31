"""Prompt templates with named `{placeholders}`, filled with `.format()` when a node runs."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def template(name: str) -> str:
    """The text of `prompts/<name>.md`."""
    return files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8").strip()


def render(template_name: str, /, **values: str) -> str:
    """Fill a template's placeholders."""
    return template(template_name).format(**values)
