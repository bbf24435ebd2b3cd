"""Every page stays true after every action: one "the cache changed" path through the window,
the action log watched, F5 during a verification, the Delete dialog, menus, help, layout."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication

from core import actionlog, clean, delete, pins
from core.stores import stores_from_paths
from core.units import age_text
from gui.cache_columns import Column
from gui.cache_page import CachePage
from gui.changes import REMOVED, CacheChange
from gui.clean_model import Col
from gui.clean_page import CleanPage
from gui.delete_action import DeleteDialog
from gui.main_window import MainWindow, fitted_size
from tests.conftest import RealStore, run_cli
from tests.test_clean import files, set_atime, write_feed

WAIT_MS = 60_000
DAY = 86400

pytestmark = pytest.mark.usefixtures("private_settings")


@pytest.fixture
def store(real_store: RealStore, tmp_path: Path) -> RealStore:
    real_store.env["XDG_STATE_HOME"] = str(tmp_path / "state")
    now = time.time()
    for label, age in (("old", 50), ("older", 90), ("new", 1), ("stray", 100)):
        set_atime(real_store.add(label, files(label)), now - age * DAY)
    d = real_store.digests
    write_feed(real_store.env, {d["old"]: "1.0", d["older"]: "0.9", d["new"]: "2.0"})
    return real_store


def open_both(qtbot, store: RealStore) -> tuple[MainWindow, CachePage, CleanPage]:
    """The window with the Cache and Clean up pages, both scanned, as the app builds it."""
    window = MainWindow("test")
    stores = stores_from_paths([str(store.path)])
    cache = CachePage(stores, store.env, homes=[], parent=window)
    window.add_page(cache)
    cleanup = CleanPage(stores, store.env, homes=[], parent=window)
    window.add_page(cleanup)
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    with qtbot.waitSignal(cache.scanFinished, timeout=WAIT_MS):
        window.start()
    with qtbot.waitSignal(cleanup.surveyFinished, timeout=WAIT_MS):
        window.sidebar.setCurrentRow(1)
    window.sidebar.setCurrentRow(0)
    return window, cache, cleanup


def cache_names(page: CachePage) -> set[str]:
    return {r.entry.name for r in page.model.rows}


def clean_names(page: CleanPage) -> set[str]:
    return {v.entry.name for v in page.model.verdicts}


def select_cache(page: CachePage, names: set[str]) -> None:
    sel = page.table.selectionModel()
    sel.clearSelection()
    first = True
    for r in range(page.proxy.rowCount()):
        if page.proxy.row_at(r).entry.name in names:
            flags = (
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            )
            if first:
                sel.setCurrentIndex(page.proxy.index(r, 0), flags)
                first = False
            else:
                sel.select(page.proxy.index(r, 0), flags)


def select_clean(page: CleanPage, name: str) -> None:
    page.show_kept.setChecked(True)
    row = page.model.row_of(next(v.entry.path for v in page.model.verdicts if v.entry.name == name))
    page.table.selectRow(page.proxy.mapFromSource(page.model.index(row, 0)).row())


def test_delete_on_cache_updates_clean_up_and_its_log(qtbot, store) -> None:
    window, cache, cleanup = open_both(qtbot, store)
    d = store.digests
    assert d["old"] in clean_names(cleanup)
    cache.deleter.confirm = lambda _title, _text: True
    select_cache(cache, {d["old"]})
    with qtbot.waitSignal(window.cacheChanged, timeout=WAIT_MS):
        cache.delete_action.trigger()
    assert not (store.path / d["old"]).exists()
    # Every page at once, without F5: the row is gone from both, the log shows the deletion.
    assert d["old"] not in cache_names(cache) and d["old"] not in clean_names(cleanup)
    assert d["old"] in cleanup.log_view.toPlainText()
    assert "Nothing removed yet" not in cleanup.log_view.toPlainText()
    assert not cache.busy  # removed in place, no rescan
    # The header and the footer of Clean up count the same list.
    candidates = sum(1 for v in cleanup.model.verdicts if v.candidate)
    assert f"of {candidates} candidate" in cleanup.total.text()
    assert cleanup.activity.text.startswith(f"{candidates} candidate")


def test_clean_removes_rows_from_the_cache_page_keeping_other_verdicts(qtbot, store) -> None:
    window, cache, cleanup = open_both(qtbot, store)
    d = store.digests
    with qtbot.waitSignal(cache.verifyFinished, timeout=WAIT_MS):
        cache.verify_all()
    assert all(r.outcome is not None for r in cache.model.rows)
    window.sidebar.setCurrentRow(1)
    cleanup.confirm = lambda _title, _text: True
    chosen = {v.entry.name for v in cleanup.model.chosen()}
    assert chosen == {d["old"], d["older"], d["stray"]}
    with qtbot.waitSignal(cleanup.surveyFinished, timeout=WAIT_MS):
        cleanup.clean_action.trigger()
    assert cache_names(cache) == {d["new"]}  # no stale "OK" row for what was removed
    (row,) = cache.model.rows
    assert row.outcome is not None and row.status == "OK"  # the verdict of what stays, kept
    assert not cache.busy


def test_pin_on_cache_is_judged_again_on_clean_up_and_the_pane_follows(qtbot, store) -> None:
    window, cache, cleanup = open_both(qtbot, store)
    d = store.digests
    window.sidebar.setCurrentRow(1)
    select_clean(cleanup, d["older"])
    assert "Remove" in cleanup.details.toPlainText()
    window.sidebar.setCurrentRow(0)
    select_cache(cache, {d["older"]})
    assert cache.pin_action.isEnabled() and not cache.unpin_action.isEnabled()
    cache.pin_action.trigger()
    assert pins.load(pins.pins_path(store.env)).entries == [d["older"]]
    qtbot.waitUntil(lambda: not cleanup.busy, timeout=WAIT_MS)
    # The evidence pane is judged again at once, on the same entry.
    text = cleanup.details.toPlainText()
    assert text.splitlines()[0] == "Hello 0.9: Keep", text
    assert "pinned (this entry)" in text
    assert cache.unpin_action.isEnabled() and not cache.pin_action.isEnabled()
    # And back, from the Clean up page: the pane says Remove again, never "pinned".
    cleanup.unpin_action.trigger()
    qtbot.waitUntil(lambda: not cleanup.busy, timeout=WAIT_MS)
    text = cleanup.details.toPlainText()
    assert ": Remove" in text.splitlines()[0] and "pinned" not in text
    candidates = sum(1 for v in cleanup.model.verdicts if v.candidate)
    assert f"of {candidates} candidates checked" in cleanup.total.text()
    assert cleanup.activity.text.startswith(f"{candidates} candidates among")
    # Nothing selected: the pane explains itself instead of staying blank.
    cleanup.table.selectionModel().clearSelection()
    cleanup.refresh_details()
    assert cleanup.details.toPlainText() == ""
    assert "Select an entry" in cleanup.details.placeholderText()


def test_removals_from_the_command_line_reach_every_page(qtbot, store) -> None:
    """A removal logged by another process (the command line) shows in the log and leaves both
    pages, through the watched action log."""
    _window, cache, cleanup = open_both(qtbot, store)
    d = store.digests
    import shutil

    shutil.rmtree(store.path / d["stray"])
    record = actionlog.Record("removed", str(store.path), d["stray"], "(unowned)", "", 1000)
    actionlog.record([record], actionlog.log_path(store.env), to_syslog=False)
    qtbot.waitUntil(lambda: d["stray"] not in cache_names(cache), timeout=WAIT_MS)
    assert d["stray"] not in clean_names(cleanup)
    assert d["stray"] in cleanup.log_view.toPlainText()


def test_f5_during_verification_waits_for_it(qtbot, tmp_path: Path) -> None:
    """F5 while verifying: the verification goes on to the end (no silent cancel), its count is
    right, and the rescan follows and keeps the verdicts."""
    folder = tmp_path / "store"
    folder.mkdir()
    for i in range(3):
        entry = folder / ("sha256new_" + chr(ord("A") + i) * 52)
        entry.mkdir()
        with open(entry / "big", "wb") as f:
            f.truncate(600 << 20)
    window = MainWindow("test")
    page = CachePage(stores_from_paths([str(folder)]), None, homes=[], parent=window)
    window.add_page(page)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        window.start()
    page.verify_all()
    qtbot.waitUntil(lambda: "Verifying:" in page.activity.text, timeout=WAIT_MS)
    assert page.verifying
    page.rescan_action.trigger()  # F5
    assert page.verifying and not page.scanning  # not cancelled, not racing
    assert "once the verification ends" in page.activity.text
    with qtbot.waitSignal(page.scanFinished, timeout=120_000):
        with qtbot.waitSignal(page.verifyFinished, timeout=120_000):
            pass
        assert page.last_report.startswith("Verified 3 entries")
    assert [r.status for r in page.model.rows] == ["corrupt"] * 3  # carried over the rescan
    assert "cancelled" not in page.activity.text


def test_delete_dialog_lists_what_it_deletes_and_what_it_keeps(qtbot, store) -> None:
    _window, cache, _cleanup = open_both(qtbot, store)
    d = store.digests
    entries = {r.entry.name: r.entry for r in cache.model.rows}
    allowed = [
        clean.Verdict(entries[n], "remove", ["on request"], None, clean.footprint(entries[n].path))
        for n in (d["old"], d["older"])
    ]
    kept = [(entries[d["new"]], ["pinned (this entry)"])] * 12
    dialog = DeleteDialog(delete.Plan(allowed, kept, list, []))
    qtbot.addWidget(dialog)
    assert len(dialog.deleted) == 2 and all(line.startswith("Hello ") for line in dialog.deleted)
    assert len(dialog.kept) == 12 and all("pinned (this entry)" in k for k in dialog.kept)
    # Lists scroll: twelve kept entries take no more room than eight.
    assert dialog.keep_list.height() <= 8 * dialog.keep_list.sizeHintForRow(0) + 12
    assert "password" not in dialog.note.text()  # nothing of a shared store involved
    assert not dialog.delete_button.isDefault()
    # The text the confirmation gets lists the deletions too (what the tests and logs read).
    asked: list[str] = []
    cache.deleter.confirm = lambda _title, text: asked.append(text) is not None
    select_cache(cache, {d["old"], d["older"]})
    with qtbot.waitSignal(cache.deleter.finished, timeout=WAIT_MS):
        cache.delete_action.trigger()
    assert asked[0].startswith("Delete 2 entries, freeing ")
    assert "Will be deleted:" in asked[0] and d["old"][:20] in asked[0]
    assert (store.path / d["old"]).exists()  # cancelled: nothing deleted


def test_cache_menus_and_details_follow_the_selection(qtbot, store) -> None:
    window, cache, _cleanup = open_both(qtbot, store)
    d = store.digests
    names = [a.text().replace("&", "") for a in cache.context_actions() if a is not None]
    for wanted in (
        "Show details",
        "Verify selected",
        "Open folder",
        "Copy path",
        "Copy digest",
        "Pin",
        "Unpin",
        "Show in Clean up",
        "Delete…",
    ):
        assert wanted in names, wanted
    assert cache.delete_action in cache.menu_actions()
    select_cache(cache, {d["old"]})
    assert cache.details.row.entry.name == d["old"]
    cache.copy_digest_action.trigger()
    assert QGuiApplication.clipboard().text() == d["old"]
    # Filtering the selected entry away: the pane and Delete agree (nothing selected).
    cache.filter_edit.setText("no such program at all")
    cache.update_counts()
    assert cache.details.row is None and not cache.delete_action.isEnabled()
    cache.filter_edit.clear()
    select_cache(cache, {d["older"]})
    cache.show_in_clean_action.trigger()
    assert window.current_page is window.pages[1]
    assert window.pages[1].current_verdict().entry.name == d["older"]


def cli_output(env: dict[str, str], *args: str) -> str:
    """What the command line prints (tests/conftest.py's runner), checked to have ended well."""
    proc = run_cli(*args, env=env, text=True)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_ages_and_sizes_read_the_same_on_every_page(qtbot, store) -> None:
    _window, cache, cleanup = open_both(qtbot, store)
    d = store.digests
    row = next(r for r in cache.model.rows if r.entry.name == d["older"])
    cache_age = cache.model.index(row.pos, Column.LAST_USED).data()
    clean_row = cleanup.model.row_of(str(store.path / d["older"]))
    clean_age = cleanup.model.index(clean_row, Col.LAST_USED).data()
    assert cache_age == clean_age == "3 months ago"
    assert age_text(row.entry.usage.last_used) == cache_age
    # The command line's own output: `list` shows the same words, `clean` says the same age.
    cli_env = dict(store.env, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    listed = cli_output(cli_env, "list", "--store", str(store.path))
    (line,) = [x for x in listed.splitlines() if x.rstrip().endswith(d["older"])]
    assert f"  {cache_age}  " in line, line
    dry = cli_output(cli_env, "clean", "--dry-run", "--store", str(store.path))
    (why,) = [v.reasons[0] for v in cleanup.model.verdicts if v.entry.name == d["older"]]
    assert why.startswith(f"not used for {cache_age.removesuffix(' ago')}: last access "), why
    assert why in dry, dry
    assert cleanup.model.headerData(Col.SIZE, Qt.Orientation.Horizontal) == "Disk use"
    tip = cleanup.model.index(clean_row, Col.SIZE).data(Qt.ItemDataRole.ToolTipRole)
    assert "Size:" in tip and "(apparent)" in tip and "Disk use:" in tip
    unowned = cleanup.model.index(cleanup.model.row_of(str(store.path / d["stray"])), Col.PROGRAM)
    assert unowned.data().startswith("(unowned) ") and len(unowned.data()) > len("(unowned) ")


def test_geometry_and_columns_fit_small_and_scaled_screens(qtbot) -> None:
    # 1024x700, and 1280x800 at 150% (853x533 in Qt's pixels): the window fits inside.
    for area in (QRect(0, 0, 1024, 700), QRect(0, 0, 853, 533)):
        size = fitted_size(QSize(1280, 800), area)
        assert size.width() + 16 <= area.width() and size.height() + 48 <= area.height()
    window = MainWindow("test", None)
    page = CachePage([], None, homes=[], parent=window)
    window.add_page(page)
    qtbot.addWidget(window)
    header = page.table.horizontalHeader()
    for col in Column:
        page.table.setColumnHidden(col, col in (Column.FILES, Column.DIGEST))
        header.resizeSection(col, 400)  # saved on a big screen
    for width in (700, 520):  # the table's width at 1024x700, and at 150% on 1280x800
        page.table.fit_columns(width)
        shown = [c for c in Column if not page.table.isColumnHidden(c)]
        last = max(shown, key=header.visualIndex)
        used = sum(header.sectionSize(c) for c in shown if c != last)
        defaults = sum(page.table.default_width(c) for c in shown if c != last)
        assert used <= max(width, defaults), (width, used)
        # Where they cannot all fit, the table scrolls over a bounded width: every header is
        # reachable (none starts beyond the columns' default widths).
        extent = max(width, defaults) + page.table.default_width(last)
        for col in (Column.LAST_USED, Column.ADDED, Column.USED_BY):
            assert header.sectionPosition(col) + page.table.default_width(col) <= extent


@pytest.mark.parametrize("page_id", ["cache", "clean", "sharing", "vms"])
def test_every_page_has_its_offline_help(page_id) -> None:
    from gui.help import help_file

    path = help_file(page_id)
    assert path is not None and path.name == f"{page_id}.html"
    text = path.read_text()
    assert "<h2>" in text and "http" not in text.replace("https://0install.net", "")
    index = help_file("").read_text()
    assert f'href="{page_id}.html"' in index


def test_a_removal_announced_twice_reaches_the_pages_once(qtbot) -> None:
    window = MainWindow("test")
    qtbot.addWidget(window)
    heard = []
    window.cacheChanged.connect(heard.append)
    window.announce_change(CacheChange.of(REMOVED, ["/s/a"], source="cache"))
    window.announce_change(CacheChange.of(REMOVED, ["/s/a", "/s/b"], source="log"))
    assert [sorted(c.paths) for c in heard] == [["/s/a"], ["/s/b"]]
    assert os.sep == "/"


def test_enabling_sharing_makes_the_pages_look_at_the_stores_again(qtbot, tmp_path: Path) -> None:
    """When the Sharing page's look finds the stores changed (the shared store appeared after
    Apply), every page hears it; a look that changes nothing says nothing."""
    from PySide6.QtCore import QObject, Signal

    from gui.app import follow_sharing
    from gui.changes import STORES

    class FakeSharing(QObject):
        refreshed = Signal()

    shared = tmp_path / "shared"
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache"),
        "XDG_CACHE_DIRS": str(shared),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "XDG_CONFIG_DIRS": str(tmp_path / "etc"),
        "XDG_DATA_DIRS": str(tmp_path / "share"),
    }
    window = MainWindow("test")
    qtbot.addWidget(window)
    heard: list[CacheChange] = []
    window.cacheChanged.connect(heard.append)
    sharing = FakeSharing(window)
    follow_sharing(window, sharing, env)
    sharing.refreshed.emit()
    assert heard == []
    (shared / "0install.net" / "implementations").mkdir(parents=True)
    sharing.refreshed.emit()
    assert [c.kind for c in heard] == [STORES]


def test_the_password_is_mentioned_only_for_stores_this_account_cannot_change(
    qtbot, store, monkeypatch
) -> None:
    _window, cache, _cleanup = open_both(qtbot, store)
    entry = next(r.entry for r in cache.model.rows if r.entry.name == store.digests["old"])
    plan = delete.Plan([clean.Verdict(entry, "remove", ["on request"], None, None)], [], list, [])
    assert "password" not in plan.note()
    monkeypatch.setattr(clean, "can_change_here", lambda _entry: False)
    assert "administrator's password" in plan.note()


def test_closing_the_banner_under_the_pointer_keeps_its_place(qtbot) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

    from gui.banner import Banner

    box = QWidget()
    qtbot.addWidget(box)
    layout = QVBoxLayout(box)
    banner = Banner(box)
    below = QLabel("toolbar", box)
    layout.addWidget(banner)
    layout.addWidget(below)
    box.show()
    banner.set_messages(["Something to read"], "info")
    qtbot.waitUntil(lambda: banner.height() > 0 and below.y() > banner.y())
    where = below.y()
    banner.setAttribute(Qt.WidgetAttribute.WA_UnderMouse, True)  # the pointer is on its ✕
    banner.dismiss()
    box.layout().activate()
    assert banner.isVisible() and below.y() == where  # nothing slides under the pointer
    assert banner.messages == []
    banner.setAttribute(Qt.WidgetAttribute.WA_UnderMouse, False)
    QApplication.sendEvent(banner, QEvent(QEvent.Type.Leave))
    box.layout().activate()
    assert not banner.isVisible() and below.y() < where


def test_show_details_gives_the_details_pane_the_room(qtbot, store) -> None:
    _window, cache, _cleanup = open_both(qtbot, store)
    cache.set_default_sizes(cache.width())
    select_cache(cache, {store.digests["old"]})
    before = cache.details.height()
    qtbot.keyClick(cache.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: cache.details.height() > before)
    chart, details = cache.side.sizes()
    assert details >= 2 * chart - 2  # two thirds of the column, visibly bigger
    assert cache.details.hasFocus() or cache.details.isAncestorOf(QGuiApplication.focusObject())


def test_the_window_comes_back_where_it_was_and_on_screen(qtbot, tmp_path: Path) -> None:
    """The frame's place and the size are saved and restored as they were (no drift by a title
    bar per start); a place off the screen is moved back onto it."""
    from PySide6.QtCore import QSettings

    path = str(tmp_path / "window.ini")
    first = MainWindow("test", QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.resize(600, 400)
    first.move(30, 40)
    first.save_state()
    again = MainWindow("test", QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    again.restore_state()
    assert (again.pos().x(), again.pos().y(), again.width(), again.height()) == (30, 40, 600, 400)
    settings = QSettings(path, QSettings.Format.IniFormat)
    settings.setValue("window/place", [5000, 4000, 3000, 2000])  # a bigger screen, elsewhere
    settings.sync()
    away = MainWindow("test", QSettings(path, QSettings.Format.IniFormat))
    qtbot.addWidget(away)
    away.restore_state()
    area = (away.screen() or QGuiApplication.primaryScreen()).availableGeometry()
    assert away.width() <= area.width() and away.height() <= area.height()
    assert area.contains(away.geometry().topLeft())


def test_a_rescan_with_kept_verdicts_never_widens_the_window_at_1024(qtbot, tmp_path: Path) -> None:
    """Seen under openbox at 1024x700: F5 after "Verify all" widened the window to 1070 px (the
    totals' "(measuring 3 of 14)" and every status chip at once), past the screen's edge, and a
    top-level window never shrinks back by itself."""
    from core.demo import build_demo
    from gui.app import _build_window
    from tests.test_gui_cache_page import WAIT_MS, rescan, verify_all

    env = build_demo(tmp_path / "demo")
    window, page = _build_window(None, env, None)
    qtbot.addWidget(window)
    window.resize(QSize(1024, 650))
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        window.start()
    verify_all(qtbot, page)
    rescan(qtbot, page)
    assert window.width() == 1024
