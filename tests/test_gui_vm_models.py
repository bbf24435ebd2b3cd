"""The VM table model without widgets: names first, each VM's details filled in place."""

from __future__ import annotations

from core import vbox_vms, vboxmanage_output
from gui.vm_models import FolderModel, VMModel


def test_names_first_then_each_vm_in_place(qtbot) -> None:
    model = VMModel()
    model.set_vms(
        [vbox_vms.VM("a", "u-a", reading=True), vbox_vms.VM("b", "u-b", reading=True)], []
    )

    def cell(row: int, col: int) -> object:
        return model.data(model.index(row, col))

    assert [cell(0, model.NAME), cell(0, model.STATE), cell(0, model.OS)] == ["a", "reading…", ""]
    assert cell(0, model.FOLDERS) == "reading…"
    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda top, bottom, *_: changed.append((top.row(), bottom.row())))
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    folder = vboxmanage_output.SharedFolder(
        "ZeroInstall", "/srv/0install.net/implementations", readonly=True
    )
    model.update_vm(
        1, vbox_vms.VM("b", "u-b", state="poweroff", os_type="Debian", folders=[folder])
    )
    assert changed == [(1, 1)] and not resets  # one row changed, no reset
    assert cell(1, model.STATE) == "powered off" and cell(1, model.OS) == "Debian"
    assert cell(1, model.FOLDERS) == "ZeroInstall (read-only, permanent, Zero Install cache)"
    model.update_vm(0, vbox_vms.VM("a", "u-a", error="not read: cancelled"))
    assert cell(0, model.STATE) == "unknown" and cell(0, model.FOLDERS) == "not read: cancelled"
    model.update_vm(5, vbox_vms.VM("x", "u-x"))  # a row that is gone: ignored
    assert model.rowCount() == 2


def test_folder_model_shows_access_and_symlinks(qtbot) -> None:
    model = FolderModel()
    model.set_folders(
        [vboxmanage_output.SharedFolder("s", "/x", transient=True, readonly=False, symlinks=True)],
        [False],
    )
    row = [model.data(model.index(0, c)) for c in range(model.columnCount())]
    assert row == ["s", "/x", "transient", "writable", "?", "on", ""]
