"""The cache table model and its filter, without any widget; and the worker helpers that feed it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from PySide6.QtCore import QPersistentModelIndex, Qt

from core.units import ago_text
from core.verify_entry import Change, VerifyOutcome
from gui import status as st
from gui.cache_columns import Column
from gui.cache_filter import CacheFilter
from gui.cache_model import (
    MAX_RANGES,
    ROW_ROLE,
    SORT_ROLE,
    STATUS_ROLE,
    CacheModel,
    contiguous_ranges,
)
from gui.cache_rows import new_rows, prepare_rows, version_key
from gui.workers import Batcher, Worker, inline_starter

NOW = 1_700_000_000.0
DIGEST = "sha256new_" + "A" * 52


@dataclass(frozen=True)
class FakeStore:
    label: str


@dataclass(frozen=True)
class FakeFeed:
    feed_url: str
    feed_name: str
    version: str


@dataclass
class FakeUsage:
    size: int
    disk: int
    files: int
    last_used: float | None
    error: str | None = None


@dataclass(eq=False)
class FakeEntry:
    """Just the attributes of core.cache.Entry that the model reads."""

    name: str
    program: str = "(unowned)"
    version: str = ""
    store: FakeStore = FakeStore("user")
    kind: str = "implementation"
    reason: str = ""
    feed: FakeFeed | None = None
    used_by: list[str] = field(default_factory=list)
    added: float = NOW - 86400
    usage: FakeUsage | None = None
    atime_reliable: bool = True
    added_from: str = "manifest"
    issue: str = ""
    fingerprint: tuple = (1, 2, 3, 4)
    mode: int = 0o40555

    @property
    def path(self) -> str:
        return f"/cache/{self.name}"

    @property
    def digest(self) -> object | None:
        return self.name if self.name.startswith("sha") else None

    @property
    def short_name(self) -> str:
        from core.cache import short_digest

        return short_digest(self.name)


def entry(i: int, program: str = "Editor", version: str = "1.0", **kw) -> FakeEntry:
    feed = FakeFeed(f"https://example.com/{program.lower()}.xml", program, version)
    return FakeEntry(f"sha256new_{i:052d}", program, version, feed=feed, **kw)


def usage(size: int, last_used: float | None = NOW - 3600, files: int = 3) -> FakeUsage:
    return FakeUsage(size, size, files, last_used)


@pytest.fixture
def model(qapp) -> CacheModel:
    m = CacheModel()
    m.now = lambda: NOW
    return m


@pytest.fixture
def proxy(model: CacheModel) -> CacheFilter:
    p = CacheFilter()
    p.setSourceModel(model)
    return p


def column(proxy: CacheFilter, col: Column, role: int = Qt.ItemDataRole.DisplayRole) -> list:
    return [proxy.index(r, col).data(role) for r in range(proxy.rowCount())]


def programs(proxy: CacheFilter) -> list[str]:
    return column(proxy, Column.PROGRAM)


def test_rows_show_entries_and_pending_sizes(model: CacheModel, proxy: CacheFilter) -> None:
    e = entry(1, "Editor", "2.1", used_by=["hello", "world"])
    model.set_entries([e, FakeEntry("tmp-x1y2", "(temporary)", kind="temporary")])
    assert proxy.rowCount() == 2
    row0 = [proxy.index(0, c).data() for c in Column]
    assert row0[Column.PROGRAM] == "Editor"
    assert row0[Column.VERSION] == "2.1"
    assert row0[Column.STORE] == "user"
    assert row0[Column.SIZE] == "…"
    assert row0[Column.USED_BY] == "hello, world"
    assert row0[Column.STATUS] == "not verified"
    assert row0[Column.DIGEST] == e.name
    assert proxy.index(0, Column.PROGRAM).data(Qt.ItemDataRole.ToolTipRole) == e.feed.feed_url
    model.apply_usages([(e, usage(1_234_567, last_used=NOW - 21 * 86400, files=1234))])
    assert proxy.index(0, Column.SIZE).data() == "1.2 MB"
    assert proxy.index(0, Column.FILES).data() == "1,234"
    assert proxy.index(0, Column.LAST_USED).data() == "a month ago"


def test_noatime_and_empty_entries_say_why_last_use_is_unknown(model: CacheModel) -> None:
    a = entry(1, usage=usage(10), atime_reliable=False)
    b = entry(2, usage=usage(0, last_used=None, files=0))
    model.set_entries([a, b])
    assert model.index(0, Column.LAST_USED).data() == "unknown (noatime)"
    assert model.index(1, Column.LAST_USED).data() == "never (empty)"
    assert model.index(0, Column.LAST_USED).data(SORT_ROLE) == -1.0


def test_sizes_sort_as_numbers_not_text(model: CacheModel, proxy: CacheFilter) -> None:
    # As text, "10.0 kB" < "2.0 MB" < "900 Bytes": the raw values must decide.
    model.set_entries(
        [
            entry(1, "Big", usage=usage(2_000_000)),
            entry(2, "Tiny", usage=usage(900)),
            entry(3, "Medium", usage=usage(10_000)),
            entry(4, "Unmeasured"),
        ]
    )
    proxy.sort(Column.SIZE, Qt.SortOrder.AscendingOrder)
    assert programs(proxy) == ["Unmeasured", "Tiny", "Medium", "Big"]
    assert column(proxy, Column.SIZE, SORT_ROLE) == [-1, 900, 10_000, 2_000_000]
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    assert programs(proxy) == ["Big", "Medium", "Tiny", "Unmeasured"]


def test_times_versions_and_status_sort_by_raw_values(
    model: CacheModel, proxy: CacheFilter
) -> None:
    entries = [
        entry(1, "A", "1.10", usage=usage(1, last_used=NOW - 10)),
        entry(2, "B", "1.9", usage=usage(1, last_used=NOW - 86400 * 400)),
        entry(3, "C", "1.10-pre2", usage=usage(1, last_used=NOW - 3600)),
        entry(4, "D", "1.10-post", usage=usage(1, last_used=NOW - 86400)),
    ]
    model.set_entries(entries)
    proxy.sort(Column.LAST_USED, Qt.SortOrder.AscendingOrder)
    assert programs(proxy) == ["B", "D", "C", "A"]
    proxy.sort(Column.VERSION, Qt.SortOrder.AscendingOrder)
    assert column(proxy, Column.VERSION) == ["1.9", "1.10-pre2", "1.10", "1.10-post"]
    rows = {r.entry.program: r for r in model.rows}
    model.apply_outcomes(
        [
            (rows["C"], VerifyOutcome("corrupt", "changed")),
            (rows["A"], VerifyOutcome("ok", "fine")),
            (rows["D"], VerifyOutcome("error", "unreadable")),
        ]
    )
    proxy.sort(Column.STATUS, Qt.SortOrder.DescendingOrder)
    assert column(proxy, Column.STATUS) == ["corrupt", "error", "not verified", "OK"]


def test_relative_times_read_naturally() -> None:
    day = 86400
    cases = {
        30: "just now",
        300: "5 minutes ago",
        3 * 3600: "3 hours ago",
        30 * 3600: "a day ago",
        3 * day: "3 days ago",
        21 * day: "a month ago",
        90 * day: "3 months ago",
        100 * day: "3 months ago",
        400 * day: "1 year, 1 month ago",
        800 * day: "2 years ago",
    }
    assert {s: ago_text(s) for s in cases} == cases


def test_version_key_orders_like_0install() -> None:
    versions = ["0.9", "1.0-pre1", "1.0-rc1", "1.0", "1.0-post", "1.0.1", "1.2", "1.10", "10"]
    scrambled = ["1.10", "1.0-post", "10", "0.9", "1.0-rc1", "1.2", "1.0", "1.0.1", "1.0-pre1"]
    assert sorted(scrambled, key=version_key) == versions


def test_filter_text_matches_program_version_digest_and_feed(
    model: CacheModel, proxy: CacheFilter
) -> None:
    editor = entry(1, "Hello Editor", "2.4")
    viewer = entry(2, "Gallery Viewer", "0.7")
    viewer.feed = FakeFeed("https://pics.example/gallery.xml", "Gallery Viewer", "0.7")
    model.set_entries([editor, viewer, FakeEntry("tmp-abc", "(temporary)", kind="temporary")])
    proxy.set_text("editor")
    assert programs(proxy) == ["Hello Editor"]
    proxy.set_text("0.7")
    assert programs(proxy) == ["Gallery Viewer"]
    proxy.set_text(viewer.name[-12:].lower())  # case-insensitive, any part of the digest
    assert programs(proxy) == ["Gallery Viewer"]
    proxy.set_text("pics.example")
    assert programs(proxy) == ["Gallery Viewer"]
    proxy.set_text("hello 2.4")  # every word must match
    assert programs(proxy) == ["Hello Editor"]
    proxy.set_text("hello 0.7")
    assert programs(proxy) == []
    proxy.set_text("")
    assert proxy.rowCount() == 3


def test_filter_by_store_and_status(model: CacheModel, proxy: CacheFilter) -> None:
    model.set_entries(
        [
            entry(1, "U1"),
            entry(2, "S1", store=FakeStore("system")),
            entry(3, "S2", store=FakeStore("system")),
            FakeEntry("sha256new_lower", "(unowned)", kind="suspicious", reason="lower-case"),
        ]
    )
    proxy.set_store("system")
    assert programs(proxy) == ["S1", "S2"]
    rows = {r.entry.program: r for r in model.rows}
    model.apply_outcomes([(rows["S2"], VerifyOutcome("corrupt", "x"))])
    proxy.set_statuses({st.CORRUPT})
    assert programs(proxy) == ["S2"]
    proxy.set_store(None)
    proxy.set_statuses(st.PROBLEMS)
    assert programs(proxy) == ["S2", "(unowned) lower"]
    proxy.set_statuses(None)
    assert proxy.rowCount() == 4


def test_status_filter_follows_results_as_they_arrive(
    model: CacheModel, proxy: CacheFilter, qtbot
) -> None:
    model.set_entries([entry(i, f"P{i}") for i in range(5)])
    proxy.set_statuses(st.PROBLEMS)
    assert proxy.rowCount() == 0
    model.apply_outcomes([(model.row_at(3), VerifyOutcome("corrupt", "x"))])
    qtbot.waitUntil(lambda: programs(proxy) == ["P3"])  # re-filtered on a throttle, not per batch
    model.apply_outcomes([(model.row_at(3), VerifyOutcome("ok", "fine"))])
    qtbot.waitUntil(lambda: proxy.rowCount() == 0)


def test_scattered_batches_are_announced_as_one_span(model: CacheModel) -> None:
    model.set_entries([entry(i, f"P{i}") for i in range(2 * MAX_RANGES + 10)])
    signals: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda a, b, roles=(): signals.append((a.row(), b.row())))
    few = range(3, 2 * 20, 2)  # 19 separate rows: announced one by one
    model.apply_usages([(model.row_at(i).entry, usage(1)) for i in few])
    assert signals == [(i, i) for i in few]
    signals.clear()
    many = range(3, 2 * MAX_RANGES + 6, 2)  # more separate runs than MAX_RANGES: one span
    model.apply_usages([(model.row_at(i).entry, usage(1)) for i in many])
    assert signals == [(3, many[-1])]


def test_suspicious_stays_suspicious_unless_verification_finds_worse(model: CacheModel) -> None:
    e = FakeEntry(
        "sha256new_" + "B" * 52,
        "Python",
        "3.12",
        kind="suspicious",
        reason="writable by everyone (mode 0777)",
        issue="world-writable",
        feed=FakeFeed("https://example.com/python.xml", "Python", "3.12"),
    )
    model.set_entries([e])
    row = model.row_at(0)
    assert row.status == st.SUSPICIOUS
    # The program keeps its name; the status says what is wrong, in fitting words.
    assert model.index(0, Column.PROGRAM).data() == "Python"
    assert model.index(0, Column.STATUS).data() == "world-writable"
    model.set_verifying([row], True)
    assert model.index(0, Column.STATUS).data() == "verifying"
    model.apply_outcomes([(row, VerifyOutcome("ok", "contents match"))])
    assert model.index(0, Column.STATUS).data(STATUS_ROLE) == "suspicious"
    assert model.index(0, Column.STATUS).data(Qt.ItemDataRole.ToolTipRole) == (
        f"{e.reason}\nVerified: OK, just now: contents match"
    )
    model.apply_outcomes([(row, VerifyOutcome("corrupt", "content changed"))])
    assert model.index(0, Column.STATUS).data(STATUS_ROLE) == "corrupt"
    # Damaged AND world-writable: neither problem hides the other.
    assert model.index(0, Column.STATUS).data() == "corrupt, world-writable"


def test_a_planted_symlink_stays_planted_after_verification(
    model: CacheModel, proxy: CacheFilter
) -> None:
    e = FakeEntry(
        "sha256new_" + "C" * 52,
        "Hello",
        "2.1",
        kind="suspicious",
        reason="a symlink to /tmp/evil named like an implementation, planted in the store",
        issue="planted",
        mode=0o120777,
        feed=FakeFeed("https://example.com/hello.xml", "Hello", "2.1"),
    )
    model.set_entries([e])
    assert model.index(0, Column.STATUS).data() == "planted"
    model.apply_outcomes([(model.row_at(0), VerifyOutcome("corrupt", "not a directory"))])
    assert model.row_at(0).status == st.SUSPICIOUS
    assert model.index(0, Column.STATUS).data() == "planted"
    proxy.set_text("hello")
    assert proxy.rowCount() == 1  # found by its program's name


def test_unknown_programs_are_told_apart_by_a_short_digest(model: CacheModel) -> None:
    a = FakeEntry("sha256new_" + "RZ3AB4XW" + "A" * 44)
    b = FakeEntry("sha256new_" + "QQ7ZZ2KL" + "A" * 44)
    model.set_entries([a, b])
    texts = sorted(model.index(r, Column.PROGRAM).data() for r in range(2))
    assert texts == ["(unowned) QQ7ZZ2KL…", "(unowned) RZ3AB4XW…"]


def test_sizes_read_plainly(model: CacheModel) -> None:
    small = entry(1, "Small", usage=FakeUsage(51, 4096, 1, NOW))
    empty = entry(2, "Empty", usage=FakeUsage(4096, 4096, 0, None))
    big = entry(3, "Big", usage=FakeUsage(1_234_567, 1_300_000, 9, NOW))
    model.set_entries([small, empty, big])
    cells = {model.row_at(r).entry.program: model.index(r, Column.SIZE) for r in range(3)}
    assert cells["Small"].data() == "51 bytes"
    assert cells["Small"].data(Qt.ItemDataRole.ToolTipRole) == "51 bytes, 4.1 kB on disk"
    assert cells["Empty"].data() == "empty"
    assert "no files inside" in cells["Empty"].data(Qt.ItemDataRole.ToolTipRole)
    assert cells["Big"].data() == "1.2 MB"
    assert cells["Big"].data(Qt.ItemDataRole.ToolTipRole) == (
        "1.2 MB (1,234,567 bytes), 1.3 MB on disk"
    )
    assert "Bytes" not in " ".join(str(c.data()) for c in cells.values())


def test_added_says_where_its_time_comes_from(model: CacheModel) -> None:
    a = entry(1, "A")
    b = entry(2, "B", added_from="directory")
    model.set_entries([a, b])
    tips = {
        model.row_at(r).entry.program: model.index(r, Column.ADDED).data(
            Qt.ItemDataRole.ToolTipRole
        )
        for r in range(2)
    }
    assert tips["A"].endswith("when 0install wrote its .manifest file, i.e. added it")
    assert tips["B"].endswith("the directory's modification time (it has no .manifest file)")


def test_verdicts_survive_a_rescan_unless_the_entry_changed(model: CacheModel) -> None:
    from gui.cache_rows import carry_verdicts, verdict_age

    old = [entry(1, "Same"), entry(2, "Changed"), entry(3, "Never")]
    model.set_entries(old)
    rows = {r.entry.program: r for r in model.rows}
    model.apply_outcomes(
        [(rows["Same"], VerifyOutcome("ok", "fine")), (rows["Changed"], VerifyOutcome("ok", "x"))]
    )
    model.stamp([rows["Same"], rows["Changed"]], NOW - 600)
    again = [entry(1, "Same"), entry(2, "Changed", fingerprint=(1, 2, 9, 4)), entry(3, "Never")]
    fresh = new_rows(again)
    assert carry_verdicts(model.rows, fresh) == (1, 1)
    by = {r.entry.program: r for r in fresh}
    assert by["Same"].status == st.OK and verdict_age(by["Same"], NOW) == "OK, 10 minutes ago"
    assert by["Changed"].status == st.NOT_VERIFIED and by["Changed"].outcome is None
    assert by["Never"].status == st.NOT_VERIFIED


def test_status_updates_announce_only_the_changed_rows(model: CacheModel, qtbot) -> None:
    model.set_entries([entry(i, f"P{i}") for i in range(10)])
    signals: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(
        lambda a, b, roles=(): signals.append((a.row(), b.row(), a.column(), b.column()))
    )
    verdicts = [(model.row_at(i), VerifyOutcome("ok", "fine")) for i in (2, 3, 4, 7)]
    model.apply_outcomes(verdicts)
    last = len(Column) - 1
    assert signals == [(2, 4, 0, last), (7, 7, 0, last)]
    signals.clear()
    model.apply_usages([(model.row_at(i).entry, usage(5)) for i in (9, 0, 1)])
    assert signals == [(0, 1, Column.SIZE, Column.LAST_USED), (9, 9, Column.SIZE, Column.LAST_USED)]
    for i in range(10):
        expected = "OK" if i in (2, 3, 4, 7) else "not verified"
        assert model.index(i, Column.STATUS).data() == expected


def test_results_for_rows_of_an_older_scan_are_dropped(model: CacheModel) -> None:
    old = entry(1, "Old")
    model.set_entries([old])
    old_row = model.row_at(0)
    model.set_entries([entry(2, "New")])
    assert model.apply_usages([(old, usage(5))]) == []
    assert model.apply_outcomes([(old_row, VerifyOutcome("corrupt", "x"))]) == []
    assert model.row_at(0).status == st.NOT_VERIFIED


def test_resort_keeps_persistent_indexes_on_their_rows(
    model: CacheModel, proxy: CacheFilter
) -> None:
    entries = [entry(i, f"P{i}") for i in range(6)]
    model.set_entries(entries)
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    marked = QPersistentModelIndex(proxy.index(0, Column.PROGRAM))
    name = marked.data()
    model.apply_usages([(e, usage(10 * i)) for i, e in enumerate(entries)])
    assert model.resort()
    assert not model.resort()  # nothing changed since
    assert column(proxy, Column.SIZE, SORT_ROLE) == [50, 40, 30, 20, 10, 0]
    assert marked.data() == name
    assert marked.data(ROW_ROLE).entry.program == name


def test_stats_count_statuses_and_bytes(model: CacheModel) -> None:
    a = entry(1, "Editor", usage=usage(300))
    b = entry(2, "Editor", "2.0", usage=usage(700), store=FakeStore("system"))
    c = entry(3, "Viewer", usage=usage(500))
    d = FakeEntry("tmp-1", "(temporary)", kind="temporary")
    model.set_entries([a, b, c, d])
    model.apply_outcomes(
        [
            (
                model.row_for(c),
                VerifyOutcome(
                    "corrupt", "x", changes=[Change("/bin/run", "modified", ("content",))]
                ),
            )
        ]
    )
    stats = model.stats()
    assert stats.entries == 4 and stats.measured == 3 and stats.total_size == 1500
    assert stats.by_status == {"corrupt": 1, "not verified": 3}
    assert stats.by_store == {"user": 800, "system": 700}
    assert stats.largest == [("Editor", 1000), ("Viewer", 500)]


def test_problem_rows_are_tinted_and_status_has_an_icon(model: CacheModel) -> None:
    model.set_entries([entry(1), entry(2)])
    model.apply_outcomes(
        [
            (model.row_at(0), VerifyOutcome("corrupt", "x")),
            (model.row_at(1), VerifyOutcome("ok", "fine")),
        ]
    )
    assert model.index(0, Column.VERSION).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert model.index(1, Column.VERSION).data(Qt.ItemDataRole.BackgroundRole) is None
    icon = model.index(0, Column.STATUS).data(Qt.ItemDataRole.DecorationRole)
    assert not icon.isNull()
    assert model.index(0, Column.SIZE).data(Qt.ItemDataRole.TextAlignmentRole) & int(
        Qt.AlignmentFlag.AlignRight
    )


def test_contiguous_ranges() -> None:
    assert contiguous_ranges([5, 1, 2, 2, 9, 3]) == [(1, 3), (5, 5), (9, 9)]
    assert contiguous_ranges([]) == []


# --- the worker helpers ------------------------------------------------------------------------


def test_batcher_delivers_items_from_threads_in_one_batch(qtbot) -> None:
    batcher = Batcher(interval_ms=50)
    batches: list[list[int]] = []
    batcher.delivered.connect(batches.append)

    def produce() -> None:
        for i in range(1000):
            batcher.put(i)
        batcher.put_many(list(range(1000, 1500)))
        batcher.put_many([])

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()  # the GUI thread processes no events meanwhile: everything must ride together
    qtbot.waitUntil(lambda: sum(map(len, batches)) == 1500)
    assert batches == [list(range(1500))]


def test_batcher_flush_delivers_at_once(qtbot) -> None:
    batcher = Batcher(interval_ms=10_000)
    batches: list[list[str]] = []
    batcher.delivered.connect(batches.append)
    batcher.put("a")
    batcher.flush()
    assert batches == [["a"]]
    batcher.flush()
    assert batches == [["a"]]


def test_worker_delivers_result_on_the_gui_thread(qtbot) -> None:
    worker = Worker(lambda: threading.current_thread().name, name="probe-thread")
    seen: list[tuple[object, object, str]] = []
    worker.done.connect(lambda r, e: seen.append((r, e, threading.current_thread().name)))
    with qtbot.waitSignal(worker.done, timeout=5000):
        worker.start()
    assert seen == [("probe-thread", None, threading.main_thread().name)]
    assert worker.wait(0)


def test_worker_delivers_exceptions(qtbot) -> None:
    def fail() -> None:
        raise OSError("disk on fire")

    worker = Worker(fail, starter=inline_starter, name="failing")
    seen: list[tuple[object, object]] = []
    worker.done.connect(lambda r, e: seen.append((r, e)))
    with qtbot.waitSignal(worker.done, timeout=5000):
        worker.start()
        assert seen == []  # never inside start(), even with an inline starter
    assert seen[0][0] is None
    assert isinstance(seen[0][1], OSError) and str(seen[0][1]) == "disk on fire"


def test_worker_wait_times_out_while_running(qtbot) -> None:
    release = threading.Event()
    worker = Worker(release.wait)
    worker.start()
    assert not worker.wait(0.05)
    assert worker.running
    with qtbot.waitSignal(worker.done, timeout=5000):
        release.set()
    assert worker.wait(0) and not worker.running


def test_rows_prepared_off_the_gui_thread_keep_the_tables_sort(
    model: CacheModel, proxy: CacheFilter
) -> None:
    entries = [
        entry(i, p, usage=usage(s)) for i, (p, s) in enumerate([("B", 300), ("A", 100), ("C", 200)])
    ]
    proxy.sort(Column.SIZE, Qt.SortOrder.DescendingOrder)
    rows = prepare_rows(entries, Column.SIZE, Qt.SortOrder.DescendingOrder)
    assert [r.entry.program for r in rows] == ["B", "C", "A"]
    model.set_rows(rows, (Column.SIZE, Qt.SortOrder.DescendingOrder))
    assert programs(proxy) == ["B", "C", "A"]
    # Prepared for another sort (the user clicked a header meanwhile): sorted again on arrival.
    model.set_rows(
        prepare_rows(entries, Column.PROGRAM), (Column.PROGRAM, Qt.SortOrder.AscendingOrder)
    )
    assert programs(proxy) == ["B", "C", "A"]


def test_rows_made_while_entries_arrive_are_used_as_they_are(qapp) -> None:
    entries = [
        entry(i, p, usage=usage(s))
        for i, (p, s) in enumerate([("B", 300), ("A", 100), ("D", 50), ("C", 200)])
    ]
    made = new_rows(entries[:2])  # the first chunk, made before the rest arrived
    rows = prepare_rows(entries, Column.SIZE, Qt.SortOrder.DescendingOrder, made)
    assert [r.entry.program for r in rows] == ["B", "C", "A", "D"]
    assert {id(r) for r in made} <= {id(r) for r in rows}  # adopted, not made again
    assert sorted(r.rank for r in rows) == [0, 1, 2, 3]
    assert [r.entry.program for r in sorted(rows, key=lambda r: r.rank)] == ["A", "B", "C", "D"]


def test_running_totals_match_a_recount(model: CacheModel) -> None:
    import random

    rng = random.Random(7)
    entries = [
        entry(i, f"P{i % 5}", store=FakeStore("user" if i % 3 else "system")) for i in range(60)
    ]
    model.set_entries(entries)
    verdicts = ("ok", "corrupt", "error", "skipped")
    for _ in range(200):
        row = model.row_at(rng.randrange(60))
        action = rng.randrange(3)
        if action == 0:
            model.apply_usages([(row.entry, usage(rng.randrange(10_000)))])
        elif action == 1:
            model.set_verifying([row], rng.random() < 0.5)
        else:
            model.apply_outcomes([(row, VerifyOutcome(rng.choice(verdicts), "x"))])
    running = model.stats()
    model.set_rows(model.rows[:])  # adopting the same rows recounts everything from scratch
    assert model.stats() == running
    assert sum(running.by_status.values()) == 60


@pytest.mark.parametrize(
    ("done", "total", "bytes_done", "bytes_total", "elapsed", "expected"),
    [
        # Many small entries: the engine's byte total (only what it has walked) says "almost
        # done", the entries say a quarter: the line must not promise the end in a second.
        (
            250,
            1000,
            20_000_000,
            21_000_000,
            2.0,
            "Verifying: 250 of 1,000 entries · 20.0 MB read · 10.0 MB/s · about 6 s left",
        ),
        # One huge entry still being hashed: no entry done yet, the bytes tell how far it is.
        (
            0,
            1,
            2_000_000_000,
            8_000_000_000,
            4.0,
            "Verifying: 0 of 1 entries · 2.0 GB read · 500.0 MB/s · about 12 s left",
        ),
    ],
    ids=["many-small-entries", "one-huge-entry"],
)
def test_verify_progress_line_shows_the_longer_time_left(
    done: int, total: int, bytes_done: int, bytes_total: int, elapsed: float, expected: str
) -> None:
    from core.verify import Progress
    from gui.cache_verify import verify_progress_text

    p = Progress(
        entries_done=done,
        entries_total=total,
        bytes_done=bytes_done,
        bytes_total=bytes_total,
        elapsed=elapsed,
    )
    assert verify_progress_text(p) == (pytest.approx(0.25), expected)


def test_durations_read_as_people_say_them() -> None:
    from gui.activity import duration_text

    assert [duration_text(s) for s in (2.5, 8, 75, 7300)] == [
        "2.5 s",
        "8 s",
        "1 min 15 s",
        "2 h 01 min",
    ]
