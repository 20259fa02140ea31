"""Text helpers for lexical recall: tokens, stopwords, the FTS5 MATCH expression and the scope token."""

from __future__ import annotations

import hashlib
import re

from memory.stemming import fts_term

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Kept small on purpose: common function words that match nearly every exchange. Dropping them keeps
# the FTS5 query selective (measured at 1M episodes: 84 ms p50 with them, 7 ms without).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she should
    so some such than that the their theirs them themselves then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves user assistant s t d ll m re ve y ok okay please thanks hi hello""".split()
) | frozenset(
    # The words questions are asked with rather than about (LoCoMo: "What kind of ... would X likely ...?").
    """likely kind kinds type types many much ever something anything things thing also""".split()
)


def scope_token(scope: str) -> str:
    """A single FTS5 token naming a scope, so the scope can be matched inside `MATCH` itself."""
    return "s" + hashlib.sha1(scope.encode("utf-8")).hexdigest()[:20]


def words(text: str) -> list[str]:
    """The lowercase words of `text`, as FTS5's unicode61 tokenizer cuts them (letters and digits)."""
    return _WORD.findall(text.lower())


def query_terms(text: str, limit: int = 24) -> list[str]:
    """Distinct lowercase content words of `text`, in order, without stopwords."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if len(word) > 1 and word not in STOPWORDS and word not in seen:
            seen[word] = None
            if len(seen) >= limit:
                break
    return list(seen)


def match_expression(scope: str | None, text: str, terms: list[str] | None = None) -> str | None:
    """The FTS5 expression `scope_token:sXXXX AND document:("w1" OR "w2" ...)` (of `terms`, by default the
    content words of `text`), or None when no content word is left. `scope=None` leaves the scope out
    (for a store that holds one scope only)."""
    terms = query_terms(text) if terms is None else terms
    if not terms:
        return None
    words = " OR ".join(fts_term(t) for t in terms)  # stems as prefixes: memory/stemming.py
    if scope is None:
        return f"document:({words})"
    return f'scope_token:"{scope_token(scope)}" AND document:({words})'
