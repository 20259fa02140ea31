"""Per-run values, parsed from `config["configurable"]` in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

DEFAULT_SCOPE = "default"


@dataclass(frozen=True)
class RunOptions:
    """Session, memory scope and inference overrides of one run."""

    thread_id: str
    scope: str = DEFAULT_SCOPE
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None

    @classmethod
    def from_config(cls, config: RunnableConfig | None) -> RunOptions:
        """Read the options from a run's config; unknown keys are ignored."""
        conf: dict[str, Any] = dict((config or {}).get("configurable") or {})
        stop = conf.get("stop")
        return cls(
            thread_id=str(conf.get("thread_id") or "default"),
            scope=str(conf.get("scope") or DEFAULT_SCOPE),
            model=conf.get("model") or None,
            temperature=conf.get("temperature"),
            max_tokens=conf.get("max_tokens"),
            top_p=conf.get("top_p"),
            stop=[stop] if isinstance(stop, str) else stop,
        )

    def inference_kwargs(self, default_max_tokens: int) -> dict[str, Any]:
        """Keyword arguments for the chat model call.

        `max_tokens` goes in the body as such: llama.cpp's server ignores `max_completion_tokens`,
        which is what langchain-openai would otherwise send.
        """
        kwargs: dict[str, Any] = {"extra_body": {"max_tokens": self.max_tokens or default_max_tokens}}
        if self.model:
            kwargs["model"] = self.model
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        if self.stop:
            kwargs["stop"] = self.stop
        return kwargs
