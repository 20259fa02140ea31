"""Light query-side stemming for FTS5: a word's stem searched as a prefix (`"adopt"*`).

The FTS5 tables tokenize with unicode61, without a stemmer, so "adopted" never matched "adoption" and a
question's "painted" missed an episode's "painting" (LoCoMo questions are phrased in other forms than the
turns that answer them). Rebuilding the tables with the porter tokenizer would re-index every store; stemming
the query's words instead and matching them as prefixes needs no migration. Only suffixes are stripped, and
never below `MIN_STEM` letters: a short prefix ("go"*) would match unrelated words.
"""

from __future__ import annotations

MIN_STEM = 4

# Longest first: the first suffix that leaves a long enough stem is stripped.
SUFFIXES = ("ations", "ation", "ments", "ment", "ings", "ing", "ions", "ion", "ers", "er", "es", "ed", "ly", "s",
            "e")


def stem(word: str) -> str:
    """`word` without its inflectional suffix (lowercase words in, as `query_terms` gives them)."""
    if not word.isalpha():
        return word  # numbers, ids and mixed tokens are matched as they are
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    return word


def fts_term(word: str) -> str:
    """The FTS5 query item for `word`: its stem as a prefix when it is long enough, else the word itself."""
    base = stem(word)
    quoted = '"' + base.replace('"', '""') + '"'
    return quoted + "*" if len(base) >= MIN_STEM and base.isalpha() else quoted
