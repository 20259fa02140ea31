"""The semantic cache's second test, after the vectors' similarity: do two questions ask about the same particulars?

MiniLM puts "convert Celsius to Fahrenheit" and "convert Fahrenheit to Celsius" at 0.995, "the max of a 32-bit
integer" and "of a 64-bit integer" at 0.93: a threshold low enough to catch real paraphrases lets those through.
So a cached answer also needs the same numbers, ordinals and Roman numerals (versions, sizes, "World War II"), and
the same word after each direction marker ("to", "from", "than", "vs") where both questions have one.
Measured on bench/eval_sets/cache_pairs.jsonl by bench/classify.py (BENCHMARKS.md).
"""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9]+(?:[.'][A-Za-z0-9]+)*")
STOP = frozenset(
    "a an the is are was were be been of in on at to for from by with and or what whats what's which who whom when "
    "where why how do does did can could would should i you it its it's this that these those me my your there their "
    "into about as than then so if not no yes please tell explain define mean meaning".split())
ORDINALS = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth last".split())
MARKERS = {"to": "to", "into": "to", "from": "from", "than": "than", "vs": "vs", "versus": "vs"}
ROMAN = re.compile(r"[IVX]+")


def particulars(text: str) -> list[str]:
    """Numbers, ordinals and Roman numerals (a lone "I" only after a capitalised word: "World War I")."""
    words = WORD.findall(text)
    out = []
    for i, word in enumerate(words):
        lower = word.lower()
        roman = ROMAN.fullmatch(word) and (len(word) > 1 or (i > 1 and words[i - 1][:1].isupper()))
        if any(c.isdigit() for c in word) or lower in ORDINALS or roman:
            out.append(lower)
    return sorted(out)


def directions(text: str) -> dict[str, str]:
    """The first content word after each direction marker: {"to": "fahrenheit", "from": "earth"}."""
    words = [w.lower() for w in WORD.findall(text)]
    out: dict[str, str] = {}
    for i, word in enumerate(words):
        marker = MARKERS.get(word)
        if marker and marker not in out:
            following = next((w for w in words[i + 1:] if w not in STOP), None)
            if following:
                out[marker] = following
    return out


def same_particulars(a: str, b: str) -> bool:
    """Whether a cached answer to `a` may answer `b`, besides their vectors being close."""
    if particulars(a) != particulars(b):
        return False
    da, db = directions(a), directions(b)
    return all(da[m] == db[m] for m in da.keys() & db.keys())
