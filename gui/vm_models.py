"""The table models of the Virtual machines page: the VMs, and the shared folders of one VM.

Kept apart from the page so that they can be tested without widgets; the page fills the VM table
in place as each VM's details arrive (names first, then a ``dataChanged`` per VM).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from core import vbox_vms, vboxmanage_output, vm_share
from gui.icons import icon

_Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()  # a table's rows have no other parent


class _Table(QAbstractTableModel):
    """A flat table whose columns are named by ``HEADERS``."""

    HEADERS: tuple[str, ...] = ()

    def columnCount(self, parent: _Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class VMModel(_Table):
    """One row per VM: name, state, OS, Guest Additions, shared folders."""

    HEADERS = ("Name", "State", "OS", "Guest Additions", "Shared folders")
    NAME, STATE, OS, GA, FOLDERS = range(5)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.vms: list[vbox_vms.VM] = []
        self.cache_paths: list[str] = []

    def set_vms(self, vms: Sequence[vbox_vms.VM], cache_paths: Sequence[str]) -> None:
        """All rows at once: the names as ``list vms`` gave them, or the VMs read."""
        self.beginResetModel()
        self.vms = list(vms)
        self.cache_paths = list(cache_paths)
        self.endResetModel()

    def update_vm(self, row: int, vm: vbox_vms.VM) -> None:
        """Row ``row`` now holds ``vm`` (its details arrived): one ``dataChanged``."""
        if 0 <= row < len(self.vms):
            self.vms[row] = vm
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))

    def is_cache(self, folder: vboxmanage_output.SharedFolder) -> bool:
        return vm_share.is_cache_path(folder.host_path, self.cache_paths)

    def rowCount(self, parent: _Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.vms)

    def data(self, index: _Index, role: int = 0) -> Any:
        if not index.isValid():
            return None
        vm = self.vms[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == self.NAME:
                return vm.name
            if column == self.STATE:
                return vm.state_text
            if vm.reading and column in (self.OS, self.GA):
                return ""
            if column == self.OS:
                return vm.os_type or "?"
            if column == self.GA:
                if not vm.ga_version:
                    return "not known"
                return vm.ga_version + ("  (too old)" if vm.ga_old else "")
            if column == self.FOLDERS:
                if vm.reading:
                    return "reading…"
                if vm.error and not vm.state:
                    return vm.error
                parts = []
                for f in vm.folders:
                    mark = ", Zero Install cache" if self.is_cache(f) else ""
                    parts.append(f"{f.name} ({f.access}, {f.kind}{mark})")
                return "; ".join(parts) or "none"
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.GA and vm.ga_old:
                return vbox_vms.OLD_GA_WARNING.format(version=vm.ga_version)
            if vm.error:
                return vm.error
            return f"{vm.name}\nUUID {vm.uuid}"
        if role == Qt.ItemDataRole.ForegroundRole and (
            (column == self.GA and vm.ga_old) or (vm.error and not vm.state)
        ):
            return QColor("#b3261e")
        if (
            role == Qt.ItemDataRole.FontRole
            and column == self.FOLDERS
            and any(self.is_cache(f) for f in vm.folders)
        ):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.DecorationRole and column == self.NAME:
            return icon("vm")
        return None


class FolderModel(_Table):
    """The shared folders of one VM."""

    HEADERS = ("Name", "Host path", "Lifetime", "Access", "Auto-mount", "Symlinks", "Cache")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folders: list[vboxmanage_output.SharedFolder] = []
        self.cache_flags: list[bool] = []

    def set_folders(
        self, folders: Sequence[vboxmanage_output.SharedFolder], flags: Sequence[bool]
    ) -> None:
        self.beginResetModel()
        self.folders = list(folders)
        self.cache_flags = list(flags)
        self.endResetModel()

    def rowCount(self, parent: _Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.folders)

    def data(self, index: _Index, role: int = 0) -> Any:
        if not index.isValid():
            return None
        f = self.folders[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            automount = {True: "yes", False: "no", None: "?"}[f.automount]
            if f.automount and f.mount_point:
                automount = f"at {f.mount_point}"
            return (
                f.name,
                f.host_path,
                f.kind,
                f.access,
                automount,
                "on" if f.symlinks else "off",
                "Zero Install cache" if self.cache_flags[index.row()] else "",
            )[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            if index.column() == 5 and f.symlinks:
                return vm_share.SYMLINK_WARNING
            if index.column() == 2:
                return "Until the VM stops" if f.transient else "Kept in the VM's settings"
            return f.host_path
        return None
