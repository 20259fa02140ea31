"""Naming a new session: a short second inference proposes a title; a title that is no title is refused.

Small models asked for a title often answer with the conversation itself: "User: I'm here to help with
any math problem…" (a role label, words copied from the exchange, a sentence rather than a title). Such an
answer is refused, and the session is named from its first user message instead, so a session list
never shows a transcript line as a name.
"""

from __future__ import annotations

import asyncio
import logging
import re

from langchain_core.messages import HumanMessage

import prompts
from graph.deps import Deps

log = logging.getLogger(__name__)

MAX_NAME_WORDS = 6
"""The prompt asks for 2 to 6 words; a longer answer is a sentence, not a title."""
MAX_NAME_CHARS = 60
ECHO_WORDS = 4
"""A run of this many words copied from the exchange (or the instruction) is an echo, not a title."""
_ROLE_LABEL = re.compile(r"(?:^|[\s\"'(\[*#])(user|assistant|system|human)\s*:", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _echoes(name: str, source: str) -> bool:
    """Whether `name` copies a run of ECHO_WORDS words of `source` (or, shorter, the whole of `source`)."""
    words, text = _words(name), f" {' '.join(_words(source))} "
    if not words or not text.strip():
        return False
    if len(words) < ECHO_WORDS:
        return f" {' '.join(words)} " == text  # a short name may use the user's words, not be all of them
    return any(f" {' '.join(words[i:i + ECHO_WORDS])} " in text for i in range(len(words) - ECHO_WORDS + 1))


def clean_name(text: str) -> str:
    """First line, without quotes, markup, a `Title:` prefix or a trailing period."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.strip().strip("#*`\"' ")
    line = re.sub(r"^title\s*:", "", line, flags=re.IGNORECASE).strip().strip("\"' ").rstrip(".…")
    return line.strip()


def refusal(name: str, user: str, assistant: str) -> str | None:
    """Why `name` (cleaned) is no title for this exchange, or None when it is one."""
    if not _words(name):
        return "empty"
    if _ROLE_LABEL.search(f" {name}"):
        return "carries a role label"
    if len(_words(name)) > MAX_NAME_WORDS or len(name) > MAX_NAME_CHARS:
        return "too long"
    instruction = prompts.render("name_session", user="", assistant="")
    if any(_echoes(name, source) for source in (user, assistant, instruction)):
        return "echoes the conversation"
    return None


def fallback_name(user: str) -> str:
    """A name from the first user message: its first sentence, MAX_NAME_WORDS words at most."""
    line = " ".join(next((ln for ln in user.splitlines() if ln.strip()), "").split())
    sentence = re.split(r"(?<=[.!?])\s", line, maxsplit=1)[0].rstrip(".!?")
    words = sentence.split()
    name = " ".join(words[:MAX_NAME_WORDS])[:MAX_NAME_CHARS].rstrip(" ,;:")
    if not name:
        return ""
    cut = len(words) > MAX_NAME_WORDS or len(" ".join(words)) > MAX_NAME_CHARS
    return name[0].upper() + name[1:] + ("…" if cut else "")


def choose_name(proposed: str, user: str, assistant: str) -> str:
    """The model's title if it is one, else a name made from the first user message ("" if there is none)."""
    name = clean_name(proposed)
    why = refusal(name, user, assistant)
    if why is None:
        return name
    log.info("session name %r refused (%s); named from the first message", name[:80], why)
    return fallback_name(user)


async def name_session(deps: Deps, session_id: str, user: str, assistant: str) -> None:
    """A short second inference names a new session; failures are logged, never raised, and fall back to
    a name made from the first user message."""
    prompt = prompts.render("name_session", user=user[:1000], assistant=assistant[:1000])
    try:
        model = deps.chat_model.bind(temperature=0.3, extra_body={"max_tokens": 20})
        reply = await model.ainvoke([HumanMessage(prompt)])
        proposed: str = reply.text
    except Exception as exc:
        log.warning("naming session %s failed: %r", session_id, exc)
        proposed = ""
    name = choose_name(proposed, user, assistant)
    if name:
        try:
            await asyncio.to_thread(deps.sessions.set_name_if_unnamed, session_id, name)
        except Exception as exc:
            log.warning("naming session %s failed: %r", session_id, exc)
