"""The Virtual machines page, walked with pytest-qt against the stand-in VBoxManage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from core import vm_guest
from gui.vm_page import VMPage
from gui.vm_share_dialog import ShareDialog
from tests.vbox_fixtures import RUNNING, SAVED, STOPPED, UUIDS, FakeVBox

WAIT_MS = 30_000


# Every test: QSettings go to a temporary directory (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("private_settings")


def _env(fake: FakeVBox, tmp_path: Path) -> dict[str, str]:
    return {**fake.env, "XDG_CACHE_HOME": str(tmp_path / "home-cache")}


def _page(qtbot, env, timeout: float = 20.0) -> VMPage:
    page = VMPage(env, timeout=timeout)
    qtbot.addWidget(page)
    page.resize(1000, 650)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.start()
    return page


def _idle(qtbot, page: VMPage) -> None:
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)


def _row(page: VMPage, name: str) -> int:
    return next(i for i, vm in enumerate(page.model.vms) if vm.name == name)


def test_lists_vms_with_state_os_additions_and_folders(qtbot, fake, tmp_path, cache) -> None:
    page = _page(qtbot, _env(fake, tmp_path))
    model = page.model
    assert [vm.name for vm in model.vms] == [RUNNING, STOPPED, SAVED]

    def cell(name: str, col: int) -> str:
        return model.data(model.index(_row(page, name), col))

    assert cell(RUNNING, model.STATE) == "running"
    assert cell(STOPPED, model.STATE) == "powered off"
    assert cell(SAVED, model.STATE) == "saved"
    assert cell(STOPPED, model.OS) == "Debian (64-bit)"
    assert cell(STOPPED, model.GA) == "4.1.2  (too old)"
    assert "ZeroInstall (read-only, permanent, Zero Install cache)" in cell(RUNNING, model.FOLDERS)
    assert "Incorrect manifest -- archive is corrupted" in page.banner.text
    assert "VBoxManage 7.0.10r158379" in page.where.text()
    # The first VM is current: its folders and what to type in the guest.
    page.table.selectRow(_row(page, RUNNING))
    folders = page.folder_model
    assert [f.name for f in folders.folders] == ["ZeroInstall", "scratch"]
    assert folders.data(folders.index(0, 6)) == "Zero Install cache"
    assert folders.data(folders.index(1, 2)) == "transient"
    assert folders.data(folders.index(1, 5)) == "on"
    text = page.instructions.toPlainText()
    # Auto-mounted at the cache path already: nothing to mount by hand, as `vm list` says.
    assert "nothing to mount by hand" in text and "sudo mount -t vboxsf -o ro" not in text
    assert text == vm_guest.guest_text(page.current_vm(), page.model.cache_paths)
    # 'scratch' is writable with symlinks: a guest-writable cache, mounted as the user's own.
    assert "-o rw,uid=$(id -u),gid=$(id -g) scratch ~/.cache/0install.net/implementations" in text
    page.copy_button.click()
    assert QApplication.clipboard().text() == text
    assert page.copy_button.text() == "Copied ✓"  # said where the admin looks
    qtbot.waitUntil(lambda: page.copy_button.text() == "&Copy", timeout=WAIT_MS)


def test_share_with_several_vms_at_once(qtbot, fake, tmp_path, cache, monkeypatch) -> None:
    page = _page(qtbot, _env(fake, tmp_path))
    page.select_vms([STOPPED, RUNNING])
    assert {vm.name for vm in page.selected_vms()} == {STOPPED, RUNNING}
    assert page.share_action.isEnabled()
    seen = {}

    def fill(dialog: ShareDialog) -> int:
        dialog.name_edit.setText("ZI2")
        dialog.path_combo.setCurrentText(str(cache))
        dialog.automount_check.setChecked(True)
        dialog.mount_edit.setText("/opt/zi")
        seen["preview"] = dialog.preview.text()
        seen["warnings"] = dialog.warnings.text()
        seen["lifetime"] = dialog.lifetime.text()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ShareDialog, "exec", fill)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.share_action.trigger()
    _idle(qtbot, page)
    assert (
        f"VBoxManage sharedfolder add {UUIDS[STOPPED]} --name ZI2 --hostpath {cache} --readonly "
        "--automount --auto-mount-point /opt/zi"
    ) in seen["preview"]
    assert f"--name ZI2 --hostpath {cache} --readonly --transient --automount" in seen["preview"]
    assert "older than 4.2.0" in seen["warnings"]
    assert "Transient for " + RUNNING in seen["lifetime"]
    stopped = next(f for f in fake.vm(STOPPED)["folders"] if f["name"] == "ZI2")
    running = next(f for f in fake.vm(RUNNING)["folders"] if f["name"] == "ZI2")
    assert (stopped["readonly"], stopped["transient"], stopped["mount_point"]) == (
        True,
        False,
        "/opt/zi",
    )
    assert (running["readonly"], running["transient"]) == (True, True)
    log = page.log.toPlainText()
    assert f"$ VBoxManage sharedfolder add {UUIDS[STOPPED]} --name ZI2" in log
    assert log.count("  ok: ") == 2
    assert not page.banner.isVisibleTo(page) or "error" not in page.banner.text
    # The running VM's transient share is offered as permanent once the VM stops.
    assert UUIDS[RUNNING] in page.pending
    state = fake.state()
    for vm in state["vms"]:
        if vm["name"] == RUNNING:
            vm["state"] = "poweroff"
            vm["folders"] = [f for f in vm["folders"] if not f["transient"]]
    fake.state_file.write_text(json.dumps(state))
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.refresh()
    assert page.pending_bar.isVisibleTo(page)
    assert RUNNING in page.pending_label.text()
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.pending_button.click()
    _idle(qtbot, page)
    now = next(f for f in fake.vm(RUNNING)["folders"] if f["name"] == "ZI2")
    assert (now["transient"], now["readonly"], now["automount"]) == (False, True, True)
    assert not page.pending and not page.pending_bar.isVisibleTo(page)


def test_errors_show_vboxmanage_line_and_explanation(qtbot, fake, tmp_path, cache) -> None:
    page = _page(qtbot, _env(fake, tmp_path))
    page.select_vms([STOPPED, RUNNING])
    dialog = page.share_dialog(page.selected_vms())
    qtbot.addWidget(dialog)
    dialog.path_combo.setCurrentText(str(tmp_path / "gone"))
    plan = dialog.plan()
    (tmp_path / "gone").mkdir()  # the dialog saw it; it went before VBoxManage ran
    plan = dialog.plan()
    (tmp_path / "gone").rmdir()
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.run_share(page.selected_vms(), plan)
    _idle(qtbot, page)
    text = "\n".join(page.banner.messages)
    assert f"{STOPPED}: VBoxManage: error: RTPathQueryInfo failed" in text
    assert "the host path does not exist" in text
    log = page.log.toPlainText()
    # The log's error line names the VM, and its lines are shown from their start.
    assert f"  {STOPPED}: VBoxManage: error: RTPathQueryInfo failed" in log
    assert page.log.horizontalScrollBar().value() == 0
    assert not page.pending  # nothing shared, nothing to keep


def test_what_virtualbox_refuses_is_not_run(qtbot, fake, tmp_path, cache) -> None:
    """A saved VM, and a name in use on a VM (permanent or transient): the dialog says so, Share
    is disabled where nothing can be shared, and no such command runs."""
    page = _page(qtbot, _env(fake, tmp_path))
    page.select_vms([SAVED])
    dialog = page.share_dialog(page.selected_vms())
    qtbot.addWidget(dialog)
    dialog.path_combo.setCurrentText(str(cache))
    assert not dialog.ok_button.isEnabled()
    assert f"{SAVED} is saved (suspended)" in dialog.problem.text()
    assert "sharedfolder" not in dialog.preview.text()
    page.select_vms([SAVED, STOPPED])
    dialog = page.share_dialog(page.selected_vms())
    qtbot.addWidget(dialog)
    dialog.path_combo.setCurrentText(str(cache))
    assert dialog.ok_button.isEnabled()
    assert f"Skipped: {SAVED} is saved" in dialog.lifetime.text()
    assert f"# {SAVED}: skipped, nothing to run" in dialog.preview.text()
    assert UUIDS[SAVED] not in dialog.preview.text()
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.run_share(page.selected_vms(), dialog.plan())
    _idle(qtbot, page)
    assert not [c for c in fake.calls() if UUIDS[SAVED] in c and c[0] == "sharedfolder"]
    assert any(f["name"] == "ZeroInstall" for f in fake.vm(STOPPED)["folders"])
    # The running VM has a permanent 'ZeroInstall' and a transient 'scratch': both names refused.
    page.select_vms([RUNNING])
    for name, kind in (("ZeroInstall", "permanent, read-only"), ("scratch", "transient, writable")):
        dialog = page.share_dialog(page.selected_vms())
        qtbot.addWidget(dialog)
        dialog.path_combo.setCurrentText(str(cache))
        dialog.name_edit.setText(name)
        assert not dialog.ok_button.isEnabled()
        assert f"already has a share named '{name}' ({kind}" in dialog.problem.text()


def test_state_unknown_after_a_timeout_is_said_everywhere(qtbot, fake, tmp_path, cache) -> None:
    fake.set(hang=["showvminfo"])
    page = _page(qtbot, _env(fake, tmp_path), timeout=1.0)
    _idle(qtbot, page)
    page.select_vms([STOPPED])
    vm = page.selected_vms()[0]
    assert vm.state_text == "unknown"
    text = page.instructions_for(vm)
    assert "is not known" in text and "shares no folder" not in text
    dialog = page.share_dialog([vm])
    qtbot.addWidget(dialog)
    dialog.path_combo.setCurrentText(str(cache))
    assert "Permanent" not in dialog.lifetime.text()
    assert "its state is unknown" in dialog.problem.text() and not dialog.ok_button.isEnabled()


def test_remove_share(qtbot, fake, tmp_path, monkeypatch) -> None:
    page = _page(qtbot, _env(fake, tmp_path))
    page.select_vms([RUNNING])
    page.folders.selectRow(1)
    assert page.selected_folder().name == "scratch"
    assert page.remove_action.isEnabled()
    asked = {}

    def answer(_parent, _title, text, buttons, default):
        asked["text"] = text
        asked["default"] = default
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    page.show()
    page.activateWindow()
    qtbot.waitActive(page)
    page.folders.setFocus()
    qtbot.waitUntil(page.folders.hasFocus)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        qtbot.keyClick(page.folders, Qt.Key.Key_Delete)
    _idle(qtbot, page)
    assert (
        f"VBoxManage sharedfolder remove {UUIDS[RUNNING]} --name scratch --transient"
        in asked["text"]
    )
    assert (
        f"VBoxManage setextradata {UUIDS[RUNNING]} "
        "VBoxInternal2/SharedFoldersEnableSymlinksCreate/scratch" in asked["text"]
    )
    assert asked["default"] == QMessageBox.StandardButton.No  # Enter does not remove
    assert [f["name"] for f in fake.vm(RUNNING)["folders"]] == ["ZeroInstall"]
    assert "extradata" not in fake.vm(RUNNING) or not fake.vm(RUNNING)["extradata"]
    page.table.selectRow(_row(page, RUNNING))
    assert [f.name for f in page.folder_model.folders] == ["ZeroInstall"]
    # The log is shown after a change, and Copy then copies it.
    assert page.bottom.currentWidget() is page.log
    page.copy_button.click()
    assert "sharedfolder remove" in QApplication.clipboard().text()


def test_a_hanging_vboxmanage_does_not_hang_the_window(qtbot, fake, tmp_path) -> None:
    fake.set(hang=["showvminfo"])
    page = VMPage(_env(fake, tmp_path), timeout=1.0)
    qtbot.addWidget(page)
    ticks = []
    timer = QTimer(page)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(50)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.start()
        assert page.busy  # started, and start() returned at once
    timer.stop()
    assert len(ticks) >= 10  # the event loop kept running for the ~3 s of timeouts
    assert all("did not answer in time" in vm.error for vm in page.model.vms)
    assert "did not answer in time" in page.banner.text
    _idle(qtbot, page)


def test_without_virtualbox_the_generators_still_work(qtbot, tmp_path, monkeypatch) -> None:
    env = {
        "VBOX_MANAGE": str(tmp_path / "none"),
        "PATH": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "c"),
    }
    from core import vboxmanage

    monkeypatch.setattr(vboxmanage, "UNIX_LOCATIONS", [])  # even where VirtualBox is installed
    page = _page(qtbot, env)
    assert "VirtualBox is not installed here" in page.where.text()
    assert f"$VBOX_MANAGE names '{tmp_path / 'none'}', which does not exist" in page.where.text()
    assert not page.share_action.isEnabled() and not page.remove_action.isEnabled()
    assert page.model.rowCount() == 0
    assert 'Vagrant.configure("2")' in page.snippets.text("vagrant")
    # Nothing to list, so the page shows what it can do here; a refresh keeps the admin's choice.
    assert page.tabs.currentWidget() is page.snippets
    page.tabs.setCurrentIndex(0)
    with qtbot.waitSignal(page.refreshed, timeout=20_000):
        page.refresh()
    assert page.tabs.currentIndex() == 0


def test_a_saved_tab_wins_over_the_generators_without_virtualbox(qtbot, tmp_path, monkeypatch):
    from core import vboxmanage

    monkeypatch.setattr(vboxmanage, "UNIX_LOCATIONS", [])
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("vms/tab", 0)
    page = VMPage({"VBOX_MANAGE": str(tmp_path / "none"), "PATH": str(tmp_path)})
    qtbot.addWidget(page)
    page.restore_state(settings)
    with qtbot.waitSignal(page.refreshed, timeout=20_000):
        page.start()
    assert "VirtualBox is not installed here" in page.where.text()
    assert page.tabs.currentIndex() == 0


def test_state_is_remembered(qtbot, fake, tmp_path, cache) -> None:
    page = _page(qtbot, _env(fake, tmp_path))
    page.tabs.setCurrentIndex(1)
    page.pending = {"x": [{"name": "N", "host_path": str(cache)}]}
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    page.save_state(settings)
    other = VMPage(_env(fake, tmp_path))
    qtbot.addWidget(other)
    other.restore_state(settings)
    assert other.tabs.currentIndex() == 1
    assert other.pending == page.pending


def test_the_window_adds_the_page_last(qtbot, cache) -> None:
    from core.stores import stores_from_paths
    from gui.app import _build_window

    window, _cache_page = _build_window(stores_from_paths([str(cache)]), None, None)
    qtbot.addWidget(window)
    pages = window.pages
    assert getattr(pages[-1], "page_id", None) == "vms"
    assert pages[-1].title == "Virtual machines"
    window.close()


def test_closing_while_vboxmanage_hangs_stops_it(qtbot, fake, tmp_path) -> None:
    import time

    fake.set(hang=True)
    page = VMPage(_env(fake, tmp_path), timeout=120)
    qtbot.addWidget(page)
    page.start()
    # VBoxManage hangs now, asked for its version and the list side by side.
    qtbot.waitUntil(lambda: len(fake.calls()) == 2, timeout=WAIT_MS)
    started = time.monotonic()
    page.shutdown(timeout=10)
    assert time.monotonic() - started < 5
    assert not page._worker.running
    assert sorted(fake.calls()) == [["--version"], ["list", "vms"]]  # nothing ran after it
    assert not _running_stand_ins(fake)


def _running_stand_ins(fake: FakeVBox) -> list:
    """The stand-in's processes still running, waited for a little (they are being killed)."""
    import psutil

    found = [
        p
        for p in psutil.process_iter(["cmdline"])
        if fake.exe in (p.info["cmdline"] or []) and p.pid != os.getpid()
    ]
    _gone, alive = psutil.wait_procs(found, timeout=5)
    for p in alive:
        p.kill()
    return alive


