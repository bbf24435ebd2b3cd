"""Configuration generators on the Virtual machines page: Vagrant, microvm.nix, libvirt, fstab.

A small form (share name, host and guest paths, read-only) drives ``core.snippets``; each snippet
shows in its own tab with Copy and Save buttons. Nothing here needs VirtualBox.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core import snippets
from core.snippets import SnippetOptions
from gui.workers import Starter, Worker


class SnippetPanel(QWidget):
    """The form and the generated snippets; ``saved(path)`` after a snippet was written."""

    saved = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = self._build_form()

        self.problem = QLabel(self)
        self.problem.setStyleSheet("color: #b3261e;")
        self.problem.setWordWrap(True)
        self.problem.hide()

        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.texts: dict[str, QPlainTextEdit] = {}
        self.notes: dict[str, QLabel] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        for kind in snippets.KINDS:
            self.tabs.addTab(self._build_snippet_tab(kind, mono), snippets.TITLES[kind])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(self.tabs, 1)

        for edit in (
            self.name_edit,
            self.host_edit,
            self.guest_edit,
            self.guest_cache_edit,
            self.libvirt_edit,
        ):
            edit.textChanged.connect(self.update_snippets)
        self.writable_check.toggled.connect(self.update_snippets)
        self.proto_combo.currentIndexChanged.connect(self.update_snippets)
        self.update_snippets()

    def _build_form(self) -> QFormLayout:
        """The options every snippet is written from: the share, its paths and access, and the
        settings only some snippets use."""
        defaults = SnippetOptions()
        self.name_edit = QLineEdit(defaults.name, self)
        self.name_edit.setAccessibleName("Share name")
        self.name_edit.setToolTip("The share's name: VirtualBox's share name, the virtiofs/9p tag")
        self.host_edit = QLineEdit(defaults.host_path, self)
        self.host_edit.setAccessibleName("Host path")
        self.host_edit.setToolTip("The cache folder on the host")
        self.guest_edit = QLineEdit(defaults.guest_path, self)
        self.guest_edit.setAccessibleName("Guest path")
        self.guest_edit.setToolTip("Where the guest mounts it (where 0install looks for it)")
        self.writable_check = QCheckBox("Let the guest write to the host's cache", self)
        self.writable_check.setToolTip(
            "Off (the default): read-only, so a guest cannot change what the host runs"
        )
        self.guest_cache_edit = QLineEdit(self)
        self.guest_cache_edit.setAccessibleName("Guest-writable cache")
        self.guest_cache_edit.setPlaceholderText(
            "optional host folder, e.g. ~/.cache/shared-vagrant-guest-cache"
        )
        self.guest_cache_edit.setToolTip(
            "Vagrant: a second cache shared between guests and writable by them (less secure: "
            "a malicious guest can corrupt it for every VM)"
        )
        self.proto_combo = QComboBox(self)
        self.proto_combo.setAccessibleName("microvm.nix protocol")
        self.proto_combo.addItem("virtiofs (faster; needs virtiofsd on the host)", "virtiofs")
        self.proto_combo.addItem("9p (built into more hypervisors)", "9p")
        self.libvirt_edit = QLineEdit(self)
        self.libvirt_edit.setAccessibleName("libvirt version")
        self.libvirt_edit.setPlaceholderText("e.g. 11.0; empty: not known")
        self.libvirt_edit.setToolTip(
            "libvirt 11.0 and later enforce <readonly/> for virtiofs on the host; older ones "
            "do not, and the snippet says so"
        )

        form = QFormLayout()
        form.addRow("Share &name:", self.name_edit)
        form.addRow("&Host path:", self.host_edit)
        form.addRow("&Guest path:", self.guest_edit)
        form.addRow("", self.writable_check)
        form.addRow("Guest-&writable cache:", self.guest_cache_edit)
        extra = QHBoxLayout()
        extra.addWidget(self.proto_combo, 1)
        extra.addWidget(QLabel("libvirt version:", self))
        extra.addWidget(self.libvirt_edit)
        form.addRow("microvm.nix share:", extra)
        return form

    def _build_snippet_tab(self, kind: str, mono: QFont) -> QWidget:
        """One snippet's tab: a note on it, Copy and Save, and the generated text."""
        page = QWidget(self.tabs)
        note = QLabel(page)
        note.setWordWrap(True)
        self.notes[kind] = note
        text = QPlainTextEdit(page)
        text.setReadOnly(True)
        text.setFont(mono)
        text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        text.setAccessibleName(f"{snippets.TITLES[kind]} snippet")
        copy = QPushButton("&Copy", page)
        copy.setToolTip(f"Copy the {snippets.TITLES[kind]} snippet to the clipboard")
        copy.clicked.connect(lambda _=False, k=kind: self.copy(k))
        save = QPushButton("&Save…", page)
        save.setToolTip(f"Save the {snippets.TITLES[kind]} snippet to a file")
        save.clicked.connect(lambda _=False, k=kind: self.save_dialog(k))
        buttons = QHBoxLayout()
        buttons.addWidget(note, 1)
        buttons.addWidget(copy)
        buttons.addWidget(save)
        box = QVBoxLayout(page)
        box.setContentsMargins(4, 4, 4, 4)
        box.addLayout(buttons)
        box.addWidget(text, 1)
        self.texts[kind] = text
        return page

    def detect_libvirt(self, starter: Starter | None = None) -> None:
        """Ask this host's virsh for the libvirt version, off the GUI thread; fills the field
        unless the admin typed something meanwhile."""
        worker = Worker(snippets.detect_libvirt_version, starter=starter, name="virsh", parent=self)

        def done(version: object, _error: object) -> None:
            worker.deleteLater()
            if isinstance(version, tuple) and not self.libvirt_edit.text():
                self.libvirt_edit.setText(".".join(map(str, version)))
                self.libvirt_edit.setToolTip(
                    self.libvirt_edit.toolTip() + " (found with virsh --version)"
                )

        worker.done.connect(done)
        worker.start()

    def options(self) -> SnippetOptions:
        version = snippets.parse_libvirt_version(self.libvirt_edit.text())
        guest_cache = os.path.expanduser(self.guest_cache_edit.text().strip())
        return SnippetOptions(
            name=self.name_edit.text().strip(),
            host_path=os.path.expanduser(self.host_edit.text().strip()),
            guest_path=self.guest_edit.text().strip(),
            writable=self.writable_check.isChecked(),
            guest_cache=guest_cache,
            proto=str(self.proto_combo.currentData()),
            libvirt_version=version,
        )

    def set_host_path(self, path: str) -> None:
        self.host_edit.setText(path)

    def update_snippets(self) -> None:
        opts = self.options()
        problem = opts.check()
        self.problem.setText(f"Cannot write the configuration: {problem}." if problem else "")
        self.problem.setVisible(bool(problem))
        for kind, text in self.texts.items():
            self.notes[kind].setText(snippets.note(kind, opts))
            if problem:
                text.setPlainText("")
                continue
            text.setPlainText(snippets.generate(kind, opts))
        for button in self.findChildren(QPushButton):
            button.setEnabled(not problem)

    def text(self, kind: str) -> str:
        return self.texts[kind].toPlainText()

    def copy(self, kind: str) -> None:
        QGuiApplication.clipboard().setText(self.text(kind))

    def save_dialog(self, kind: str) -> None:
        path, _filter = QFileDialog.getSaveFileName(
            self, f"Save the {snippets.TITLES[kind]} snippet", snippets.FILE_NAMES[kind]
        )
        if path:
            self.save(kind, path)

    def save(self, kind: str, path: str) -> str:
        """Write the snippet to ``path``; returns "" or why it could not be written."""
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(self.text(kind))
        except OSError as exc:
            message = f"Could not save '{path}': {exc.strerror or exc}"
            self.problem.setText(message)
            self.problem.show()
            return message
        self.saved.emit(path)
        return ""
