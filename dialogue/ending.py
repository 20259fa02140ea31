"""When a dialogue ends: a closing phrase or the end signal (once min_turns are done), max_turns, or a turn
that repeats an earlier one (word n-gram overlap, or MiniLM embedding similarity)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dialogue.state import RepetitionCheck

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def words(text: str) -> list[str]:
    """Lower-case words of a text."""
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The set of n-grams of a word list."""
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class EndingRules:
    """Thresholds and phrases (DIALOGUE_* settings)."""

    closing_phrases: tuple[str, ...] = ("goodbye", "bye for now", "talk to you later", "take care", "farewell")
    end_signal: str = "[END]"
    ngram: int = 3
    ngram_threshold: float = 0.6
    embedding_threshold: float = 0.95

    def strip_signal(self, text: str) -> tuple[str, bool]:
        """The text without the end signal, and whether it carried it."""
        if self.end_signal and self.end_signal in text:
            return text.replace(self.end_signal, "").strip(), True
        return text.strip(), False

    def closes(self, text: str) -> bool:
        """Does the turn's last sentence say goodbye? Only the end counts: "say goodbye to coal" mid-turn
        is not a farewell."""
        sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
        last = " ".join(words(sentences[-1])) if sentences else ""
        return any(re.search(rf"\b{re.escape(' '.join(words(p)))}\b", last) for p in self.closing_phrases if p)

    def repetition(self, earlier: list[str], text: str, embed: Callable[[str], list[float]] | None
                   ) -> RepetitionCheck:
        """How close `text` comes to the closest earlier turn. Turns shorter than n words compare whole."""
        if not earlier:
            return RepetitionCheck(ngram_overlap=0.0, similarity=0.0)
        mine = words(text)
        grams = ngrams(mine, self.ngram)
        overlap = 0.0
        for other in earlier:
            theirs = words(other)
            if not grams:
                score = 1.0 if mine == theirs else 0.0
            else:
                score = len(grams & ngrams(theirs, self.ngram)) / len(grams)
            overlap = max(overlap, score)
        similarity = 0.0
        if embed is not None:
            vector = np.asarray(embed(text), dtype=np.float32)
            others = np.asarray([embed(other) for other in earlier], dtype=np.float32)
            similarity = float(np.max(others @ vector))  # the vectors are L2-normalised
        return RepetitionCheck(ngram_overlap=round(overlap, 4), similarity=round(similarity, 4))

    def repeats(self, check: RepetitionCheck) -> bool:
        """Is the turn a repetition?"""
        return check["ngram_overlap"] >= self.ngram_threshold or check["similarity"] >= self.embedding_threshold


def decide(rules: EndingRules, text: str, signalled: bool, check: RepetitionCheck, turns: int, min_turns: int,
           max_turns: int) -> str | None:
    """The ending reason after a turn, or None to go on. Repetition ends a dialogue at any length (going on
    would only add more of it); a farewell or the signal only once `min_turns` turns are done."""
    if rules.repeats(check):
        return "repetition"
    if turns >= min_turns:
        if signalled:
            return "end_signal"
        if rules.closes(text):
            return "closing_phrase"
    if turns >= max_turns:
        return "max_turns"
    return None
