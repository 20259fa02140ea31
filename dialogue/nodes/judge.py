"""judge: the repetition check of the last turn, and whether the dialogue ends there."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.runnables import RunnableConfig

from dialogue.deps import DialogueDeps
from dialogue.ending import decide
from dialogue.state import DialogueState

log = logging.getLogger(__name__)


def make_judge(deps: DialogueDeps):
    """Build the judge node."""
    embed = deps.embedder.embed_one if deps.embedder is not None else None

    async def judge(state: DialogueState, config: RunnableConfig) -> dict[str, Any]:
        """Score the last turn against the earlier ones and decide. The embedder remembers recent texts, so
        each turn is embedded once per dialogue, not once per later check."""
        turns = state["turns"]
        text = turns[-1]["text"]
        earlier = [t["text"] for t in turns[:-1]]
        try:
            check = await asyncio.to_thread(deps.rules.repetition, earlier, text, embed)
        except Exception as exc:  # the embedder failing costs the similarity half of the check, not the dialogue
            log.warning("repetition check without embeddings: %r", exc)
            check = await asyncio.to_thread(deps.rules.repetition, earlier, text, None)
        reason = decide(deps.rules, text, bool(state.get("end_signalled")), check, len(turns),
                        state["min_turns"], state["max_turns"])
        return {"checks": [check], "ending_reason": reason}

    return judge
