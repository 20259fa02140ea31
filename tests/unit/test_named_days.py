"""Questions that name a day find that day's episodes (memory/dates.py, memory/hybrid.py), on real SQLite and
Postgres stores."""

from __future__ import annotations

from datetime import UTC, date, datetime

from memory.dates import dated_episodes, named_days
from memory.episodes import Episode, EpisodeStore
from memory.hybrid import FusionWeights, fuse_explained


def at(day: int, hour: int = 12) -> float:
    return datetime(2023, 7, day, hour, tzinfo=UTC).timestamp()


def test_the_usual_ways_of_writing_a_day_are_read():
    assert named_days("What did Maria plan on the evening of 7 July, 2023?") == [date(2023, 7, 7)]
    assert named_days("as mentioned on July 7th 2023, and on 3 June, 2023") == [date(2023, 7, 7), date(2023, 6, 3)]
    assert named_days("on 1st of Feb. 2023 or 2023-02-01") == [date(2023, 2, 1)]  # the same day once
    assert named_days("Sept 30, 2024") == [date(2024, 9, 30)]
    assert named_days("What happened in July 2023?") == []  # no day: not a day's question
    assert named_days("on 31 February, 2023") == []  # no such day
    assert named_days("1 January, 0001 or 31 December, 9999") == []  # a day either side would leave the calendar
    assert named_days("room 7 may 2023 be booked") == [date(2023, 5, 7)]  # a month's name is a month


def test_a_named_days_episodes_come_first_those_with_the_query_words_before_the_others(database):
    store = EpisodeStore(database)
    store.add(Episode("s1", "p", "I painted a sunset by the lake", "Lovely colours!", created_at=at(6)))
    store.add(Episode("s2", "p", "Good morning!", "Morning! How are you?", created_at=at(7, 9)))
    store.add(Episode("s2", "p", "Dinner with friends tonight, then painting", "Have fun!", created_at=at(7, 10)))
    store.add(Episode("s2", "p", "Back from the lake", "Nice.", created_at=at(7, 23)))
    store.add(Episode("s3", "p", "I plan to go painting tonight", "Enjoy!", created_at=at(20)))
    store.add(Episode("s4", "other", "Dinner plans tonight on 7 July", "Sure.", created_at=at(7)))
    query = "What did Maria plan for dinner on 7 July, 2023?"
    dated = dated_episodes(store, "p", query)
    firsts = ["Dinner with friends", "I painted a sunset", "Good morning!", "Back from the lake"]
    assert [next(f for f in firsts if f in e.document) for e in dated] == firsts  # then in the order said
    assert {e.session_id for e in dated} == {"s1", "s2"}  # a day either side (time zones), never another scope
    assert dated_episodes(store, "p", "What did Maria plan for dinner?") == []

    lexical = store.search("p", "What did Maria plan for tonight on 7 July, 2023?", 10)
    assert lexical[0].session_id == "s3"  # by its words alone, the 20 July exchange is the best
    dated = dated_episodes(store, "p", "What did Maria plan for tonight on 7 July, 2023?")
    hits = fuse_explained(lexical, [], FusionWeights(), set(), 10, store, dated)
    assert "Dinner with friends" in hits[0].episode.document and hits[0].date is not None
    assert hits[0].date.rank == 1
    assert hits[0].lexical is not None  # its words matched too: both parts are told
    assert "s3" in {h.episode.session_id for h in hits}  # the other hits are still there, after them
