"""The Cache page as an admin reads it, on the demo cache and on stores built by the real 0install:
names, verdicts that survive a rescan, problems told together, counts, filters, the details pane,
window size, help, and starting without a display."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, QSettings, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from core.demo import build_demo
from core.stores import stores_from_paths
from gui import status as st
from gui.cache_columns import Column
from gui.cache_page import CachePage
from gui.details import readable_change
from gui.main_window import MainWindow, fitted_position, fitted_size

WAIT_MS = 60_000
ROOT = Path(__file__).resolve().parent.parent


# Every test: QSettings go to a temporary directory (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("private_settings")


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    return build_demo(tmp_path / "demo")


def open_page(qtbot, *, env=None, stores=None, size=None):
    window = MainWindow("test", None)
    page = CachePage(stores, env, parent=window)
    window.add_page(page)
    qtbot.addWidget(window)
    window.resize(size or QSize(1280, 800))
    window.show()
    qtbot.waitExposed(window)
    page.set_default_sizes(page.width())
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        window.start()
    page.refresh_now(at_once=True)
    return window, page


def verify_all(qtbot, page: CachePage) -> None:
    with qtbot.waitSignal(page.verifyFinished, timeout=WAIT_MS):
        page.verify_all()
    page.refresh_now(at_once=True)


def rescan(qtbot, page: CachePage) -> None:
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        page.rescan_action.trigger()
    page.refresh_now(at_once=True)


def row_of(page: CachePage, test):
    for r in range(page.proxy.rowCount()):
        row = page.proxy.row_at(r)
        if test(row):
            return r, row
    raise AssertionError("no such row")


def planted(row) -> bool:
    return row.entry.issue == "planted"


def damaged(row) -> bool:
    return row.entry.program == "Gallery Viewer" and row.entry.version == "0.9"


# --- names ---------------------------------------------------------------------------------------


def test_store_names_are_distinct_everywhere(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    combo = [page.store_combo.itemText(i) for i in range(1, page.store_combo.count())]
    assert combo == ["user", "system"]
    assert set(page.model.stats().by_store) == {"user", "system"}
    stores = {page.proxy.index(r, Column.STORE).data() for r in range(page.proxy.rowCount())}
    assert stores == {"user", "system"}


def test_two_root_owned_store_paths_are_not_both_user(qtbot, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / ("sha256new_" + "A" * 52)).mkdir(parents=True)
    _window, page = open_page(qtbot, stores=stores_from_paths([str(a), str(b)]))
    combo = [page.store_combo.itemText(i) for i in range(1, page.store_combo.count())]
    assert combo == [str(a), str(b)]  # shown by path: discovery does not know them
    missing = tmp_path / "missing"
    _window, page = open_page(qtbot, stores=stores_from_paths([str(missing)]))
    assert any(m.startswith(f"Store {missing} ") for m in page.banner.messages)
    assert not any("System store" in m for m in page.banner.messages)


def test_a_planted_entry_keeps_its_program_and_is_found_by_name(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    r, row = row_of(page, planted)
    assert page.proxy.index(r, Column.PROGRAM).data() == "Hello Editor"
    assert page.proxy.index(r, Column.STATUS).data() == "planted"
    page.filter_edit.setText("hello 2.1")
    assert page.proxy.rowCount() == 1 and page.proxy.row_at(0) is row
    largest = dict(page.model.stats(largest=20).largest)
    assert "(suspicious)" not in largest


def test_unknown_programs_show_a_short_digest(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    r, row = row_of(page, lambda row: row.entry.feed is None and row.entry.digest is not None)
    text = page.proxy.index(r, Column.PROGRAM).data()
    assert text == f"(unowned) {row.entry.name[len('sha256new_') :][:8]}…"


# --- verdicts ------------------------------------------------------------------------------------


def test_verdicts_survive_a_rescan_unless_the_entry_changed(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    verify_all(qtbot, page)
    statuses = {r.entry.path: r.status for r in page.model.rows}
    assert st.OK in statuses.values()
    # One entry changes after verification: chmod changes its directory's ctime.
    ok_row = next(r for r in page.model.rows if r.status == st.OK)
    changed = ok_row.entry.path
    os.chmod(changed, 0o755)
    os.chmod(changed, 0o555)
    r, _ = row_of(page, lambda row: row.entry.path == changed)
    page.select_proxy_row(r)
    assert page.details.status_text.startswith("OK, just now")
    rescan(qtbot, page)
    after = {r.entry.path: r.status for r in page.model.rows}
    assert after[changed] == st.NOT_VERIFIED
    assert {p: s for p, s in after.items() if p != changed} == {
        p: s for p, s in statuses.items() if p != changed
    }
    # The pane shows the new row, never the stale verdict.
    assert page.details.row is page.current_row() and page.details.row.outcome is None
    assert page.details.status_text == "Not verified yet"
    assert "kept 13 verification results, 1 entry changed since" in page.activity.text
    # The age of a kept verdict is said.
    kept = next(r for r in page.model.rows if r.status == st.OK)
    kept.verified_at = time.time() - 600
    page.select_proxy_row(page.proxy.mapFromSource(page.model.index(kept.pos, 0)).row())
    assert page.details.status_text == "OK, 10 minutes ago"


def test_problems_are_shown_together_with_fitting_words(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    verify_all(qtbot, page)
    # A planted symlink stays planted after verification: never "damaged".
    r, row = row_of(page, planted)
    assert row.status == st.SUSPICIOUS
    assert page.proxy.index(r, Column.STATUS).data() == "planted"
    page.select_proxy_row(r)
    assert page.details.status_text == "Planted, checked just now"
    assert page.details.alarm_text.startswith("Planted: a symbolic link")
    assert "Damaged" not in page.details.alarm_text
    assert "changed since it was added" not in page.details.alarm_text
    # Damaged and world-writable: both said.
    r, row = row_of(page, damaged)
    os.chmod(row.entry.path, 0o777)
    try:
        rescan(qtbot, page)  # now world-writable; its contents changed since: verify again
        r, row = row_of(page, damaged)
        with qtbot.waitSignal(page.verifyFinished, timeout=WAIT_MS):
            page.verify([row])
    finally:
        os.chmod(row.entry.path, 0o555)
    assert row.status == st.CORRUPT
    r, row = row_of(page, damaged)
    assert page.proxy.index(r, Column.STATUS).data() == "corrupt, world-writable"
    page.select_proxy_row(r)
    alarm = page.details.alarm_text
    assert "Writable by everyone" in alarm and "Damaged: does not match its digest" in alarm


# --- details -------------------------------------------------------------------------------------


def test_details_put_the_verdict_first_and_digests_in_full(qtbot, demo_env) -> None:
    window, page = open_page(qtbot, env=demo_env, size=QSize(1024, 700))
    verify_all(qtbot, page)
    r, row = row_of(page, damaged)
    page.select_proxy_row(r)
    details = page.details
    expected = details.value_widget("Expected")
    actual = details.value_widget("Actual")
    assert details.field("Expected") == row.outcome.expected
    assert details.field("Actual") == row.outcome.actual
    # Verdict first: above the path, the facts and the Open button.
    top = details.widget()
    y = {
        name: widget.mapTo(top, QPoint(0, 0)).y()
        for name, widget in (
            ("status", details._status),
            ("expected", expected),
            ("path", details.value_widget("Path")),
            ("open", details.open_button),
        )
    }
    assert y["status"] < y["expected"] < y["open"] < y["path"]
    # The whole digest is in the label's text (wrapped, not cut) and one click copies it.
    assert expected.text().replace("\u200b", "") == row.outcome.expected
    assert actual.text().replace("\u200b", "") == row.outcome.actual
    expected.copy()
    assert QGuiApplication.clipboard().text() == row.outcome.expected
    assert "Copied expected digest" in page.activity.text
    path = details.value_widget("Path")
    assert path.toolTip() == row.entry.path
    assert path.fontMetrics().horizontalAdvance(path.text()) <= path.width()
    if path.fontMetrics().horizontalAdvance(row.entry.path) > path.width():
        assert "…" in path.text()  # elided in the middle, never clipped
    # The added time is the .manifest's and says so.
    assert "when its .manifest was written" in details.field("Added")


def test_added_is_when_the_manifest_was_written(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    r, row = row_of(
        page, lambda row: row.entry.program == "Hello Editor" and row.entry.version == "1.0"
    )
    # The demo added it 700 days ago (and last used it 150 days ago): not "today".
    assert time.time() - row.entry.added > 600 * 86400
    assert row.entry.added_from == "manifest"
    assert (
        page.proxy.index(r, Column.ADDED)
        .data(Qt.ItemDataRole.ToolTipRole)
        .endswith("when 0install wrote its .manifest file, i.e. added it")
    )


def test_what_changed_shows_dates_and_differences() -> None:
    text = readable_change("modified /a: content, mtime 1796090335 -> 1796090379")
    assert "1796090335" not in text
    assert "(44 seconds later)" in text and "modified time 2026-" in text
    years = readable_change("modified /c: mtime 1746963000 -> 1796090379")
    assert "(1 year, 7 months later)" in years and " h " not in years
    assert readable_change("modified /b: size 8 -> 18") == "modified /b: size 8 -> 18 bytes (+10)"


def test_open_folder_failure_is_said_in_the_banner(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    page.details.open_url = lambda _url: False  # nothing can open a folder (a server)
    page.open_action.trigger()
    folder = page.details.row.entry.path
    assert any(m.startswith(f"Could not open {folder}") for m in page.banner.messages)
    assert page.banner.action_button.isVisible()
    page.banner.action_button.click()
    assert QGuiApplication.clipboard().text() == folder


def test_open_folder_waits_for_xdg_open_and_tells_its_failure(
    qtbot, demo_env, tmp_path, monkeypatch
) -> None:
    """xdg-open that starts but has no handler ("no method available", exit 3) is a failure:
    its exit code is awaited and the banner says so, with the path and a Copy button."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "xdg-open"
    fake.write_text(
        "#!/bin/sh\necho 'xdg-open: no method available for opening '\"$1\"'' >&2\nexit 3\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    _window, page = open_page(qtbot, env=demo_env)
    folder = page.details.row.entry.path
    with qtbot.waitSignal(page.details.openFailed, timeout=30_000):
        page.open_action.trigger()
    text = "\n".join(page.banner.messages)
    assert f"Could not open {folder}" in text and "no method available" in text
    page.banner.action_button.click()
    assert QGuiApplication.clipboard().text() == folder

    fake.write_text("#!/bin/sh\nexit 0\n")  # a handler now: no banner
    page.banner.dismiss()
    with qtbot.waitSignal(page.details.openRequested, timeout=30_000):
        page.open_action.trigger()
    assert not page.banner.messages


# --- counts, filters, clicks ---------------------------------------------------------------------


def test_counts_selection_escape_and_empty_filters(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    total = page.model.rowCount()
    page.filter_edit.setText("toolkit")
    page.update_counts()
    assert page.count_label.text() == f"3 of {total} entries shown"
    page.select_all()
    page.update_counts()
    size = sum(page.proxy.row_at(r).entry.usage.size for r in range(3))
    from core.units import size_text

    assert page.count_label.text().endswith(f"3 selected, {size_text(size)}")
    # Escape in the filter box clears it (and does not cancel anything).
    page.filter_edit.setFocus()
    qtbot.keyClick(page.filter_edit, Qt.Key.Key_Escape)
    assert page.filter_edit.text() == "" and page.proxy.rowCount() == total
    # A filter matching nothing says so, with a way out.
    page.filter_edit.setText("no such program anywhere")
    page.update_counts()
    assert page.no_match.isVisible()
    qtbot.mouseClick(page.no_match_button, Qt.MouseButton.LeftButton)
    page.update_counts()
    assert page.proxy.rowCount() == total and not page.no_match.isVisible()


def test_clicking_empty_space_clears_the_details(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env, size=QSize(1280, 800))
    assert page.details.row is not None
    viewport = page.table.viewport()
    below = QPoint(viewport.width() // 2, viewport.height() - 5)
    assert not page.table.indexAt(below).isValid()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=below)
    assert page.details.row is None and not page.table.selectionModel().hasSelection()
    assert not page.open_action.isEnabled()


def test_chart_store_and_program_bars_filter(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env)
    chart = page.overview
    qtbot.waitUntil(lambda: not chart.bar_rect("store", "system").isEmpty(), timeout=5000)
    rect = chart.bar_rect("store", "system")
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.proxy.store == "system" and page.store_combo.currentText() == "system"
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=rect.center())
    assert page.proxy.store is None
    rect = chart.bar_rect("program", "Gallery Viewer")
    qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=rect.center())
    shown = {page.proxy.row_at(r).entry.program for r in range(page.proxy.rowCount())}
    assert shown == {"Gallery Viewer"}


