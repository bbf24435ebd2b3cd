"""The window's side of scheduled maintenance on a fake root: the Maintenance page enables and
disables through the helper's verbs, and the Cache page's strip shows the last check with its
findings one click away."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import maintenance
from core import store_lock as locks
from core.maintenance_jobs import run_job
from gui.maintenance_page import MaintenancePage
from gui.maintenance_strip import MaintenanceStrip
from gui.workers import inline_starter
from tests.test_maintenance import Journal, add_entry, files_under, hold_lock, release, store_of

WAIT_MS = 60_000


pytestmark = pytest.mark.usefixtures("no_real_root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    store_of(r).mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return r


def started_page(qtbot, root: Path) -> MaintenancePage:
    page = MaintenancePage(str(root), starter=inline_starter)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.start()
    return page


def test_page_enables_and_disables_through_the_helper(qtbot, root: Path):
    before = files_under(root)
    page = started_page(qtbot, root)
    assert page.summary.text() == "Maintenance is not enabled."
    assert not page.disable_button.isEnabled()
    asked: list[str] = []
    page.confirm = lambda title, text: asked.append(text) or True
    page.form.clean_when.setText("Sat *-*-* 02:00")
    page.form.watch.setChecked(False)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.enable()
    assert "/etc/systemd/system/zeroinstall-admin-clean.timer" in asked[0]
    assert page.summary.text().startswith("Maintenance is enabled: verify daily, clean up Sat")
    timer = root / "etc/systemd/system/zeroinstall-admin-clean.timer"
    assert "OnCalendar=Sat *-*-* 02:00" in timer.read_text()
    assert not (root / "etc/systemd/system/zeroinstall-admin-watch.path").exists()
    assert page.disable_button.isEnabled()
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.disable()
    assert files_under(root) == before
    assert page.summary.text() == "Maintenance is not enabled."


def test_a_bad_setting_is_named_and_nothing_is_written(qtbot, root: Path):
    before = files_under(root)
    page = started_page(qtbot, root)
    page.confirm = lambda title, text: pytest.fail("asked despite a bad setting")
    page.form.verify_when.setText("every full moon")
    page.enable()
    qtbot.waitUntil(lambda: not page.notice.isHidden() and not page.busy, timeout=WAIT_MS)
    assert "every full moon" in page.notice.text() and "Nothing was changed" in page.notice.text()
    page.form.min_free.setText("lots")
    page.form.verify_when.setText("daily")
    page.enable()
    assert "'lots' is not a free-space limit" in page.notice.text()
    assert files_under(root) == before


def test_strip_shows_the_last_check_and_its_findings(qtbot, root: Path):
    strip = MaintenanceStrip(str(root))
    qtbot.addWidget(strip)
    assert strip.isHidden()  # no check has run
    store = store_of(root)
    add_entry(store, "fine")
    bad = add_entry(store, "bad")
    (store / bad / "data").write_text("changed")
    run_job("verify", maintenance.Place(str(root)), Journal())
    strip.refresh_if_changed()  # what its timer does: the status file is new
    strip.show()
    assert strip.label.text().startswith("Last check: today ")
    assert strip.label.text().endswith(", 1 problem")
    assert strip.button.isVisibleTo(strip)
    strip.button.click()
    assert strip.dialog is not None
    assert strip.dialog.list.count() == 1
    assert bad in strip.dialog.list.item(0).text()
    strip.dialog.close()


def test_page_shows_the_last_runs(qtbot, root: Path):
    add_entry(store_of(root), "fine")
    run_job("verify", maintenance.Place(str(root)), Journal())
    page = started_page(qtbot, root)
    assert page.last_check.text().endswith(", no problems")
    assert "Last verify:" in page.runs.text() and "1 checked" in page.runs.text()
    assert not page.problems_button.isVisibleTo(page)


def test_the_windows_verification_does_not_run_beside_a_scheduled_run(qtbot, root: Path):
    """While another process holds the store (a scheduled clean-up), "Verify" says so plainly."""
    from gui.cache_jobs import VerifyJob

    store = store_of(root)
    entry = add_entry(store, "fine")
    holder = hold_lock(locks.lock_file_for(str(store)) or "")
    try:
        job = VerifyJob(1, [str(store / entry)], out_of_process=False)
        with qtbot.waitSignal(job.finished, timeout=WAIT_MS) as blocker:
            job.start()
        error = blocker.args[0]
        assert isinstance(error, locks.StoreBusy)
        assert "another run is working on" in str(error)
    finally:
        release(holder)
    job = VerifyJob(2, [str(store / entry)], out_of_process=False)
    results: list = []
    job.results.connect(results.extend)
    with qtbot.waitSignal(job.finished, timeout=WAIT_MS) as blocker:
        job.start()
    assert blocker.args[0] is None and [o.status for _i, o in results] == ["ok"]


def test_the_settings_stack_when_the_page_is_narrow_and_the_wheel_scrolls_past_them(
    qtbot, root: Path
) -> None:
    """At 150% on a 1024x700 screen the two groups did not fit side by side (the page scrolled
    sideways), and the wheel, scrolling the page, changed whichever spin box passed under it."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication, QBoxLayout

    page = MaintenancePage(str(root), starter=inline_starter)
    qtbot.addWidget(page)
    form = page.form
    both = sum(g.minimumSizeHint().width() for g in form._groups)
    form.fit_width(both + 100)
    assert form._layout.direction() == QBoxLayout.Direction.LeftToRight
    form.fit_width(both - 100)
    assert form._layout.direction() == QBoxLayout.Direction.TopToBottom
    page.resize(both + 200, 600)  # the page decides from its own width
    page.show()
    qtbot.waitUntil(lambda: form._layout.direction() == QBoxLayout.Direction.LeftToRight)

    before = form.days.value()
    assert not form.days.hasFocus()
    wheel = QWheelEvent(
        QPointF(5, 5), QPointF(form.days.mapToGlobal(QPoint(5, 5))), QPoint(0, 0),
        QPoint(0, -120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(form.days, wheel)
    assert form.days.value() == before
    assert not wheel.isAccepted()  # left to the page's scroll area
