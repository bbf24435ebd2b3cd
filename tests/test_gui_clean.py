"""The Clean up page and the Cache page's Delete, walked with pytest-qt over real stores."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core import clean, pins
from core.stores import stores_from_paths
from gui.cache_page import CachePage
from gui.clean_model import Col
from gui.clean_page import CleanPage
from gui.delete_action import DeleteAction
from gui.main_window import MainWindow
from tests.conftest import RealStore
from tests.test_clean import files, set_atime, write_feed

WAIT_MS = 60_000
DAY = 86400


# Every test: QSettings go to a temporary directory (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("private_settings")


@pytest.fixture
def store(real_store: RealStore, tmp_path: Path) -> RealStore:
    real_store.env["XDG_STATE_HOME"] = str(tmp_path / "state")
    now = time.time()
    for label, age in (("old", 50), ("older", 80), ("new", 1), ("stray", 100)):
        set_atime(real_store.add(label, files(label)), now - age * DAY)
    d = real_store.digests
    write_feed(real_store.env, {d["old"]: "1.0", d["older"]: "0.9", d["new"]: "2.0"})
    return real_store


def open_clean(qtbot, store: RealStore) -> CleanPage:
    window = MainWindow("test")
    page = CleanPage(stores_from_paths([str(store.path)]), store.env, homes=[], parent=window)
    window.add_page(page)
    qtbot.addWidget(window)
    window.resize(1024, 700)
    window.show()
    with qtbot.waitSignal(page.surveyFinished, timeout=WAIT_MS):
        window.start()
    return page


def shown(page: CleanPage) -> dict[str, tuple[str, str, bool]]:
    """Entry name -> (action, reasons, checked), as the table shows them."""
    out = {}
    for r in range(page.proxy.rowCount()):
        src = page.proxy.mapToSource(page.proxy.index(r, 0)).row()
        v = page.model.verdicts[src]
        checked = page.proxy.index(r, Col.PROGRAM).data(Qt.ItemDataRole.CheckStateRole)
        out[v.entry.name] = (
            page.proxy.index(r, Col.ACTION).data(),
            page.proxy.index(r, Col.REASONS).data(),
            checked == Qt.CheckState.Checked,
        )
    return out


def test_candidates_prechecked_with_reasons_and_an_exact_total(qtbot, store) -> None:
    page = open_clean(qtbot, store)
    d = store.digests
    rows = shown(page)
    assert set(rows) == {d["old"], d["older"], d["stray"]}
    assert all(checked for _a, _r, checked in rows.values())
    assert rows[d["stray"]][0] == "Remove" and "no cached feed lists it" in rows[d["stray"]][1]
    assert "not used for 3 months: last access" in rows[d["older"]][1]
    everything = [v.footprint for v in page.model.chosen()]
    total = clean.reclaimable(everything)[1]
    assert page.total.text().startswith("3 of 3 candidates checked") and page.total.text().endswith(
        "to reclaim"
    )
    from gui.clean_model import size_text

    assert size_text(total) in page.total.text()
    # Unchecking one lowers the total to what the other two give back.
    row = next(
        r
        for r in range(page.proxy.rowCount())
        if page.model.verdicts[page.proxy.mapToSource(page.proxy.index(r, 0)).row()].entry.name
        == d["stray"]
    )
    page.proxy.setData(
        page.proxy.index(row, Col.PROGRAM), Qt.CheckState.Unchecked, Qt.ItemDataRole.CheckStateRole
    )
    rest = [v.footprint for v in page.model.chosen()]
    assert page.total.text().startswith("2 of 3 candidates checked")
    assert size_text(clean.reclaimable(rest)[1]) in page.total.text()
    # Kept entries and why, on request.
    page.show_kept.setChecked(True)
    rows = shown(page)
    assert rows[d["new"]][0] == "Keep" and "used" in rows[d["new"]][1]
    # --keep 2 from the spin box: judged again at once.
    page.keep.setValue(2)
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    rows = shown(page)
    assert rows[d["old"]][0] == "Keep" and "newest cached versions" in rows[d["old"]][1]
    assert "keep-newest setting" in rows[d["old"]][1]
    assert not any("--" in why or "`" in why for _action, why, _checked in rows.values())


def test_clean_confirms_removes_and_logs(qtbot, store) -> None:
    page = open_clean(qtbot, store)
    d = store.digests
    asked: list[str] = []
    page.confirm = lambda title, text: asked.append(text) is not None and False
    page.clean_action.trigger()
    assert asked and asked[0].startswith("Remove 3 entries, freeing ")
    assert all((store.path / d[k]).exists() for k in ("old", "older", "stray"))

    page.confirm = lambda title, text: True
    with qtbot.waitSignal(page.cleanFinished, timeout=WAIT_MS):
        page.clean_action.trigger()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    assert not any((store.path / d[k]).exists() for k in ("old", "older", "stray"))
    assert (store.path / d["new"]).exists()
    log = page.log_view.toPlainText()
    assert log.count(" removed ") == 3 and "Hello 0.9" in log
    assert shown(page) == {}
    assert page.total.text().startswith("0 of 0")
    assert not page.clean_action.isEnabled()


def test_optimise_from_the_page(qtbot, store) -> None:
    page = open_clean(qtbot, store)
    asked: list[str] = []
    page.confirm = lambda title, text: asked.append(text) is None
    with qtbot.waitSignal(page.optimiseFinished, timeout=WAIT_MS):
        page.optimise_action.trigger()
    assert asked and asked[0].startswith("Hard-link 3 identical files in 3 implementations")
    assert os.lstat(store.path / store.digests["old"] / "README").st_nlink == 4
    assert " optimised " in page.log_view.toPlainText()


def open_cache(qtbot, store: RealStore) -> tuple[CachePage, DeleteAction]:
    window = MainWindow("test")
    page = CachePage(stores_from_paths([str(store.path)]), store.env, homes=[], parent=window)
    window.add_page(page)
    deleter = page.deleter
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(page.scanFinished, timeout=WAIT_MS):
        window.start()
    return page, deleter


def select(page: CachePage, names: set[str]) -> None:
    from PySide6.QtCore import QItemSelectionModel

    sel = page.table.selectionModel()
    sel.clearSelection()
    for r in range(page.proxy.rowCount()):
        row = page.proxy.row_at(r)
        if row.entry.name in names:
            sel.select(
                page.proxy.index(r, 0),
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
            )


def test_cache_page_delete_with_del_key_keeps_what_is_pinned(qtbot, store) -> None:
    d = store.digests
    p = pins.load(pins.pins_path(store.env))
    pins.add(p, "entry", d["new"])
    p.save()
    page, deleter = open_cache(qtbot, store)
    assert deleter.action in page.table.actions() and deleter.action in page.menu_actions()
    assert deleter.action in page.context_actions()
    asked: list[str] = []
    deleter.confirm = lambda title, text: asked.append(text) is None
    select(page, {d["old"], d["new"]})
    assert deleter.action.isEnabled()
    page.table.setFocus()
    with qtbot.waitSignal(deleter.finished, timeout=WAIT_MS):
        qtbot.keyClick(page.table, Qt.Key.Key_Delete)
    assert asked[0].startswith("Delete 1 entry, freeing ")
    assert "pinned (this entry)" in asked[0]
    assert not (store.path / d["old"]).exists() and (store.path / d["new"]).exists()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    assert d["old"] not in {r.entry.name for r in page.model.rows}

    told: list[str] = []
    deleter.inform = lambda title, text: told.append(text)
    select(page, {d["new"]})
    with qtbot.waitSignal(deleter.finished, timeout=WAIT_MS):
        deleter.action.trigger()
    assert told and told[0].startswith("Nothing deleted") and (store.path / d["new"]).exists()


def test_the_page_looks_only_once_it_is_shown(qtbot, store) -> None:
    window = MainWindow("test")
    first = CleanPage(stores_from_paths([str(store.path)]), store.env, homes=[], parent=window)
    second = CleanPage(stores_from_paths([str(store.path)]), store.env, homes=[], parent=window)
    window.add_page(first)
    window.add_page(second)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(first.surveyFinished, timeout=WAIT_MS):
        window.start()
    assert not second.model.verdicts and not second.busy
    with qtbot.waitSignal(second.surveyFinished, timeout=WAIT_MS):
        window.sidebar.setCurrentRow(1)
    assert len(second.model.chosen()) == 3


def test_pin_and_unpin_from_the_page(qtbot, store) -> None:
    page = open_clean(qtbot, store)
    d = store.digests
    page.show_kept.setChecked(True)
    row = next(
        r
        for r in range(page.proxy.rowCount())
        if page.model.verdicts[page.proxy.mapToSource(page.proxy.index(r, 0)).row()].entry.name
        == d["stray"]
    )
    page.table.selectRow(row)
    page.pin_action.trigger()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    assert shown(page)[d["stray"]][:2] == ("Keep", "pinned (this entry)")
    assert pins.load(pins.pins_path(store.env)).entries == [d["stray"]]
    assert page.total.text().startswith("2 of 2 candidates checked")
    row = next(
        r
        for r in range(page.proxy.rowCount())
        if page.model.verdicts[page.proxy.mapToSource(page.proxy.index(r, 0)).row()].entry.name
        == d["stray"]
    )
    page.table.selectRow(row)
    page.unpin_action.trigger()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    assert shown(page)[d["stray"]][0] == "Remove"
    assert pins.load(pins.pins_path(store.env)).entries == []