# --- reading the window --------------------------------------------------------------------------


def test_sizes_and_the_status_line_read_plainly(qtbot, tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / ("sha256new_" + "E" * 52)).mkdir(parents=True)  # an empty directory
    _window, page = open_page(qtbot, stores=stores_from_paths([str(store)]))
    assert page.proxy.index(0, Column.SIZE).data() == "empty"
    page.select_proxy_row(0)
    assert page.details.field("Size").startswith("empty: no files inside")
    assert page.details.field("Files") == "none"
    label = page.activity._label
    assert label.isEnabled() and label.text().startswith("Scanned 1 entry in 1 store")


def test_default_columns_fit_1024_pixels(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env, size=QSize(1024, 700))
    table = page.table
    header = table.horizontalHeader()
    shown = [c for c in Column if not table.isColumnHidden(c)]
    assert {Column.PROGRAM, Column.STATUS, Column.SIZE, Column.LAST_USED} <= set(shown)
    # Every shown column ends inside the viewport: nothing off to the right, nothing cut.
    right = max(header.sectionViewportPosition(c) + header.sectionSize(c) for c in shown)
    assert right <= table.viewport().width()
    fm = table.fontMetrics()
    assert header.sectionSize(Column.LAST_USED) > fm.horizontalAdvance("11 months ago")
    # Hidden columns are one right-click away.
    toggles = {a.text(): a.isChecked() for a in table.column_toggles}
    assert all(
        toggles[c.name.replace("_", " ").capitalize()] is False
        for c in Column
        if c not in shown and c.name.replace("_", " ").capitalize() in toggles
    )


