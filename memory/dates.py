"""Questions that name a day ("What did Maria plan on 7 July, 2023?") matched to the episodes of that day.

Episodes are dated (`created_at`; an import's with the timestamps it was given), but a date in a question
matches nothing lexically (`7 July, 2023` against `[2023-07-07]`, whose tokens are `2023`, `07`, `07`) and
little by meaning. So the days a query names explicitly (a day, a month and a year, in the usual English
orders, or ISO `2023-07-07`) select the scope's episodes dated within a day of them (the slack covers the
user's time zone against UTC), ranked by how many of the query's other content words they hold (stemmed,
as the BM25 query is); fusion gives these first places (memory/hybrid.py). On LoCoMo 43 of the 759 dev
questions name a day; evidence recall@10 rose by 1.3 points and session recall by 0.5 (BENCHMARKS.md).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from memory.episodes import EpisodeStore, StoredEpisode
from memory.stemming import MIN_STEM, stem
from memory.text import query_terms, words

MONTHS = {name: number for number, name in enumerate(
    "january february march april may june july august september october november december".split(), start=1)}
_MONTH = "(" + "|".join([*MONTHS, *(m[:3] for m in MONTHS), "sept"]) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(\d{4})"
DAY_MONTH_YEAR = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)
MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.IGNORECASE)
ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")

CANDIDATES = 5
"""How many of a named day's episodes fusion is given (the best by the query's words)."""

FIRST_YEAR, LAST_YEAR = 1000, 9998
"""Years read as a day's (the slack around 9999-12-31 or 0001-01-01 would leave the calendar)."""

SLACK = timedelta(days=1)
"""How far from a named day an episode may be dated and still count as that day's (time zones)."""


def _month(name: str) -> int:
    name = name.lower().rstrip(".")
    return next(number for full, number in MONTHS.items() if full.startswith(name[:3]))


def named_days(text: str) -> list[date]:
    """The calendar days `text` names explicitly, in order, each once (impossible dates are left out)."""
    found: list[tuple[int, date]] = []
    for pattern, order in ((DAY_MONTH_YEAR, "dmy"), (MONTH_DAY_YEAR, "mdy"), (ISO_DAY, "ymd")):
        for match in pattern.finditer(text):
            parts = dict(zip(order, match.groups(), strict=True))
            try:
                month = int(parts["m"]) if order == "ymd" else _month(parts["m"])
                day = date(int(parts["y"]), month, int(parts["d"]))
            except ValueError:
                continue
            if FIRST_YEAR <= day.year <= LAST_YEAR:  # a day either side must still be a date
                found.append((match.start(), day))
    return list(dict.fromkeys(day for _, day in sorted(found)))


def _date_words(days: list[date]) -> set[str]:
    """The words a query spells its days with (left out of the words an episode is ranked by)."""
    spelled: set[str] = set()
    for day in days:
        spelled |= {str(day.day), f"{day.day:02d}", str(day.year), f"{day.month:02d}"}
        spelled |= {name for name, number in MONTHS.items() if number == day.month}
    return spelled | {"st", "nd", "rd", "th"}


def _holds(document_words: set[str], stemmed: str) -> bool:
    """Whether a document holds a query word: its stem as a prefix, as the BM25 query matches it
    (memory/stemming.py), or the word itself when it is short or not a word."""
    if len(stemmed) >= MIN_STEM and stemmed.isalpha():
        return any(w.startswith(stemmed) for w in document_words)
    return stemmed in document_words


def dated_episodes(store: EpisodeStore, scope: str, query: str, limit: int = CANDIDATES,
                   per_day: int = 200) -> list[StoredEpisode]:
    """The episodes of `scope` dated on a day `query` names (within `SLACK`), those holding the most of the
    query's other content words first (then in the order they were said); [] when it names no day."""
    days = named_days(query)
    if not days or limit <= 0:
        return []
    skip = _date_words(days)
    stems = [stem(word) for word in query_terms(query) if word not in skip]
    candidates: dict[str, tuple[int, int, StoredEpisode]] = {}
    for day in days[:3]:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - SLACK
        for order, episode in enumerate(store.dated(scope, start.timestamp(), (start + 3 * SLACK).timestamp(),
                                                    per_day)):
            held_words = set(words(episode.document))
            held = sum(1 for s in stems if _holds(held_words, s))
            candidates.setdefault(episode.id, (-held, order, episode))
    return [episode for _, _, episode in sorted(candidates.values(), key=lambda c: (c[0], c[1]))][:limit]