def test_removing_what_virtualbox_would_refuse_runs_nothing(qtbot, fake, tmp_path, monkeypatch):
    page = _page(qtbot, _env(fake, tmp_path))
    page.select_vms([RUNNING])
    page.folders.selectRow(0)  # the permanent 'ZeroInstall' of a running VM
    told = {}
    monkeypatch.setattr(
        QMessageBox, "information", lambda _p, _t, text: told.setdefault("text", text)
    )
    monkeypatch.setattr(QMessageBox, "question", lambda *a: pytest.fail("asked to remove"))
    calls = len(fake.calls())
    page.remove_selected()
    assert "can be removed only while the VM is stopped" in told["text"]
    assert fake.calls()[calls:] == [] and not page.busy


def test_names_at_once_details_as_they_come_and_cancel(qtbot, fake, tmp_path) -> None:
    """With showvminfo hanging, the names show as soon as `list vms` answered; Cancel kills the
    hanging calls at once and says which VMs were not read."""
    fake.set(hang=["showvminfo"])
    page = VMPage(_env(fake, tmp_path), timeout=600)
    qtbot.addWidget(page)
    page.show()
    page.start()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=WAIT_MS)
    assert [vm.name for vm in page.model.vms] == [RUNNING, STOPPED, SAVED]
    assert all(vm.reading for vm in page.model.vms)
    cell = page.model.data(page.model.index(0, page.model.STATE))
    assert cell == "reading…"
    assert f"Reading what {RUNNING} shares" in page.instructions.toPlainText()
    # The three VMs are asked about side by side (one call each), not one after another.
    qtbot.waitUntil(lambda: sum(c[0] == "showvminfo" for c in fake.calls()) == 3, timeout=WAIT_MS)
    assert page.cancel_action.isEnabled() and not page.share_action.isEnabled()
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.cancel_action.trigger()
    assert not _running_stand_ins(fake)
    assert all(not vm.known and vm.error == "not read: cancelled" for vm in page.model.vms)
    assert f"Cancelled: not read: {RUNNING}, {STOPPED}, {SAVED}" in page.banner.text
    _idle(qtbot, page)
    assert not page.cancel_action.isEnabled() and page.refresh_action.isEnabled()