def test_a_narrow_window_still_shows_the_status_beside_the_program(qtbot, demo_env) -> None:
    """What 1024x700 at 150 % gives the page: the program was the only column shown."""
    _window, page = open_page(qtbot, env=demo_env, size=QSize(640, 460))
    table = page.table
    header = table.horizontalHeader()
    shown = [c for c in Column if not table.isColumnHidden(c)]
    assert shown[:2] == [Column.PROGRAM, Column.STATUS]
    right = max(header.sectionViewportPosition(c) + header.sectionSize(c) for c in shown)
    assert right <= table.viewport().width()
    assert page.side.width() <= page.splitter.width() * 2 // 5 + 10


def test_a_wide_window_shows_every_column(qtbot, demo_env) -> None:
    _window, page = open_page(qtbot, env=demo_env, size=QSize(1920, 1080))
    assert [c for c in Column if page.table.isColumnHidden(c)] == []


def test_first_size_fits_the_screen_and_restored_sizes_are_clamped(qtbot) -> None:
    assert fitted_size(QSize(1280, 800), QRect(0, 0, 1280, 800)) == QSize(1264, 752)
    assert fitted_size(QSize(1280, 800), QRect(0, 0, 1280, 720)) == QSize(1264, 672)
    assert fitted_size(QSize(1280, 800), QRect(0, 0, 1920, 1050)) == QSize(1280, 800)
    assert fitted_position(QRect(900, 700, 600, 400), QRect(0, 0, 1280, 800)) == QPoint(680, 400)
    window = MainWindow("test", None)
    qtbot.addWidget(window)
    window.restore_state()  # nothing saved: the first size
    area = (window.screen() or QApplication.primaryScreen()).availableGeometry()
    assert window.width() <= area.width() - 16 and window.height() <= area.height() - 48
    settings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "t", "t")
    big = MainWindow("test", None)
    qtbot.addWidget(big)
    big.resize(3000, 2000)
    big.move(2500, 1500)
    settings.setValue("window/geometry", big.saveGeometry())
    restored = MainWindow("test", settings)
    qtbot.addWidget(restored)
    restored.restore_state()
    assert restored.width() <= area.width() and restored.height() <= area.height()
    assert area.contains(restored.frameGeometry().topLeft())


