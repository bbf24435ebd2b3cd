"""The main window over real stores filled by the real 0install: scanning, verifying, cancelling,
details, keyboard, settings, and the --screenshot mode."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from core.feeds import escape_feed_url
from core.stores import stores_from_paths
from gui import status as st
from gui.app import main
from gui.cache_columns import Column
from gui.cache_page import CachePage
from gui.main_window import MainWindow, Page

# The offscreen platform cannot pass size hints to a window manager and says so each time a
# window's minimum size changes; that is not a problem of the app.

FEED_URL = "https://tools.example/hello-tool.xml"
ZI = "http://zero-install.sourceforge.net/2004/injector/interface"
WAIT_MS = 60_000  # generous: a slow CI machine must not fail, a hang still ends


# Every test: QSettings go to a temporary directory (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("private_settings")


def write_feed(env: dict[str, str], name: str, impls: dict[str, str]) -> None:
    """A cached feed naming implementations: digest directory name -> version."""
    lines = []
    for digest, version in impls.items():
        algorithm, value = digest.split("_", 1)  # sha256new_VALUE
        lines.append(
            f'  <implementation id="{digest}" version="{version}">'
            f'<manifest-digest {algorithm}="{value}"/></implementation>\n'
        )
    body = "".join(lines)
    feed = (
        f'<?xml version="1.0"?>\n<interface xmlns="{ZI}" uri="{FEED_URL}">\n'
        f"  <name>{name}</name>\n  <summary>a tool</summary>\n{body}</interface>\n"
    )
    folder = Path(env["XDG_CACHE_HOME"]) / "0install.net" / "interfaces"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / escape_feed_url(FEED_URL)).write_text(feed)


@pytest.fixture
def three_impls(real_store) -> dict[str, Path]:
    """Two versions of "Hello Tool" (cached feed) and one implementation no feed lists."""
    paths = {
        "v1": real_store.add(
            "v1", {"hello.txt": "hello 1\n", "bin/": "", "bin/run": "!#!/bin/sh\n"}
        ),
        "v2": real_store.add("v2", {"hello.txt": "hello 2\n", "lib/": "", "lib/data": "x" * 5000}),
        "orphan": real_store.add("orphan", {"readme": "nobody's\n"}),
    }
    write_feed(
        real_store.env,
        "Hello Tool",
        {real_store.digests["v1"]: "1.0", real_store.digests["v2"]: "2.0"},
    )
    return paths


def damage(path: Path, name: str, content: bytes) -> None:
    """Change a file inside a read-only implementation, as a disk fault or an intruder would."""
    target = path / name
    os.chmod(path, 0o755)
    os.chmod(target, 0o644)
    before = target.stat()
    target.write_bytes(content)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # a silent change


def open_window(
    qtbot, *, env=None, stores=None, settings: QSettings | None = None, scan: bool = True
) -> tuple[MainWindow, CachePage]:
    window = MainWindow("test", settings)
    page = CachePage(stores, env, parent=window)
    window.add_page(page)
    qtbot.addWidget(window)
    window.restore_state()
    window.show()
    if scan:
        with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
            window.start()
    return window, page


def table_rows(page: CachePage) -> dict[str, dict[str, str]]:
    """Digest -> {column header: shown text}, as the view shows them."""
    proxy = page.proxy
    result = {}
    for r in range(proxy.rowCount()):
        cells = {c.name: proxy.index(r, c).data() for c in Column}
        result[cells["DIGEST"]] = cells
    return result


def test_scan_lists_real_store_with_program_names(qtbot, real_store, three_impls) -> None:
    _window, page = open_window(qtbot, env=real_store.env)
    rows = table_rows(page)
    d = real_store.digests
    assert set(rows) == {d["v1"], d["v2"], d["orphan"]}
    assert (rows[d["v1"]]["PROGRAM"], rows[d["v1"]]["VERSION"]) == ("Hello Tool", "1.0")
    assert (rows[d["v2"]]["PROGRAM"], rows[d["v2"]]["VERSION"]) == ("Hello Tool", "2.0")
    assert rows[d["orphan"]]["PROGRAM"] == "(unowned) " + d["orphan"][10:18] + "…"
    assert {r["STATUS"] for r in rows.values()} == {"not verified"}
    # Measured in the background, then filled in: two files and the .manifest 0install wrote.
    assert rows[d["v2"]]["FILES"] == "3"
    manifest = (three_impls["v2"] / ".manifest").stat().st_size
    v2 = next(r for r in page.model.rows if r.entry.name == d["v2"])
    assert v2.entry.usage.size >= 8 + 5000 + manifest
    assert rows[d["v2"]]["SIZE"] == f"{v2.entry.usage.size / 1000:.1f} kB"
    assert page.summary.totals_text.startswith("3 entries")
    assert not page.banner.isVisible()
    assert not page.activity.active


def test_verification_turns_the_damaged_entry_red_and_the_rest_green(
    qtbot, real_store, three_impls
) -> None:
    damage(three_impls["v2"], "hello.txt", b"hello 2, tampered\n")
    _window, page = open_window(qtbot, env=real_store.env)
    with qtbot.waitSignal(page.verifyFinished, timeout=WAIT_MS):
        page.verify_all_action.trigger()
    d = real_store.digests
    rows = table_rows(page)
    assert rows[d["v2"]]["STATUS"] == "corrupt"
    assert rows[d["v1"]]["STATUS"] == "OK"
    assert rows[d["orphan"]]["STATUS"] == "OK"
    assert page.activity.text.startswith("Verified 3 entries in ")
    assert page.activity.text.endswith(": 1 corrupt, 2 OK")

    model = page.model
    by_name = {r.entry.name: r for r in model.rows}
    bad = model.index(by_name[d["v2"]].pos, Column.PROGRAM)
    good = model.index(by_name[d["v1"]].pos, Column.PROGRAM)
    red = st.status_color(st.CORRUPT)
    assert bad.data(Qt.ItemDataRole.BackgroundRole).rgb() == red.rgb()
    assert good.data(Qt.ItemDataRole.BackgroundRole) is None
    icon = model.index(good.row(), Column.STATUS).data(Qt.ItemDataRole.DecorationRole)
    centre = icon.pixmap(16, 16).toImage().pixelColor(8, 3)  # the badge's top: its colour
    assert centre.rgb() == st.status_color(st.OK).rgb()

    assert page.summary.chip(st.CORRUPT).isVisible()
    assert page.summary.chip(st.CORRUPT).text() == "1 corrupt"
    assert page.summary.chip(st.OK).text() == "2 OK"
    assert page.summary.problems_button.isEnabled()

    # One click on the summary shows only the problem, and the details say what changed.
    page.summary.problems_button.click()
    assert page.proxy.rowCount() == 1
    page.select_proxy_row(0)
    details = page.details
    assert details.row is by_name[d["v2"]]
    assert "Damaged" in details.alarm_text
    assert details.changes == ["modified /hello.txt: content, size 8 -> 18 bytes (+10)"]
    assert details.field("Verification").startswith("Contents changed since it was added")
    assert details.field("Digest") == d["v2"]
    assert details.field("Program") == "Hello Tool"
    assert details.field("Feed URL") == FEED_URL


def test_cancel_stops_verification_promptly(qtbot, tmp_path: Path) -> None:
    # Digest-named entries whose big sparse files take many seconds to hash: cancel must not wait.
    store = tmp_path / "store"
    store.mkdir()
    names = []
    for i in range(4):
        entry = store / ("sha256new_" + chr(ord("A") + i) * 52)
        entry.mkdir()
        with open(entry / "big", "wb") as f:
            f.truncate(8 << 30)
        names.append(entry.name)
    _window, page = open_window(qtbot, stores=stores_from_paths([str(store)]))
    assert page.model.rowCount() == 4
    page.verify_all()
    assert page.verifying
    qtbot.waitUntil(lambda: "Verifying:" in page.activity.text, timeout=WAIT_MS)
    with qtbot.waitSignal(page.verifyFinished, timeout=10_000):
        qtbot.keyClick(page.table, Qt.Key.Key_Escape)  # Escape cancels a run
        assert "Cancelling" in page.activity.text
    assert not page.verifying
    assert page.activity.text.startswith("Verification cancelled after ")
    assert not page.cancel_action.isEnabled()
    assert not page.activity.active
    statuses = [r.status for r in page.model.rows]
    assert st.VERIFYING not in statuses  # nothing left half-done
    assert statuses.count(st.NOT_VERIFIED) >= 1  # it really stopped before the end


def test_missing_store_is_reported_in_the_banner(qtbot, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-store"
    _window, page = open_window(qtbot, stores=stores_from_paths([str(missing)]))
    assert page.banner.isVisible()
    assert str(missing) in page.banner.text
    assert "does not exist" in page.banner.text
    assert page.model.rowCount() == 0
    assert not QApplication.activeModalWidget()


def test_a_failing_worker_reaches_the_banner(qtbot, monkeypatch, tmp_path: Path) -> None:
    import gui.cache_jobs

    def broken_scan(*_args, **_kwargs):
        raise RuntimeError("the index is on fire")

    monkeypatch.setattr(gui.cache_jobs, "scan_in_child", broken_scan)
    _window, page = open_window(qtbot, stores=[])
    assert "Scanning the stores failed: RuntimeError: the index is on fire" in page.banner.text
    assert not page.busy and not page.activity.active


def test_scans_in_this_process_when_no_child_can_start(
    qtbot, monkeypatch, real_store, three_impls
) -> None:
    import gui.cache_jobs
    from core.child import ChildError

    def no_child(*_args, **_kwargs):
        raise ChildError("could not start the core.scan_process process: no such file")

    monkeypatch.setattr(gui.cache_jobs, "scan_in_child", no_child)
    _window, page = open_window(qtbot, env=real_store.env)
    assert {r.entry.name for r in page.model.rows} == {p.name for p in three_impls.values()}
    assert all(r.entry.usage is not None for r in page.model.rows)
    assert not page.banner.isVisible()


def test_rescan_drops_the_previous_scan(qtbot, real_store, three_impls) -> None:
    _window, page = open_window(qtbot, env=real_store.env, scan=False)
    page.start()
    first = page.scanner.job
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        page.rescan_action.trigger()  # F5 while the first scan is still running
    assert first is not None and first.cancelled
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    assert page.model.rowCount() == 3
    assert len({r.entry.name for r in page.model.rows}) == 3
    assert all(r.entry.usage is not None for r in page.model.rows)


def test_keyboard_find_select_all_and_enter(qtbot, real_store, three_impls) -> None:
    window, page = open_window(qtbot, env=real_store.env)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert page.filter_edit.hasFocus()
    qtbot.keyClicks(page.filter_edit, "hello 2.0")
    assert page.proxy.rowCount() == 1
    page.filter_edit.clear()
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(page.selected_rows()) == 3
    page.select_proxy_row(1)
    qtbot.keyClick(page.table, Qt.Key.Key_Return)
    assert page.details.hasFocus()
    assert page.details.row is page.proxy.row_at(1)


def test_open_folder_never_follows_a_planted_symlink(qtbot, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "elsewhere").mkdir()
    real = store / ("sha256new_" + "C" * 52)
    real.mkdir()
    (store / ("sha256new_" + "D" * 52)).symlink_to(tmp_path / "elsewhere")
    _window, page = open_window(qtbot, stores=stores_from_paths([str(store)]))
    opened: list[str] = []
    page.details.open_url = lambda url: opened.append(url.toLocalFile())
    for r in range(page.proxy.rowCount()):
        page.select_proxy_row(r)
        page.open_action.trigger()
    assert sorted(opened) == sorted([str(real), str(store)])


def test_settings_restore_sort_column_and_page(
    qtbot, tmp_path: Path, real_store, three_impls
) -> None:
    path = str(tmp_path / "admin.ini")
    settings = QSettings(path, QSettings.Format.IniFormat)
    window, page = open_window(qtbot, env=real_store.env, settings=settings)
    page.table.sortByColumn(Column.SIZE, Qt.SortOrder.DescendingOrder)
    window.resize(780, 550)  # within the offscreen screen (800x600)
    page.set_default_sizes(page.width())
    page.table.setColumnWidth(Column.PROGRAM, 100)
    page.table.setColumnWidth(Column.VERSION, 90)
    for col in Column:  # so that the saved widths fit the table: they are kept as they are
        if col not in (Column.PROGRAM, Column.VERSION, Column.STATUS):
            page.table.setColumnHidden(col, True)
    window.close()

    again = QSettings(path, QSettings.Format.IniFormat)
    window2, page2 = open_window(qtbot, env=real_store.env, settings=again)
    assert page2.model.sort_column == Column.SIZE
    assert page2.model.sort_order == Qt.SortOrder.DescendingOrder
    assert page2.table.horizontalHeader().sortIndicatorSection() == Column.SIZE
    assert page2.table.columnWidth(Column.VERSION) == 90
    assert (window2.width(), window2.height()) == (780, 550)
    sizes = [
        page2.proxy.index(r, Column.SIZE).data(1 + int(Qt.ItemDataRole.UserRole))
        for r in range(page2.proxy.rowCount())
    ]
    assert sizes == sorted(sizes, reverse=True)


def test_screenshot_of_the_demo(qapp, tmp_path: Path) -> None:
    png = tmp_path / "demo.png"
    assert main(["--demo", "--screenshot", str(png)]) == 0
    image = QImage(str(png))
    assert png.stat().st_size > 10_000
    assert (image.width(), image.height()) == (1280, 800)


def test_screenshot_after_verifying_the_demo(qapp, tmp_path: Path) -> None:
    png = tmp_path / "verified.png"
    before = set(threading.enumerate())
    assert main(["--demo", "--screenshot", str(png), "--verify"]) == 0
    assert png.stat().st_size > 10_000
    assert not QImage(str(png)).isNull()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []  # every worker thread ended before main() returned


def test_actions_explain_themselves_and_the_window_has_an_icon(qtbot, tmp_path: Path) -> None:
    window, _page = open_window(qtbot, stores=stores_from_paths([str(tmp_path)]))
    assert not window.windowIcon().isNull()
    menus = [a.menu() for a in window.menuBar().actions() if a.menu() is not None]
    actions = [a for menu in menus for a in menu.actions() if not a.isSeparator()]
    assert len(actions) >= 12
    for action in actions:
        plain = action.text().replace("&", "").rstrip("…")
        assert action.toolTip() and action.toolTip() != plain, action.text()
    assert "test" in window.about_text()  # the version the window was given


def test_f5_rescans_and_escape_does_nothing_when_idle(qtbot, real_store, three_impls) -> None:
    window, page = open_window(qtbot, env=real_store.env)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    page.table.setFocus()
    qtbot.keyClick(page.table, Qt.Key.Key_Escape)  # idle: nothing to cancel, nothing breaks
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        qtbot.keyClick(page.table, Qt.Key.Key_F5)
    assert page.model.rowCount() == 3
    assert page.scanner.generation == 2


def test_closing_the_window_stops_a_running_verification(qtbot, tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / ("sha256new_" + "E" * 52)).mkdir(parents=True)
    with open(store / ("sha256new_" + "E" * 52) / "big", "wb") as f:
        f.truncate(16 << 30)
    window, page = open_window(qtbot, stores=stores_from_paths([str(store)]))
    before = {t for t in threading.enumerate()}
    page.verify_all()
    qtbot.waitUntil(lambda: "Verifying:" in page.activity.text, timeout=WAIT_MS)
    jobs = [page.verifier.job]
    window.close()  # cancels, and waits (bounded) for the thread running the engine
    assert jobs[0] is not None and jobs[0].cancelled and jobs[0].wait(0)
    # The threads themselves end right after (the engine's workers may first finish the chunk
    # they were hashing); none is left running on its own.
    started = [t for t in threading.enumerate() if t not in before]
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in started), timeout=10_000)


PAGE_ATTRIBUTES = [name for name in vars(Page) if not name.startswith("_")] + list(
    Page.__annotations__
)


def test_main_opens_the_window_and_remembers_its_settings(
    qapp, tmp_path: Path, private_settings: Path
) -> None:
    from PySide6.QtCore import QTimer

    store = tmp_path / "store"
    (store / ("sha256new_" + "F" * 52)).mkdir(parents=True)
    seen: list[int] = []
    ids: list[str] = []  # of the pages that have every attribute of main_window.Page

    def close_when_scanned() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if not windows:
            QTimer.singleShot(20, close_when_scanned)
            return
        page = windows[0].pages[0]
        if page.busy or page.model.rowCount() == 0:
            QTimer.singleShot(20, close_when_scanned)
            return
        seen.append(page.model.rowCount())
        ids.extend(
            p.page_id for p in windows[0].pages if all(getattr(p, a, "") for a in PAGE_ATTRIBUTES)
        )
        page.table.sortByColumn(Column.ADDED, Qt.SortOrder.DescendingOrder)
        windows[0].close()

    QTimer.singleShot(0, close_when_scanned)
    assert main(["--store", str(store)]) == 0
    assert seen == [1]
    assert ids == ["cache", "clean", "sharing", "maintenance", "vms"]
    saved = QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, "Zero Install", "Zero Install Admin"
    )
    assert str(private_settings) in saved.fileName()
    assert int(saved.value("cache/sortColumn")) == Column.ADDED


def test_filters_from_combo_boxes_chips_and_the_chart(qtbot, real_store, three_impls) -> None:
    _window, page = open_window(qtbot, env=real_store.env)
    labels = [page.store_combo.itemText(i) for i in range(page.store_combo.count())]
    assert labels[0] == "All stores" and len(labels) == 3  # the user and the system store
    in_user_store = real_store.path == real_store.user_path
    filled = labels.index("user" if in_user_store else "system")
    page.store_combo.setCurrentIndex(filled)  # the store 0install put the three into
    assert page.proxy.store == labels[filled] and page.proxy.rowCount() == 3
    page.store_combo.setCurrentIndex(3 - filled)
    assert page.proxy.rowCount() == 0
    page.store_combo.setCurrentIndex(0)

    page.overview.statusClicked.emit(st.NOT_VERIFIED)  # a click on the chart's segment
    assert page.proxy.statuses == {st.NOT_VERIFIED}
    assert page.status_combo.currentText() == "Not verified"
    assert page.summary.chip(st.NOT_VERIFIED).isChecked()
    page.summary.chip(st.NOT_VERIFIED).click()  # the same count again: filter off
    assert page.proxy.statuses is None and page.status_combo.currentIndex() == 0

    page.status_combo.setCurrentIndex(page.status_combo.findText("Problems only"))
    assert page.proxy.statuses == st.PROBLEMS and page.proxy.rowCount() == 0
    assert page.problems_action.isChecked()
    page.store_combo.setCurrentIndex(filled)
    page.clear_filters_action.trigger()
    assert page.proxy.statuses is None and page.proxy.store is None
    assert page.proxy.rowCount() == 3


def test_startup_objects_are_left_out_of_full_collections(qapp) -> None:
    import gc

    from gui.app import freeze_startup_objects

    window = MainWindow("test", None)
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 10_000  # Qt's bindings and the modules at least
        assert not any(o is window for o in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()
        window.deleteLater()
