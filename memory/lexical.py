"""How an FTS5 search of the episodes is done so that its cost stays bounded as the store grows.

BM25 scoring is what costs in FTS5: about 1 µs per matched row. At 100k synthetic episodes a six-word
question matched 36k rows and took 32 ms, of which finding the rows was 4 ms. So each search is planned
from how often its words occur among the newest `sample` episodes (counting a word costs up to
~0.4 ms, so a word's count is kept and reused until the store has grown by a tenth of the sample):

- words in more than `common_share` of them are left out: BM25 gives such words next to no weight;
- if the scope's rows the other words would match fit in `budget`, one exact search over all of them;
- otherwise an exact search over the scope's newest rows, as many as the budget allows (never fewer than
  `min_window`), plus a search of the older rows by the rare words alone (those expected in at most
  `rare_rows` episodes): a name or a number said once long ago is still found, and the vector index
  covers the rest of the past.

Stores smaller than `prune_from` are always searched exactly with every word. A search of the newest rows
goes to a second FTS5 table holding only the newest `recent_rows` episodes: BM25 reads every row a word
occurs in once per search (to weigh the word), so on the full table that cost would still grow with the
store (~3 ms at 100k synthetic episodes, whatever the window).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from memory.db import Database

Counter = Callable[[Database, str, int, int], int]
"""(db, word, after, cap): in how many episodes with `seq > after` the word occurs, counting up to `cap`."""


def fts5_count(db: Database, term: str, after: int, cap: int) -> int:
    """A word's rows among SQLite's recent episodes (the recent FTS5 table holds at least the sample)."""
    return int(db.query("SELECT count(*) AS n FROM (SELECT rowid FROM episodes_recent_fts WHERE episodes_recent_fts"
                        " MATCH ? AND rowid > ? LIMIT ?)", ('document:"' + term.replace('"', '""') + '"', after, cap))
               [0]["n"])


@dataclass(frozen=True)
class Pass:
    """One FTS5 query: these words, over the rows with `after < rowid <= upto` (None: unbounded), in the
    table of recent episodes when `recent`."""

    terms: tuple[str, ...]
    after: int | None = None
    upto: int | None = None
    recent: bool = False
    rows: int | None = None
    """How many of the scope's rows a pass over the newest ones covers (BM25's N on Postgres)."""


@dataclass
class LexicalPlanner:
    """Decides the passes of a search (see the module's docstring)."""

    common_share: float = 0.25
    prune_from: int = 5000
    sample: int = 5000
    budget: int = 2500
    min_window: int = 2000
    rare_rows: int = 200
    recent_rows: int = 10_000  # at least `sample` and `min_window`
    recount_share: float = 0.1
    """A word's count is reused until `recount_share * sample` episodes were added since it was made."""
    max_counted: int = 50_000
    """Words whose counts are kept (all are dropped when full: counting again is what a miss costs)."""
    _counts: dict[str, tuple[int, int, int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def plan(self, db: Database, scope: str, terms: list[str], count: Counter | None = None) -> list[Pass]:
        """The passes for `terms` in `scope`; [] when only ubiquitous words are left. `count` counts a word's
        rows (default: in SQLite's recent FTS5 table; Postgres has its own)."""
        if not terms:
            return []
        newest = db.query("SELECT max(seq) AS n FROM episodes")[0]["n"] or 0
        if newest < self.prune_from:
            return [Pass(tuple(terms))]
        sample = min(self.sample, newest)
        cap = int(sample * self.common_share) + 1
        counts = {t: self._count(db, t, newest, sample, cap, count or fts5_count) for t in terms}
        kept = tuple(t for t in terms if counts[t] < cap)
        if not kept:
            return []
        rate = sum(counts[t] for t in kept) / sample  # matched rows per row, about
        if not rate:
            return [Pass(kept)]
        window = max(self.min_window, int(self.budget / rate))
        row = db.query("SELECT seq FROM episodes WHERE scope = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
                       (scope, window - 1))
        if not row:  # the scope has fewer rows than the window: search it whole
            return [Pass(kept)]
        boundary = row[0]["seq"] - 1
        rare = tuple(t for t in kept if counts[t] * newest / sample <= self.rare_rows)
        recent = boundary >= newest - self.recent_rows
        return ([Pass(kept, after=boundary, recent=recent, rows=window)]
                + ([Pass(rare, upto=boundary)] if rare else []))

    def _count(self, db: Database, term: str, newest: int, sample: int, cap: int, count: Counter) -> int:
        """In how many of the newest `sample` episodes `term` occurs, counting up to `cap`. Frequent words
        cost the most to count and recur in most messages: their counts are reused while still fresh."""
        kept = self._counts.get(term)  # (count, newest then, cap then); threads may race: both count, same result
        if kept is not None and kept[2] == cap and abs(newest - kept[1]) <= self.recount_share * sample:
            return kept[0]
        n = count(db, term, newest - sample, cap)
        if len(self._counts) >= self.max_counted:
            self._counts.clear()
        self._counts[term] = (n, newest, cap)
        return n
