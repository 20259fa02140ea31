"""SQL that differs between the two dialects the memory stores run on (`Database.dialect`), in one place, so a
store writes each statement once and picks the fragment its database speaks.

Text columns on Postgres are declared `COLLATE "C"` in the stores' schemas: comparisons and `ORDER BY` are then
by code point, as SQLite's default BINARY collation, whatever locale the server's database was created with."""

from __future__ import annotations

import sqlite3

import psycopg

from memory.db import Dialect

FIND: dict[Dialect, str] = {"sqlite": "instr", "postgres": "strpos"}
"""`FIND[db.dialect](haystack, needle)`: the 1-based position of `needle` in `haystack`, 0 when absent. Used
instead of `LIKE '%…%'`, whose case sensitivity differs (SQLite folds ASCII case, Postgres does not) and which
reads `%` and `_` in the needle as wildcards."""


def is_unique_violation(exc: BaseException) -> bool:
    """Whether a statement failed on a unique index or key (the two drivers raise different errors)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc)
    return isinstance(exc, psycopg.errors.UniqueViolation)


def storable_text(value: str) -> str:
    """`value` unchanged if both dialects can store it as text, else ValueError: Postgres refuses NUL
    characters (SQLite keeps them), so the doors refuse them on either profile alike (a clear 400, not a 500)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    return value
