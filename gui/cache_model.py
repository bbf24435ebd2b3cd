"""The table of cache entries: a Qt model over ``core.cache.Entry`` objects, and its filter proxy.

Rows appear all at once (one reset per scan); afterwards everything changes in place: sizes filling
in, statuses turning green or red, each batch announced with ``dataChanged`` over contiguous row
ranges and only the columns that changed.

Sorting is done here, in the source model, with Python's sort over the raw values of
:data:`SORT_ROLE` (bytes, timestamps, status severity), and the proxy only filters. Letting
``QSortFilterProxyModel`` sort would call back into Python twice per comparison: 2.7 s for 10,000
rows on the development machine, against 5 ms for ``list.sort`` plus a layout change.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QColor, QFont, QIcon

from core import units
from core.feeds import used_by_text
from core.records import unchanged_text
from core.units import size_text
from gui import status as st

if TYPE_CHECKING:
    from core.cache import Entry, Usage
    from core.verify_entry import VerifyOutcome


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

SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
"""Raw value a column sorts by: bytes, epoch seconds, status severity, case-folded text."""
ROW_ROLE = int(Qt.ItemDataRole.UserRole) + 2
"""The :class:`Row` behind an index."""
STATUS_ROLE = int(Qt.ItemDataRole.UserRole) + 3
"""The status word of the row (any column)."""

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_USAGE_COLUMNS = (Column.SIZE, Column.FILES, Column.LAST_USED)
_PENDING = "…"
_COLUMNS = len(Column)
_ROOT = QModelIndex()  # the invisible root: a table's rows have no other parent
_RANK_SPAN = 1 << 40  # more rows than any cache has: severity * span + rank sorts like a tuple
MAX_RANGES = 256
"""A batch touching more separate row runs than this is announced as one span."""
_MUTED = QColor(128, 128, 128)


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


@dataclass
class CacheStats:
    """Totals for the summary strip and the overview chart."""

    entries: int = 0
    measured: int = 0
    total_size: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_store: dict[str, int] = field(default_factory=dict)  # store label -> bytes
    largest: list[tuple[str, int]] = field(default_factory=list)  # (program, bytes), biggest first


class CacheModel(QAbstractTableModel):
    """Cache entries as rows; columns are :class:`Column`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._by_entry: dict[int, Row] = {}
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._sort_dirty = False
        self.status_version = 0  # bumped whenever any row's status may have changed
        self._counts: dict[str, int] = {}
        self._measured = 0
        self._total = 0
        self._by_store: dict[str, int] = {}
        self._by_program: dict[str, int] = {}
        self._icons: dict[str, QIcon] = {}
        self._tints: dict[str, QColor] = {}
        self._bold = QFont()
        self._bold.setBold(True)
        self.now = time.time  # replaceable, so tests can pin "21 days ago"

    # --- Qt model interface ---------------------------------------------------------------------

    def index(
        self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = _ROOT
    ) -> QModelIndex:
        # The proxy maps every cell of every repaint through here; the inherited version calls
        # rowCount() and columnCount() back in Python each time.
        if 0 <= row < len(self._rows) and 0 <= column < _COLUMNS and not parent.isValid():
            return self.createIndex(row, column)
        return QModelIndex()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else _COLUMNS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        if role == _DISPLAY:
            return HEADERS[Column(section)]
        if role == _TOOLTIP:
            return HEADER_TIPS.get(Column(section))
        if role == _ALIGN and section in (Column.SIZE, Column.FILES):
            return _RIGHT
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        # Called for every visible cell and role on each repaint: cheapest cases first.
        row = self._rows[index.row()]
        col = index.column()
        if role == _DISPLAY:
            return self._text(row, col)
        if role == _DECORATION:
            return self._icon(row.status) if col == Column.STATUS else None
        if role == _BACKGROUND:
            return self._tint(row.status)
        if role == _FOREGROUND:
            if col in _USAGE_COLUMNS and row.entry.usage is None:
                return _MUTED
            return None
        if role == _FONT:
            return self._bold if col == Column.STATUS and row.status in st.PROBLEMS else None
        if role == _ALIGN:
            return _RIGHT if col in (Column.SIZE, Column.FILES) else None
        if role == SORT_ROLE:
            return self._sort_value(row, col)
        if role == _TOOLTIP:
            return self._tooltip(row, col)
        if role == ROW_ROLE:
            return row
        if role == STATUS_ROLE:
            return row.status
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column's raw :data:`SORT_ROLE` values (ties by program, version, name)."""
        self._sort_column = column
        self._sort_order = order
        self._sort_dirty = False
        if not 0 <= column < len(Column) or len(self._rows) < 2:
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_rows = [(self._rows[i.row()], i.column()) for i in old]
        self._rows.sort(key=sort_key(column), reverse=order == Qt.SortOrder.DescendingOrder)
        for i, row in enumerate(self._rows):
            row.pos = i
        self.changePersistentIndexList(old, [self.index(r.pos, c) for r, c in old_rows])
        self.layoutChanged.emit()

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    def resort(self) -> bool:
        """Sort again if values in the sort column changed since the last sort; True if it did."""
        if not self._sort_dirty:
            return False
        self.sort(self._sort_column, self._sort_order)
        return True

    # --- content --------------------------------------------------------------------------------

    def set_entries(self, entries: Sequence[Entry]) -> None:
        """Replace every row (one reset per scan), keeping the current sort."""
        self.set_rows(prepare_rows(entries))

    def set_rows(self, rows: list[Row], sorted_by: tuple[int, Qt.SortOrder] | None = None) -> None:
        """Adopt rows made by :func:`prepare_rows` (one model reset), sorted as the table is.

        ``sorted_by`` is the (column, order) they were prepared with; they are only sorted again
        when that is not the table's current sort.
        """
        if 0 <= self._sort_column < _COLUMNS and sorted_by != (self._sort_column, self._sort_order):
            rows.sort(
                key=sort_key(self._sort_column),
                reverse=self._sort_order == Qt.SortOrder.DescendingOrder,
            )
        self._sort_dirty = False
        self.beginResetModel()
        self._rows = rows
        self._by_entry = {id(r.entry): r for r in rows}
        for i, row in enumerate(rows):
            row.pos = i
        self._recount()
        self.endResetModel()

    def remove_paths(self, paths: Iterable[str]) -> list[Row]:
        """Drop the rows of entries that are gone (deleted, cleaned, quarantined) in place, with
        the totals; the others keep their verdicts, sizes and places. Returns the rows dropped."""
        wanted = set(paths)
        gone = [r for r in self._rows if r.entry.path in wanted]
        for start, end in reversed(contiguous_ranges(r.pos for r in gone)):
            self.beginRemoveRows(_ROOT, start, end)
            del self._rows[start : end + 1]
            for pos in range(start, len(self._rows)):
                self._rows[pos].pos = pos
            self.endRemoveRows()
        for row in gone:
            self._by_entry.pop(id(row.entry), None)
        if gone:
            self._recount()
            self.status_version += 1
        return gone

    @property
    def rows(self) -> Sequence[Row]:
        return self._rows

    def row_at(self, pos: int) -> Row:
        return self._rows[pos]

    def row_for(self, entry: Entry) -> Row | None:
        return self._by_entry.get(id(entry))

    def apply_usages(self, pairs: Iterable[tuple[Entry, Usage]]) -> list[Row]:
        """Store measured sizes and announce them (Size to Last used only). Returns the rows."""
        changed = []
        for entry, usage in pairs:
            row = self._by_entry.get(id(entry))
            if row is None:
                continue  # not ours (a stale scan's entry): ignore
            self._count_usage(entry, -1)
            entry.usage = usage
            self._count_usage(entry, +1)
            changed.append(row)
        self._announce(changed, Column.SIZE, Column.LAST_USED)
        return changed

    def set_verifying(self, rows: Iterable[Row], verifying: bool) -> list[Row]:
        """Mark rows as being verified (or no longer, e.g. after a cancel)."""
        changed = [r for r in rows if r.verifying != verifying and self._owns(r)]
        counts = self._counts
        for row in changed:
            old = row.status
            row.verifying = verifying
            new = row.update_status()
            counts[old] -= 1
            counts[new] = counts.get(new, 0) + 1
        self._announce(changed, 0, len(Column) - 1, Column.STATUS)
        return changed

    def apply_outcomes(self, pairs: Iterable[tuple[Row, VerifyOutcome]]) -> list[Row]:
        """Store verification verdicts; rows change colour, so whole rows are announced."""
        changed = []
        counts = self._counts
        for row, outcome in pairs:
            if not self._owns(row):
                continue
            old = row.status
            row.outcome = outcome
            row.verified_at = self.now()
            row.verifying = False
            new = row.update_status()
            counts[old] -= 1
            counts[new] = counts.get(new, 0) + 1
            changed.append(row)
        self._announce(changed, 0, len(Column) - 1, Column.STATUS)
        return changed

    def stamp(self, rows: Iterable[Row], when: float | None = None) -> None:
        """Record when these rows' verdicts were found (now by default)."""
        when = self.now() if when is None else when
        for row in rows:
            row.verified_at = when

    def _owns(self, row: Row) -> bool:
        return self._by_entry.get(id(row.entry)) is row

    def _announce(
        self, rows: list[Row], first: int, last: int, sort_col: int | None = None
    ) -> None:
        if not rows:
            return
        if first <= Column.STATUS <= last:
            self.status_version += 1
        if self._sort_column >= 0 and (
            first <= self._sort_column <= last
            if sort_col is None
            else self._sort_column == sort_col
        ):
            self._sort_dirty = True
        ranges = contiguous_ranges(r.pos for r in rows)
        if len(ranges) > MAX_RANGES:
            # Results scattered over the sorted table: one span costs the views far less than
            # thousands of one-row signals, and repaints the same visible cells.
            ranges = [(ranges[0][0], ranges[-1][1])]
        for start, end in ranges:
            self.dataChanged.emit(self.index(start, first), self.index(end, last))

    # --- totals (kept up to date as rows change, so asking is cheap) ------------------------------

    def _recount(self) -> None:
        self._measured = self._total = 0
        self._by_store = {}
        self._by_program = {}
        self._counts = dict(Counter(row.status for row in self._rows))
        for entry in [row.entry for row in self._rows if row.entry.usage is not None]:
            self._count_usage(entry, +1)

    def _count_usage(self, entry: Entry, sign: int) -> None:
        usage = entry.usage
        if usage is None:
            return
        size = sign * usage.size
        self._measured += sign
        self._total += size
        label = entry.store.label
        self._by_store[label] = self._by_store.get(label, 0) + size
        program = entry.program
        self._by_program[program] = self._by_program.get(program, 0) + size

    def stats(self, largest: int = 8) -> CacheStats:
        """Counts by status, total and per-store bytes, biggest programs (no pass over the rows)."""
        counts = self._counts
        return CacheStats(
            entries=len(self._rows),
            measured=self._measured,
            total_size=self._total,
            by_status={w: counts[w] for w in st.STATUSES if counts.get(w)},
            by_store={k: v for k, v in self._by_store.items()},
            largest=heapq.nsmallest(
                largest,
                ((p, n) for p, n in self._by_program.items() if n),
                key=lambda kv: (-kv[1], kv[0]),
            ),
        )

    # --- cells ----------------------------------------------------------------------------------

    def _tint(self, word: str) -> QColor | None:
        if word not in st.PROBLEMS:
            return None
        tint = self._tints.get(word)
        if tint is None:
            tint = self._tints[word] = st.tint(word)
        return tint

    def cell(
        self, row: Row, col: int
    ) -> tuple[str, QIcon | None, int | None, QColor | None, QFont | None, QColor | None]:
        """Everything a cell shows at once: text, icon, alignment, background, font, text colour.

        The table's delegate asks this once per cell instead of asking ``data()`` once per role;
        it is built from the same pieces as ``data()``.
        """
        word = row.status
        problem = word in st.PROBLEMS
        return (
            self._text(row, col),
            self._icon(word) if col == Column.STATUS else None,
            _RIGHT if col in (Column.SIZE, Column.FILES) else None,
            self._tint(word) if problem else None,
            self._bold if problem and col == Column.STATUS else None,
            _MUTED if col in _USAGE_COLUMNS and row.entry.usage is None else None,
        )

    def _icon(self, word: str) -> QIcon:
        icon = self._icons.get(word)
        if icon is None:
            icon = self._icons[word] = st.status_icon(word)
        return icon

    def _text(self, row: Row, col: int) -> str:
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
            return last_used_text(entry, self.now())
        return ""

    def _sort_value(self, row: Row, col: int) -> Any:
        return sort_value(row, col)

    def _tooltip(self, row: Row, col: int) -> str | None:
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
                lines.append(f"Verified: {verdict_age(row, self.now())}: {row.outcome.detail}")
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
    """The raw value a cell sorts by (its SORT_ROLE)."""
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


