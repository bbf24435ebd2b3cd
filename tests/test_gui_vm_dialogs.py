"""The share dialog and the configuration generators of the Virtual machines page."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtWidgets import QApplication

from core import vbox_vms
from gui.snippet_panel import SnippetPanel
from gui.vm_share_dialog import ShareDialog

CACHE = "/var/cache/0install.net/implementations"


def _vms() -> list[vbox_vms.VM]:
    return [
        vbox_vms.VM("running one", "u-1", state="running", ga_version="7.0.10"),
        vbox_vms.VM("stopped one", "u-2", state="poweroff", ga_version="4.0.4"),
    ]


def _dialog(qtbot, tmp_path: Path) -> ShareDialog:
    dialog = ShareDialog(_vms(), str(tmp_path), str(tmp_path / "user"))
    qtbot.addWidget(dialog)
    return dialog


def test_defaults_are_read_only_and_transient_only_for_running_vms(qtbot, tmp_path) -> None:
    dialog = _dialog(qtbot, tmp_path)
    assert dialog.readonly_check.isChecked() and not dialog.symlink_check.isChecked()
    assert dialog.name_edit.text() == "ZeroInstall"
    assert dialog.host_path() == str(tmp_path)
    assert dialog.ok_button.isEnabled()
    preview = dialog.preview.text().splitlines()
    assert preview == [
        "# running one",
        (
            f"VBoxManage sharedfolder add u-1 --name ZeroInstall --hostpath {tmp_path} "
            "--readonly --transient"
        ),
        "# stopped one",
        f"VBoxManage sharedfolder add u-2 --name ZeroInstall --hostpath {tmp_path} --readonly",
    ]
    assert dialog.permanent_check.isChecked() and dialog.plan().permanent_later
    assert "stopped one: Guest Additions 4.0.4 are older than 4.2.0" in dialog.warnings.text()
    assert "Incorrect manifest -- archive is corrupted" in dialog.warnings.text()


def test_symlinks_only_with_their_warning(qtbot, tmp_path) -> None:
    dialog = _dialog(qtbot, tmp_path)
    assert not dialog.symlink_warning.isVisibleTo(dialog)
    assert not dialog.symlink_check.isEnabled()  # never for a read-only share
    dialog.readonly_check.setChecked(False)
    dialog.symlink_check.setChecked(True)
    assert dialog.symlink_warning.isVisibleTo(dialog)
    assert "plant symlinks" in dialog.symlink_warning.text()
    assert (
        "VBoxManage setextradata u-2 VBoxInternal2/SharedFoldersEnableSymlinksCreate/ZeroInstall 1"
    ) in dialog.preview.text()
    # Read-only again: symlinks go off with it, and no setextradata is run.
    dialog.readonly_check.setChecked(True)
    assert not dialog.symlink_check.isChecked() and "setextradata" not in dialog.preview.text()


def test_bad_input_disables_share_with_a_reason(qtbot, tmp_path) -> None:
    dialog = _dialog(qtbot, tmp_path)
    dialog.name_edit.setText("Zero Install")
    assert not dialog.ok_button.isEnabled()
    assert "contains a space" in dialog.problem.text()
    dialog.name_edit.setText("ZeroInstall")
    dialog.path_combo.setCurrentText(str(tmp_path / "missing"))
    assert not dialog.ok_button.isEnabled() and "not an existing folder" in dialog.problem.text()
    dialog.path_combo.setCurrentText(str(tmp_path))
    assert dialog.ok_button.isEnabled()


def test_path_notes_follow_the_path_and_the_read_only_box(qtbot, tmp_path, monkeypatch) -> None:
    import core.stores

    system = tmp_path / "var" / "cache" / "0install.net" / "implementations"
    system.mkdir(parents=True)
    monkeypatch.setattr(core.stores, "SHARED_SYSTEM_STORE", str(system))
    user = tmp_path / "user"
    user.mkdir()
    dialog = _dialog(qtbot, tmp_path)
    dialog.path_combo.setCurrentText(str(system))
    assert "shared system store, read-only" in dialog.path_note.text()
    dialog.readonly_check.setChecked(False)
    assert "shared system store, writable" in dialog.path_note.text()
    assert "read-only" not in dialog.path_note.text().split(".")[0]
    dialog.path_combo.setCurrentText(str(user))
    assert dialog.path_note.text().startswith("Your own cache, writable: root in the guest")
    dialog.readonly_check.setChecked(True)
    assert dialog.path_note.text().startswith("Your own cache, read-only")
    dialog.path_combo.setCurrentText("/nonexistent")
    assert dialog.path_note.text() == "This folder does not exist on the host."
    (tmp_path / "photos").mkdir()
    dialog.path_combo.setCurrentText(str(tmp_path / "photos"))
    assert dialog.path_note.text().startswith("Not a Zero Install cache")


def test_guest_writable_cache_is_a_second_writable_share_with_symlinks(qtbot, tmp_path) -> None:
    dialog = _dialog(qtbot, tmp_path)
    assert not dialog.guest_box.isVisibleTo(dialog)
    dialog.guest_check.setChecked(True)
    assert dialog.guest_box.isVisibleTo(dialog)
    guest = tmp_path / "guests"
    dialog.guest_path_edit.setText(str(guest))
    plan = dialog.plan()
    assert plan.guest_cache is not None and not plan.guest_cache.readonly
    preview = dialog.preview.text()
    assert f"mkdir -p {guest}" in preview
    assert f"VBoxManage sharedfolder add u-2 --name ZeroInstallGuests --hostpath {guest}" in preview
    assert "SharedFoldersEnableSymlinksCreate/ZeroInstallGuests 1" in preview
    dialog.guest_name_edit.setText("ZeroInstall")
    assert not dialog.ok_button.isEnabled() and "name of its own" in dialog.problem.text()


def test_snippet_panel_updates_copies_and_saves(qtbot, tmp_path) -> None:
    panel = SnippetPanel()
    qtbot.addWidget(panel)
    assert 'id: "ZeroInstall"' in panel.text("vagrant")
    panel.name_edit.setText("ZI")
    panel.host_edit.setText("/srv/cache")
    panel.libvirt_edit.setText("11.0")
    assert 'id: "ZI"' in panel.text("vagrant") and '"--hostpath", "/srv/cache"' in panel.text(
        "vagrant"
    )
    root = ET.fromstring(panel.text("libvirt"))
    assert root.find("devices/filesystem/readonly") is not None
    panel.proto_combo.setCurrentIndex(1)
    assert 'proto = "9p"' in panel.text("microvm")
    assert "Read-only on the host" in panel.notes["vagrant"].text()
    panel.writable_check.setChecked(True)
    assert "readOnly" not in panel.text("microvm") and "rw," in panel.text("fstab")
    # The captions follow the box: nothing says read-only while Writable is ticked.
    assert all("read-only" not in n.text().lower() for n in panel.notes.values())
    assert "Writable" in panel.notes["vagrant"].text()
    panel.tabs.setCurrentIndex(0)
    panel.copy("vagrant-v1")
    assert QApplication.clipboard().text() == panel.text("vagrant-v1")
    target = tmp_path / "Vagrantfile"
    with qtbot.waitSignal(panel.saved):
        assert panel.save("vagrant", str(target)) == ""
    assert target.read_text() == panel.text("vagrant")
    assert "Could not save" in panel.save("vagrant", str(tmp_path / "no" / "dir" / "file"))


def test_snippet_panel_refuses_bad_options(qtbot) -> None:
    panel = SnippetPanel()
    qtbot.addWidget(panel)
    panel.name_edit.setText("a b")
    assert panel.problem.isVisibleTo(panel) and "contains a space" in panel.problem.text()
    assert panel.text("vagrant") == ""
    panel.name_edit.setText("ok")
    assert not panel.problem.isVisibleTo(panel) and panel.text("vagrant")


def test_snippet_panel_asks_virsh_for_the_libvirt_version(qtbot, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    virsh = folder / "virsh"
    virsh.write_text('#!/bin/sh\n[ "$1" = --version ] && echo 11.0.0\n')
    virsh.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    panel = SnippetPanel()
    qtbot.addWidget(panel)
    assert ET.fromstring(panel.text("libvirt")).find("devices/filesystem/readonly") is None
    panel.detect_libvirt()
    qtbot.waitUntil(lambda: panel.libvirt_edit.text() == "11.0.0", timeout=10_000)
    assert ET.fromstring(panel.text("libvirt")).find("devices/filesystem/readonly") is not None
