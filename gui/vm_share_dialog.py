""" "Share the cache with these VMs": one dialog for several VMs at once.

It shows, before anything runs, every VBoxManage command the share takes, and the warnings that
apply to each VM (old Guest Additions, a saved VM, symlink creation, a writable share).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from core import vbox_vms, vboxmanage, vm_share
from core.stores import SHARED_SYSTEM_STORE

GUEST_SHARE_NAME = "ZeroInstallGuests"
GUEST_CACHE_NOTE = (
    "A second folder, writable by the guests and shared between them (the 0install docs' "
    "guest-wide cache). A malicious guest can corrupt it for every VM using it. Symlink "
    "creation is turned on for it (0install implementations contain symlinks)."
)


@dataclass(frozen=True)
class SharePlan:
    """What the dialog asks for: the main share, an optional guest cache, and the follow-up."""

    request: vm_share.ShareRequest
    guest_cache: vm_share.ShareRequest | None
    permanent_later: bool  # make transient shares permanent once their VM stops

    def requests(self) -> list[vm_share.ShareRequest]:
        return [self.request] + ([self.guest_cache] if self.guest_cache is not None else [])

    def problem(self, vm: vbox_vms.VM) -> str:
        """Why nothing is to be run for ``vm`` (see :func:`core.vm_share.share_problem`), or ""."""
        for request in self.requests():
            problem = vm_share.share_problem(vm, request)
            if problem:
                return problem
        return ""

    def refused(self, vms: Sequence[vbox_vms.VM]) -> list[tuple[vbox_vms.VM, str]]:
        return [(vm, p) for vm in vms if (p := self.problem(vm))]

    def commands(self, vm: vbox_vms.VM) -> list[list[str]]:
        found = vm_share.share_commands(vm, self.request)
        if self.guest_cache is not None:
            found += vm_share.share_commands(vm, self.guest_cache)
        return found

    def warnings(self, vms: Sequence[vbox_vms.VM]) -> list[str]:
        """Each warning once: the general ones, then those about particular VMs. The guest
        cache's own symlinks are its purpose, explained beside it, so not repeated."""
        found = vm_share.general_warnings(self.request)
        for vm in vms:
            found += [w for w in vm_share.share_warnings(vm, self.request) if w not in found]
        return found