def sort_key(column: int) -> Callable[[Row], tuple]:
    """The key sorting rows by a column: its SORT_ROLE value, then program, version, name."""
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


def ago_text(seconds: float) -> str:
    """ "3 months ago": the one wording of ages (:func:`core.units.ago_text`), shared with Clean
    up and the command line."""
    return units.ago_text(seconds)


def contiguous_ranges(positions: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated positions grouped into inclusive (first, last) runs."""
    ordered = sorted(set(positions))
    ranges: list[tuple[int, int]] = []
    for p in ordered:
        if ranges and ranges[-1][1] == p - 1:
            ranges[-1] = (ranges[-1][0], p)
        else:
            ranges.append((p, p))
    return ranges


class CacheFilter(QSortFilterProxyModel):
    """Filters rows by text, store and status; sorting is forwarded to :class:`CacheModel`.

    Text matches program, version, digest and feed URL; several words must all match. Only the
    status filter depends on changing data, so instead of re-checking every changed row on every
    batch (dynamic filtering), a status filter is re-applied at most every
    :data:`REFILTER_MS` while statuses change.
    """

    REFILTER_MS = 200

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._terms: list[str] = []
        self._store: str | None = None
        self._statuses: frozenset[str] | None = None
        self._source = CacheModel(self)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(False)
        self._refilter_timer = QTimer(self)
        self._refilter_timer.setSingleShot(True)
        self._refilter_timer.setInterval(self.REFILTER_MS)
        self._refilter_timer.timeout.connect(self.refilter)

    def setSourceModel(self, model: QAbstractItemModel) -> None:
        if not isinstance(model, CacheModel):
            raise TypeError("CacheFilter filters a CacheModel")
        self._source = model
        super().setSourceModel(model)
        model.dataChanged.connect(self._source_changed)

    def _source_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles=()) -> None:
        touches_status = top_left.column() <= Column.STATUS <= bottom_right.column()
        if self._statuses is not None and touches_status and not self._refilter_timer.isActive():
            self._refilter_timer.start()

    def refilter(self) -> None:
        """Apply the filters again to every row now (statuses changed)."""
        self._refilter_timer.stop()
        self._refilter(lambda: None)

    def cache_model(self) -> CacheModel:
        return self._source

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.cache_model().sort(column, order)

    @property
    def text(self) -> str:
        return " ".join(self._terms)

    @property
    def store(self) -> str | None:
        return self._store

    @property
    def statuses(self) -> frozenset[str] | None:
        return self._statuses

    def set_text(self, text: str) -> None:
        terms = text.casefold().split()
        if terms != self._terms:
            self._refilter(lambda: setattr(self, "_terms", terms))

    def set_store(self, label: str | None) -> None:
        """Show only the store with this label (None: every store)."""
        if label != self._store:
            self._refilter(lambda: setattr(self, "_store", label))

    def set_statuses(self, statuses: Iterable[str] | None) -> None:
        """Show only rows whose status is one of these (None: every status)."""
        wanted = None if statuses is None else frozenset(statuses)
        if wanted != self._statuses:
            self._refilter(lambda: setattr(self, "_statuses", wanted))

    def _refilter(self, change: Callable[[], None]) -> None:
        # Qt >= 6.10 has begin/endFilterChange and deprecates invalidateRowsFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        # Straight to the Row object: 10,000 data() round trips would cost far more.
        if self._terms == [] and self._store is None and self._statuses is None:
            return True
        row = self._source._rows[source_row]
        if self._store is not None and row.entry.store.label != self._store:
            return False
        if self._statuses is not None and row.status not in self._statuses:
            return False
        haystack = row.haystack
        return all(term in haystack for term in self._terms)

    def row_at(self, proxy_row: int) -> Row:
        return self.cache_model().row_at(self.mapToSource(self.index(proxy_row, 0)).row())