def test_help_page_explains_columns_and_problems_offline(qtbot) -> None:
    window = MainWindow("test", None)
    qtbot.addWidget(window)
    page = CachePage([], None, parent=window)
    window.add_page(page)
    assert page.page_id == "cache"
    window.help_action.trigger()
    dialog = window._help
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    text = dialog.text
    for words in (
        "Columns",
        "Last used",
        "Added",
        "planted",
        "world-writable",
        "corrupt",
        "Escape",
    ):
        assert words in text, words
    assert dialog.browser.source().isLocalFile()
    page.shutdown()


# --- no display ----------------------------------------------------------------------------------


def _launch(args: list[str], **env_changes: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env.update(env_changes)
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "gui.launch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )


def test_no_display_says_what_to_do_and_exits_1(tmp_path: Path) -> None:
    proc = _launch(["--store", str(tmp_path)])
    assert proc.returncode == 1
    assert "no display (DISPLAY and WAYLAND_DISPLAY are not set)" in proc.stderr
    assert "xvfb-run" in proc.stderr and "platform plugin" not in proc.stderr
    proc = _launch(["--store", str(tmp_path)], DISPLAY=":87")
    assert proc.returncode == 1 and "no X server answers on display :87" in proc.stderr
    # Subcommands never need a display, the ones to come included.
    proc = _launch(["stores"])
    assert proc.returncode == 0, proc.stderr
    proc = _launch(["--store", str(tmp_path), "--screenshot", str(tmp_path / "x.png")])
    assert proc.returncode == 0, proc.stderr
    run_sh = (ROOT / "installers" / "run.sh").read_text()
    assert "digest|manifest|list" not in run_sh  # no list of subcommands to keep up to date


def test_a_planted_directory_is_called_planted_not_changed(qtbot, tmp_path: Path) -> None:
    """Contents and .manifest agree with each other but not with the name: someone put a whole
    other implementation there (or renamed one), which is not "changed since it was added"."""
    from core.cache import classify
    from core.verify_entry import VerifyOutcome
    from gui.cache_rows import Row
    from gui.details import DetailsPane

    name = "sha256new_" + "A" * 52
    (tmp_path / name).mkdir()
    entry = classify(stores_from_paths([str(tmp_path)])[0], name)
    row = Row(entry)
    other = "sha256new_" + "B" * 52
    row.outcome = VerifyOutcome(
        "corrupt",
        "Contents do not match the digest, but they match the .manifest file.",
        expected=name,
        actual=other,
        recorded=other,
    )
    row.verified_at = time.time()
    row.update_status()
    pane = DetailsPane()
    qtbot.addWidget(pane)
    pane.show_row(row)
    assert pane.alarm_text.startswith("Planted or renamed")
    assert "changed since" not in pane.alarm_text
    assert pane.field("Expected") == name and pane.field("Actual") == other
    assert pane.status_text == "Corrupt, just now"