class ShareDialog(QDialog):
    def __init__(
        self,
        vms: Sequence[vbox_vms.VM],
        default_path: str,
        user_store: str,
        parent: QWidget | None = None,
        stores: Sequence[str] = (),
    ) -> None:
        super().__init__(parent)
        self.vms = list(vms)
        self._user_store = user_store
        self._stores = list(stores)
        self.setWindowTitle("Share the cache with these VMs")
        names = ", ".join(vm.name for vm in self.vms)
        intro = QLabel(f"<b>VMs:</b> {_html(names)}", self)
        intro.setWordWrap(True)
        form = self._build_share_form(default_path)
        self._build_lifetime()
        self._build_guest_cache()
        self._build_preview()
        self._lay_out(intro, form)
        self._follow_the_form()
        self.update_preview()

    # --- construction: one method per part of the dialog -----------------------------------------

    def _build_share_form(self, default_path: str) -> QFormLayout:
        """The main share: its name, host path, access, auto-mount and symlink creation."""
        self.name_edit = QLineEdit(vm_share.DEFAULT_SHARE_NAME, self)
        self.name_edit.setAccessibleName("Share name")
        self.name_edit.setToolTip("The name the guest mounts (no spaces)")
        self.path_combo = QComboBox(self)
        self.path_combo.setEditable(True)
        self.path_combo.setAccessibleName("Host path")
        self.path_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        for path in dict.fromkeys([default_path, SHARED_SYSTEM_STORE, self._user_store]):
            self.path_combo.addItem(path)
        browse = QPushButton("&Browse…", self)
        browse.setToolTip("Choose another folder on the host")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_combo, 1)
        path_row.addWidget(browse)
        self.path_note = QLabel(self)
        self.path_note.setWordWrap(True)

        self.readonly_check = QCheckBox("&Read-only, enforced on the host (--readonly)", self)
        self.readonly_check.setChecked(True)
        self.readonly_check.setToolTip(
            "The guest cannot write to the host's cache, whatever its root does"
        )
        self.automount_check = QCheckBox("&Auto-mount (Guest Additions mount it at boot)", self)
        self.mount_edit = QLineEdit(self)
        self.mount_edit.setAccessibleName("Mount point")
        self.mount_edit.setPlaceholderText(f"empty: /media/sf_<name>; e.g. {vm_share.GUEST_CACHE}")
        self.mount_edit.setEnabled(False)
        self.automount_check.toggled.connect(self.mount_edit.setEnabled)
        self.symlink_check = QCheckBox("Let the guest create &symlinks in this share", self)
        self.symlink_warning = QLabel(vm_share.SYMLINK_WARNING, self)
        self.symlink_warning.setWordWrap(True)
        self.symlink_warning.setStyleSheet("color: #b3261e;")
        self.symlink_warning.hide()
        self.symlink_check.toggled.connect(self.symlink_warning.setVisible)
        self.symlink_check.setEnabled(False)  # for a writable share only
        self.symlink_check.setToolTip("Only for a writable share: untick Read-only first")
        self.readonly_check.toggled.connect(self._readonly_toggled)

        form = QFormLayout()
        form.addRow("Share &name:", self.name_edit)
        path_label = QLabel("&Host path:", self)
        path_label.setBuddy(self.path_combo)
        form.addRow(path_label, path_row)
        form.addRow("", self.path_note)
        form.addRow("", self.readonly_check)
        form.addRow("", self.automount_check)
        form.addRow("&Mount point:", self.mount_edit)
        form.addRow("", self.symlink_check)
        form.addRow("", self.symlink_warning)
        return form

    def _build_lifetime(self) -> None:
        """Transient or permanent, per VM, and making the transient shares permanent later."""
        running = [vm for vm in self.vms if vm.running]
        self.lifetime = QLabel(self)
        self.lifetime.setWordWrap(True)
        self.permanent_check = QCheckBox(
            "Make the transient shares &permanent when those VMs stop", self
        )
        self.permanent_check.setChecked(bool(running))
        self.permanent_check.setVisible(bool(running))

    def _build_guest_cache(self) -> None:
        """The optional second cache, writable by the guests."""
        self.guest_check = QCheckBox("Also share a guest-&writable cache", self)
        self.guest_box = QWidget(self)
        self.guest_name_edit = QLineEdit(GUEST_SHARE_NAME, self.guest_box)
        self.guest_name_edit.setAccessibleName("Guest cache share name")
        self.guest_path_edit = QLineEdit(
            os.path.expanduser("~/.cache/0install.net/shared-vm-guest-cache"), self.guest_box
        )
        self.guest_path_edit.setAccessibleName("Guest cache host path")
        guest_note = QLabel(GUEST_CACHE_NOTE, self.guest_box)
        guest_note.setWordWrap(True)
        guest_form = QFormLayout(self.guest_box)
        guest_form.setContentsMargins(24, 0, 0, 0)
        guest_form.addRow("Name:", self.guest_name_edit)
        guest_form.addRow("Host folder:", self.guest_path_edit)
        guest_form.addRow(guest_note)
        self.guest_check.toggled.connect(self.guest_box.setVisible)
        self.guest_box.hide()

    def _build_preview(self) -> None:
        """What will happen: the warnings, the commands that will run, why Share is disabled."""
        self.warnings = QLabel(self)
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #8a5a00;")
        # The commands wrap and take the height they need: the dialog scrolls as one, with no
        # box scrolling inside it, and no command is cut off at the right.
        self.preview = QLabel(self)
        self.preview.setAccessibleName("Commands")
        self.preview.setTextFormat(Qt.TextFormat.PlainText)
        self.preview.setWordWrap(True)
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setFrameShape(QFrame.Shape.StyledPanel)
        self.preview.setMargin(6)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.problem = QLabel(self)
        self.problem.setStyleSheet("color: #b3261e;")
        self.problem.setWordWrap(True)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("&Share")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def _lay_out(self, intro: QLabel, form: QFormLayout) -> None:
        # Everything but the buttons scrolls, so that the dialog fits small and scaled screens.
        body = QWidget(self)
        inner = QVBoxLayout(body)
        inner.addWidget(intro)
        inner.addLayout(form)
        inner.addWidget(self.lifetime)
        inner.addWidget(self.permanent_check)
        inner.addWidget(self.guest_check)
        inner.addWidget(self.guest_box)
        inner.addWidget(self.warnings)
        inner.addWidget(QLabel("VBoxManage will run:", body))
        inner.addWidget(self.preview)
        inner.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        self._body = body
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)

    def _follow_the_form(self) -> None:
        """Every change to the form updates the preview."""
        for edit in (self.name_edit, self.mount_edit, self.guest_name_edit, self.guest_path_edit):
            edit.textChanged.connect(self.update_preview)
        self.path_combo.currentTextChanged.connect(self.update_preview)
        for check in (
            self.readonly_check,
            self.automount_check,
            self.symlink_check,
            self.permanent_check,
            self.guest_check,
        ):
            check.toggled.connect(self.update_preview)

    # --- reading the form ------------------------------------------------------------------------

    def host_path(self) -> str:
        return os.path.expanduser(self.path_combo.currentText().strip())

    def plan(self) -> SharePlan:
        request = vm_share.ShareRequest(
            host_path=self.host_path(),
            name=self.name_edit.text().strip(),
            readonly=self.readonly_check.isChecked(),
            automount=self.automount_check.isChecked(),
            mount_point=self.mount_edit.text().strip() if self.automount_check.isChecked() else "",
            symlinks=self.symlink_check.isChecked(),
        )
        guest = None
        if self.guest_check.isChecked():
            guest = vm_share.ShareRequest(
                host_path=os.path.expanduser(self.guest_path_edit.text().strip()),
                name=self.guest_name_edit.text().strip(),
                readonly=False,
                symlinks=True,
            )
        return SharePlan(request, guest, self.permanent_check.isChecked())

    def problem_text(self, plan: SharePlan) -> str:
        """Why Share is disabled, or "": a bad form, a name already used on a VM (as VirtualBox
        Manager refuses it), or no VM that can take the share."""
        problem = plan.request.check()
        if problem:
            return problem
        if plan.guest_cache is not None:
            guest = plan.guest_cache
            if guest.name == plan.request.name:
                return "the guest cache needs a name of its own"
            # The folder may be created on Share; only the name and path form matter here.
            probe = vm_share.ShareRequest(host_path="/", name=guest.name).check()
            if probe:
                return "guest cache: " + probe
            if not os.path.isabs(guest.host_path):
                return f"guest cache: the host folder '{guest.host_path}' is not absolute"
        for vm in self.vms:
            for request in plan.requests():
                if vm_share.taken_by(vm, request.name) is not None:
                    return vm_share.share_problem(vm, request)
        refused = plan.refused(self.vms)
        if len(refused) == len(self.vms):
            return refused[0][1] if len(refused) == 1 else "none of these VMs can take it now"
        return ""

    def _readonly_toggled(self, readonly: bool) -> None:
        if readonly:
            self.symlink_check.setChecked(False)
        self.symlink_check.setEnabled(not readonly)
        self.symlink_check.setToolTip(
            "Only for a writable share: untick Read-only first" if readonly else ""
        )

    def update_preview(self) -> None:
        plan = self.plan()
        request = plan.request
        self.path_note.setText(
            vm_share.describe_host_path(
                request.host_path, request.readonly, self._user_store, self._stores
            )
        )
        refused = {vm.uuid: p for vm, p in plan.refused(self.vms)}
        able = [vm for vm in self.vms if vm.uuid not in refused]
        transient = [vm.name for vm in able if request.transient_for(vm)]
        permanent = [vm.name for vm in able if not request.transient_for(vm)]
        parts = []
        if permanent:
            parts.append("Permanent for " + ", ".join(permanent) + " (not running).")
        if transient:
            parts.append(
                "Transient for " + ", ".join(transient) + " (running): VirtualBox keeps a "
                "running VM's settings locked, so the share lasts until the VM stops."
            )
        for vm in self.vms:
            if vm.uuid in refused:
                parts.append(f"Skipped: {refused[vm.uuid]}.")
        self.lifetime.setText("\n".join(parts))
        self.permanent_check.setVisible(bool(transient))
        warnings = [w for w in plan.warnings(self.vms) if w != vm_share.SYMLINK_WARNING]
        self.warnings.setText("\n".join(warnings))
        self.warnings.setVisible(bool(warnings))
        problem = self.problem_text(plan)
        self.problem.setText(f"Cannot share: {problem}." if problem else "")
        self.problem.setVisible(bool(problem))
        self.ok_button.setEnabled(not problem)
        lines = []
        if plan.guest_cache is not None and not os.path.isdir(plan.guest_cache.host_path):
            lines.append(f"mkdir -p {_sh(plan.guest_cache.host_path)}")
        for vm in self.vms:
            if vm.uuid in refused:
                lines.append(f"# {vm.name}: skipped, nothing to run")
                continue
            lines.append(f"# {vm.name}")
            lines += [vboxmanage.command_line(args) for args in plan.commands(vm)]
        self.preview.setText("\n".join(lines))

    def fit_to_screen(self) -> None:
        """As large as the content wants, within the screen (at any scale): the body's wrapped
        text decides the height, the screen caps it, and the body scrolls as one beyond that."""
        screen = self.screen().availableGeometry() if self.screen() else None
        width = 640 if screen is None else min(640, int(screen.width() * 0.95))
        height = (
            self._body.heightForWidth(width - 40)
            + self.problem.sizeHint().height()
            + self.buttons.sizeHint().height()
            + 60
        )
        if screen is not None:
            height = min(height, int(screen.height() * 0.92))
        self.resize(width, height)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to share", self.host_path())
        if path:
            self.path_combo.setCurrentText(path)


def _html(text: str) -> str:
    import html

    return html.escape(text)


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)
