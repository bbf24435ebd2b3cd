"""A row of the cache table: one ``core.cache.Entry`` with its verdict and status, the text of
each of its cells, and the keys rows sort by.

Rows are made off the GUI thread (:func:`prepare_rows`); the table model
(:mod:`gui.cache_model`) adopts them and changes them in place.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt

from core.feeds import used_by_text
from core.records import unchanged_text
from core.units import ago_text, size_text
from gui import status as st
from gui.cache_columns import Column

if TYPE_CHECKING:
    from core.cache import Entry
    from core.measure import Usage
    from core.verify_entry import VerifyOutcome

_PENDING = "…"
"""The text of a size, file count or last use not measured yet."""
_COLUMNS = len(Column)
_RANK_SPAN = 1 << 40  # more rows than any cache has: severity * span + rank sorts like a tuple


@functools.lru_cache(maxsize=16384)
def version_key(version: str) -> str:
    """A string that sorts like 0install versions: 1.9 < 1.10, 2.0-pre1 < 2.0-rc1 < 2.0 < 2.0-post.

    Numbers are zero-padded; "~" joins numbers (it sorts above the modifier letters, so
    1.0.1 > 1.0);
    each dash part is preceded by a letter for its modifier (pre a, rc b, none c, post d).
    """
    if not version:
        return ""
    out = []
    for i, part in enumerate(version.split("-")):
        modifier, digits = "c", part
        if i:
            for word, letter in (("pre", "a"), ("rc", "b"), ("post", "d")):
                if part.startswith(word):
                    modifier, digits = letter, part[len(word) :]
                    break
        numbers = digits.split(".") if digits else []
        if not all(n.isdigit() for n in numbers):
            return "\x7f" + version.casefold()  # not a 0install version: after all real ones
        out.append(modifier + "~".join(n.rjust(10, "0")[-10:] for n in numbers))
    return "".join(out) + "c"


@dataclass(slots=True, eq=False)
class Row:
    """One entry in the table, with what the window knows about it beyond the core ``Entry``.

    ``status`` is kept as a plain attribute (the model calls :meth:`update_status` after changing
    ``outcome`` or ``verifying``): it is read for every painted cell, every sort and every count.
    """

    entry: Entry
    haystack: str = ""  # case-folded text the filter box searches
    outcome: VerifyOutcome | None = None
    verifying: bool = False
    pos: int = -1  # current row number in the model
    tiebreak: tuple = ()  # (program, version key, name): the order of rows with equal sort values
    rank: int = 0  # position in tie-break order among the model's rows (a cheap int to sort by)
    status: str = st.NOT_VERIFIED
    verified_at: float | None = None  # when ``outcome`` was found (epoch seconds)

    def update_status(self) -> str:
        """Work out the status word again from the verdict, the run and the entry's kind.

        An entry that is not a directory at all (a planted symlink, a file) stays "suspicious"
        whatever verification says: its contents cannot match a digest, and "damaged" would
        suggest it once was an implementation.
        """
        if self.verifying:
            word = st.VERIFYING
        else:
            verdict = st.VERDICT_WORDS.get(self.outcome.status) if self.outcome else None
            entry = self.entry
            if entry.kind == "suspicious" and entry.issue in st.NOT_A_DIRECTORY:
                word = st.SUSPICIOUS
            elif verdict in (st.CORRUPT, st.ERROR):
                word = verdict
            elif entry.kind == "suspicious":
                word = st.SUSPICIOUS
            else:
                word = verdict or st.NOT_VERIFIED
        self.status = word
        return word

    @property
    def problems(self) -> list[str]:
        """Each thing wrong with the entry, in a few words, worst first ("damaged", "writable by
        everyone"): what the Status column shows, so that no problem hides another."""
        found: list[str] = []
        outcome = self.outcome
        entry = self.entry
        if outcome is not None and entry.issue not in st.NOT_A_DIRECTORY:
            if outcome.status == "corrupt":
                found.append(st.CORRUPT)
            elif outcome.status == "error":
                found.append(st.ERROR)
        if entry.kind == "suspicious":
            found.append(ISSUE_WORDS.get(entry.issue, st.SUSPICIOUS))
        return found

    @property
    def damaged(self) -> bool:
        return self.outcome is not None and self.outcome.status == "corrupt"


ISSUE_WORDS: dict[str, str] = {
    "planted": "planted",
    "not-a-directory": "planted",
    "digest-case": "wrong case",
    "bad-digest": "bad digest",
    "foreign-owner": "foreign owner",
    "world-writable": "world-writable",
    "group-writable": "group-writable",
}
"""core.cache.Entry.issue -> the words the Status column uses for it."""


def status_text(row: Row) -> str:
    """The Status cell: the status word, or every problem of the entry ("corrupt, writable by
    everyone"); the verdict of a verified entry is the word itself ("OK")."""
    if row.status in (st.VERIFYING, st.NOT_VERIFIED, st.OK, st.SKIPPED):
        return row.status
    problems = row.problems
    return ", ".join(problems) if problems else row.status


def verdict_age(row: Row, now: float) -> str:
    """ "OK, 10 minutes ago": the verdict and how old it is ("" when not verified)."""
    if row.outcome is None:
        return ""
    word = st.VERDICT_WORDS.get(row.outcome.status, row.outcome.status)
    if row.outcome.unchanged_since is not None:  # judged by its change keys (core.records)
        return f"{word}, {unchanged_text(row.outcome.unchanged_since, now)}"
    if row.verified_at is None:
        return word
    return f"{word}, {ago_text(now - row.verified_at)}"


def program_text(entry: Entry) -> str:
    """The Program cell: the feed's name, else what it is and the start of its digest (or name),
    so that entries no feed lists can be told apart ("(unowned) RZ3AB4XW…")."""
    if entry.feed is not None:
        return entry.program
    if entry.digest is not None:
        value = entry.name[len(entry.name.split("_", 1)[0].split("=", 1)[0]) + 1 :]
        return f"{entry.program} {value[:8]}…" if len(value) > 9 else f"{entry.program} {value}"
    return f"{entry.program} {entry.short_name}"


def size_detail(usage: Usage) -> str:
    """The whole story of a size: "1.2 MB (1,234,567 bytes), 1.3 MB on disk"; an empty entry says
    so instead of a directory's own 4,096 bytes."""
    disk = f"{size_text(usage.disk)} on disk"
    if usage.files == 0:
        return f"empty: no files inside (the directories themselves take {disk})"
    if usage.size < 1000:
        return f"{size_text(usage.size)}, {disk}"
    return f"{size_text(usage.size)} ({usage.size:,} bytes), {disk}"


def added_tooltip(entry: Entry) -> str:
    when = datetime.fromtimestamp(entry.added).strftime("%Y-%m-%d %H:%M")
    if entry.added_from == "manifest":
        return f"{when}: when 0install wrote its .manifest file, i.e. added it"
    return f"{when}: the directory's modification time (it has no .manifest file)"


def carry_verdicts(old: Iterable[Row], new: Iterable[Row]) -> tuple[int, int]:
    """Give new rows (a rescan) the verdicts of the old rows for the same, unchanged entries.

    An entry is unchanged when its fingerprint (identity and change times of the directory and
    of its ``.manifest``) is the same; a changed one goes back to "not verified". Returns
    (verdicts kept, verdicts dropped because the entry changed).
    """
    verdicts = {r.entry.path: r for r in old if r.outcome is not None}
    kept = dropped = 0
    if not verdicts:
        return 0, 0
    for row in new:
        before = verdicts.get(row.entry.path)
        if before is None:
            continue
        same = before.entry.fingerprint and before.entry.fingerprint == row.entry.fingerprint
        if same and before.entry.kind == row.entry.kind:
            row.outcome = before.outcome
            row.verified_at = before.verified_at
            row.update_status()
            kept += 1
        else:
            dropped += 1
    return kept, dropped


def _tiebreak(row: Row) -> tuple:
    return row.tiebreak


def prepare_rows(
    entries: Iterable[Entry],
    sort_column: int = -1,
    order: Qt.SortOrder = Qt.SortOrder.AscendingOrder,
    made: list[Row] | None = None,
) -> list[Row]:
    """New rows for entries, with their search text and sort keys, sorted by ``sort_column``.

    A pure function of the entries, so a worker thread can run it: for 10,000 entries it is most
    of what listing costs, and the GUI thread then only has to adopt the rows
    (:meth:`CacheModel.set_rows` sorts again only if the sort changed meanwhile). ``made``: rows
    already made with :func:`new_rows` for the first entries, e.g. while the rest were still
    being read.
    """
    rows = list(made) if made else []
    rows.extend(new_rows(itertools.islice(entries, len(rows), None)))
    ordered = sorted(rows, key=_tiebreak)
    for rank, row in enumerate(ordered):
        row.rank = rank
    descending = order == Qt.SortOrder.DescendingOrder
    if sort_column == Column.PROGRAM:  # the tie-break order itself (unique: it ends with the name)
        rows = ordered[::-1] if descending else ordered
    elif 0 <= sort_column < _COLUMNS:
        rows.sort(key=sort_key(sort_column), reverse=descending)
    return rows


def new_rows(entries: Iterable[Entry]) -> list[Row]:
    """Rows for entries, not yet ranked or sorted (see :func:`prepare_rows`)."""
    return [_new_row(e) for e in entries]


def _new_row(entry: Entry) -> Row:
    program = entry.program
    version = entry.version
    tiebreak = (program.casefold(), version_key(version), entry.name)
    parts = [program, version, entry.name]
    if entry.feed is not None:
        parts.append(entry.feed.feed_url)
    row = Row(entry, "\n".join(parts).casefold(), tiebreak=tiebreak)
    row.update_status()
    return row


def cell_text(row: Row, col: int, now: float) -> str:
    """What a cell shows (``now``: epoch seconds, for "21 days ago")."""
    entry = row.entry
    if col == Column.PROGRAM:
        return program_text(entry)
    if col == Column.VERSION:
        return entry.version
    if col == Column.STORE:
        return st.middle_elided(entry.store.label)
    if col == Column.STATUS:
        return status_text(row)
    if col == Column.DIGEST:
        return entry.name
    if col == Column.ADDED:
        return datetime.fromtimestamp(entry.added).strftime("%Y-%m-%d") if entry.added else ""
    if col == Column.USED_BY:
        return used_by_text(entry.used_by)
    usage = entry.usage
    if usage is None:
        return _PENDING
    if col == Column.SIZE:
        return "empty" if usage.files == 0 else size_text(usage.size)
    if col == Column.FILES:
        return f"{usage.files:,}"
    if col == Column.LAST_USED:
        return last_used_text(entry, now)
    return ""


def cell_tooltip(row: Row, col: int, now: float) -> str | None:
    """The tooltip of a cell: the whole story behind its short text."""
    entry = row.entry
    if col == Column.PROGRAM:
        if entry.feed is not None:
            return entry.feed.feed_url
        return entry.reason or "No cached feed lists this implementation"
    if col == Column.STATUS:
        lines = []
        if entry.reason and entry.kind == "suspicious":
            lines.append(entry.reason)
        if row.outcome is not None:
            lines.append(f"Verified: {verdict_age(row, now)}: {row.outcome.detail}")
        elif entry.reason:
            lines.append(entry.reason)
        return "\n".join(lines) or None
    if col == Column.SIZE and entry.usage is not None:
        usage = entry.usage
        tip = size_detail(usage)
        return f"{tip}\n{usage.error}" if usage.error else tip
    if col == Column.LAST_USED and entry.usage is not None and entry.usage.last_used:
        return datetime.fromtimestamp(entry.usage.last_used).strftime("%Y-%m-%d %H:%M")
    if col == Column.ADDED and entry.added:
        return added_tooltip(entry)
    if col == Column.DIGEST:
        return entry.path
    if col == Column.STORE:
        return entry.store.path
    if col == Column.FILES and entry.usage is not None:
        return "Files and symbolic links inside"
    return None


def sort_value(row: Row, col: int) -> Any:
    """The raw value a cell sorts by (the model's SORT_ROLE)."""
    entry = row.entry
    if col == Column.PROGRAM:
        return entry.program.casefold()
    if col == Column.VERSION:
        return version_key(entry.version)
    if col == Column.STORE:
        return entry.store.label
    if col == Column.STATUS:
        return st.SEVERITY[row.status]
    if col == Column.DIGEST:
        return entry.name
    if col == Column.ADDED:
        return float(entry.added)
    if col == Column.USED_BY:
        return len(entry.used_by)
    usage = entry.usage
    if col == Column.SIZE:
        return usage.size if usage else -1
    if col == Column.FILES:
        return usage.files if usage else -1
    if col == Column.LAST_USED:
        if usage is None or usage.last_used is None or not entry.atime_reliable:
            return -1.0
        return float(usage.last_used)
    return None


def sort_key(column: int) -> Callable[[Row], Any]:
    """The key sorting rows by a column: its sort value, then program, version, name."""
    if column == Column.PROGRAM:
        return lambda row: row.tiebreak
    if column == Column.SIZE:
        return lambda row: (row.entry.usage.size if row.entry.usage else -1, row.tiebreak)
    if column == Column.STATUS:
        # The most common re-sort (after a verification): one int per row, no tuples.
        severity = st.SEVERITY
        return lambda row: severity[row.status] * _RANK_SPAN + row.rank
    return lambda row: (sort_value(row, column), row.tiebreak)


def last_used_text(entry: Entry, now: float) -> str:
    """ "21 days ago", or why it cannot be told."""
    usage = entry.usage
    if usage is None:
        return _PENDING
    if not entry.atime_reliable:
        return "unknown (noatime)"
    if usage.last_used is None:
        return "never (empty)" if usage.files == 0 else "unknown"
    return ago_text(now - usage.last_used)
