"""What the dialogue nodes use, built once by the caller (the service, the studio factory or a test)."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from config.settings import Settings
from dialogue.ending import EndingRules
from dialogue.participants import ParticipantModels
from memory.embedder import Embedder


@dataclass(frozen=True)
class DialogueDeps:
    """The participants' models, the embedder the repetition check uses, and the ending rules."""

    models: ParticipantModels
    embedder: Embedder | None
    """None: the repetition check uses n-gram overlap only."""
    rules: EndingRules


def dialogue_deps(settings: Settings, configured: BaseChatModel, embedder: Embedder | None) -> DialogueDeps:
    """Wire the dialogue graph from the settings, the service's chat model and its loaded embedder."""
    rules = EndingRules(
        closing_phrases=tuple(settings.dialogue_closing_phrase_list),
        end_signal=settings.dialogue_end_signal,
        ngram=settings.dialogue_repetition_ngram,
        ngram_threshold=settings.dialogue_repetition_ngram_threshold,
        embedding_threshold=settings.dialogue_repetition_embedding_threshold,
    )
    return DialogueDeps(models=ParticipantModels(settings, configured), embedder=embedder, rules=rules)
