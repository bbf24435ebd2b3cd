"""The cache table's columns: their order, header and header tooltip."""

from __future__ import annotations

from enum import IntEnum


class Column(IntEnum):
    PROGRAM = 0
    VERSION = 1
    STORE = 2
    SIZE = 3
    FILES = 4
    LAST_USED = 5
    ADDED = 6
    USED_BY = 7
    STATUS = 8
    DIGEST = 9


HEADERS: dict[Column, str] = {
    Column.PROGRAM: "Program",
    Column.VERSION: "Version",
    Column.STORE: "Store",
    Column.SIZE: "Size",
    Column.FILES: "Files",
    Column.LAST_USED: "Last used",
    Column.ADDED: "Added",
    Column.USED_BY: "Used by",
    Column.STATUS: "Status",
    Column.DIGEST: "Digest",
}

HEADER_TIPS: dict[Column, str] = {
    Column.PROGRAM: (
        "The program's name from its cached feed; for an entry no feed lists, the start of its "
        "digest"
    ),
    Column.STORE: "Which implementation store holds the entry (hover a cell for its path)",
    Column.SIZE: (
        "Apparent size of everything inside, directories included (hard links counted once)"
    ),
    Column.FILES: "Files and symbolic links inside",
    Column.LAST_USED: "Newest access time of anything inside (needs a filesystem that records it)",
    Column.ADDED: (
        "When 0install added the entry: the time it wrote the entry's .manifest file (for an "
        "entry without one, the directory's modification time)"
    ),
    Column.USED_BY: "0install apps whose current selections use it",
    Column.STATUS: (
        "What is wrong with the entry, else the result of its last verification (kept across "
        "rescans while the entry does not change)"
    ),
    Column.DIGEST: "The manifest digest that names the directory",
}