def test_details_of_different_vms_are_read_side_by_side(qtbot, fake, tmp_path) -> None:
    """The stand-in lets a showvminfo answer only once all three VMs are being asked at once:
    read one after another, they would time out. Calls about one VM never overlap."""
    fake.set(gate={"showvminfo": 3})
    page = _page(qtbot, _env(fake, tmp_path), timeout=30)
    _idle(qtbot, page)
    assert all(vm.known and not vm.error for vm in page.model.vms), [
        vm.error for vm in page.model.vms
    ]
    events = [
        json.loads(line) for line in Path(str(fake.state_file) + ".events").read_text().splitlines()
    ]
    busy: dict[str, int] = {}
    pids: dict[int, str] = {}
    for what, pid, args in events:
        ref = next((u for u in UUIDS.values() if u in args), None)
        if ref is None:
            continue
        if what == "start":
            assert busy.get(ref, 0) == 0, f"two calls about {ref} at once"
            busy[ref] = 1
            pids[pid] = ref
        else:
            busy[pids.pop(pid)] = 0


def test_no_vms_says_that_vms_are_per_user(qtbot, fake, tmp_path) -> None:
    fake.set(vms=[])
    page = _page(qtbot, _env(fake, tmp_path))
    assert page.model.rowCount() == 0
    assert "VirtualBox keeps VMs per user" in page.instructions.toPlainText()
    assert not page.share_action.isEnabled()


def test_the_status_bar_does_not_keep_saying_a_finished_job_runs(qtbot, tmp_path, monkeypatch):
    from core import vboxmanage

    monkeypatch.setattr(vboxmanage, "UNIX_LOCATIONS", [])  # no VirtualBox: no "3 VMs" to follow it
    page = VMPage({"VBOX_MANAGE": str(tmp_path / "none"), "PATH": str(tmp_path)})
    qtbot.addWidget(page)
    page.show()
    said: list[str] = []
    page.statusMessage.connect(said.append)
    with qtbot.waitSignal(page.jobsIdle, timeout=WAIT_MS):
        page.start()
    assert said and said[0].startswith("Reading the VirtualBox VMs")
    assert said[-1] == ""
