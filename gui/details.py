"""The details pane: everything known about the selected cache entry, and what is wrong with it."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from datetime import datetime

import humanize
from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gui import status as st
from gui.cache_model import Row, last_used_text
from gui.icons import icon

MAX_CHANGES = 40
"""Changes listed in the pane; the rest are counted (the command line lists them all)."""

_ZWSP = "\u200b"
_LONG_RUN = re.compile(r"[^\s/\u200b]{16}(?=[^\s/\u200b])")


def _breakable(text: str) -> str:
    """Let long paths wrap after each slash, and digests every 16 characters (zero-width spaces),
    instead of widening the pane."""
    text = text.replace("/", "/" + _ZWSP)
    return _LONG_RUN.sub(lambda m: m.group(0) + _ZWSP, text)


def _plain(text: str) -> str:
    return text.replace(_ZWSP, "")


def _when(ts: float | None) -> str:
    if not ts:
        return "unknown"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


class _Value(QLineEdit):
    """A read-only one-line value that can be selected and copied, and scrolls instead of wrapping
    (paths and digests have no spaces to wrap at)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFrame(False)
        self.setStyleSheet("QLineEdit { background: transparent; }")
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def set(self, text: str) -> None:
        self.setText(text)
        self.setCursorPosition(0)
        self.setToolTip(text)


class DetailsPane(QScrollArea):
    """Shows one :class:`~gui.cache_model.Row`; :meth:`show_row` with None shows a hint instead."""

    openRequested = Signal(str)  # the folder that "Open folder" opened

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.open_url: Callable[[QUrl], object] = QDesktopServices.openUrl  # tests replace it
        self._row: Row | None = None

        body = QWidget(self)
        self.setWidget(body)
        outer = QVBoxLayout(body)
        outer.setContentsMargins(10, 8, 10, 8)
        outer.setSpacing(8)

        self._title = QLabel(body)
        title_font = QFont(self._title.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.3)
        title_font.setBold(True)
        self._title.setFont(title_font)
        self._title.setWordWrap(True)
        self._title.setTextFormat(Qt.TextFormat.PlainText)
        outer.addWidget(self._title)

        status_line = QHBoxLayout()
        self._status_icon = QLabel(body)
        self._status = QLabel(body)
        bold = QFont(self._status.font())
        bold.setBold(True)
        self._status.setFont(bold)
        self._open = QPushButton(icon("folder-open"), "Open folder", body)
        self._open.clicked.connect(self._open_folder)
        status_line.addWidget(self._status_icon)
        status_line.addWidget(self._status, 1)
        status_line.addWidget(self._open)
        outer.addLayout(status_line)

        # The alarm box: damage or suspicion, in the status colour, above the ordinary facts.
        self._alarm = QFrame(body)
        self._alarm.setObjectName("alarm")
        alarm_layout = QVBoxLayout(self._alarm)
        alarm_layout.setContentsMargins(8, 6, 8, 6)
        self._alarm_title = QLabel(self._alarm)
        self._alarm_title.setFont(bold)
        self._alarm_title.setWordWrap(True)
        self._alarm_text = QLabel(self._alarm)
        self._alarm_text.setWordWrap(True)
        self._alarm_text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._alarm_text.setTextFormat(Qt.TextFormat.PlainText)
        self._alarm_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._changes_label = QLabel("What changed:", self._alarm)
        self._changes_label.setFont(bold)
        self._changes = QLabel(self._alarm)
        self._changes.setAccessibleName("Changed files")
        self._changes.setWordWrap(True)
        self._changes.setTextFormat(Qt.TextFormat.PlainText)
        self._changes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._changes.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._change_lines: list[str] = []
        alarm_layout.addWidget(self._alarm_title)
        alarm_layout.addWidget(self._alarm_text)
        alarm_layout.addWidget(self._changes_label)
        alarm_layout.addWidget(self._changes)
        outer.addWidget(self._alarm)

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._values: dict[str, _Value] = {}
        self._labels: dict[str, QLabel] = {}

        self._path = _Value(body)
        form.addRow("Path:", self._path)
        self._values["Path"] = self._path
        for name in ("Digest", "Feed URL"):
            value = _Value(body)
            form.addRow(f"{name}:", value)
            self._values[name] = value
        for name in (
            "Algorithm",
            "Program",
            "Version",
            "Store",
            "Owner",
            "Size",
            "Files",
            "Last used",
            "Added",
            "Used by",
            "Verification",
        ):
            label = QLabel(body)
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{name}:", label)
            self._labels[name] = label
        self._form_box = QWidget(body)
        self._form_box.setLayout(form)
        outer.addWidget(self._form_box)

        self._hint = QLabel(
            "Select an entry to see where it is, what it belongs to and whether it is intact.", body
        )
        self._hint.setWordWrap(True)
        self._hint.setEnabled(False)
        outer.addWidget(self._hint)
        outer.addStretch(1)
        self.show_row(None)

    # --- reading back (tests, accessibility) -----------------------------------------------------

    @property
    def row(self) -> Row | None:
        return self._row

    def field(self, name: str) -> str:
        """The text shown for a field ("Path", "Digest", "Size", "Verification"...)."""
        widget = self._values.get(name) or self._labels[name]
        return _plain(widget.text())

    @property
    def alarm_text(self) -> str:
        """Title and text of the damage/suspicion box, "" when it is hidden."""
        if self._alarm.isHidden():
            return ""
        return _plain(f"{self._alarm_title.text()}\n{self._alarm_text.text()}")

    @property
    def changes(self) -> list[str]:
        """The readable changes listed for a damaged entry (Change.describe())."""
        return list(self._change_lines)

    @property
    def open_button(self) -> QPushButton:
        return self._open

    # --- showing ---------------------------------------------------------------------------------

    def show_row(self, row: Row | None) -> None:
        self._row = row
        self.refresh()

    def refresh(self) -> None:
        """Show the current row again (its size or status changed)."""
        row = self._row
        has_row = row is not None
        self._form_box.setVisible(has_row)
        self._status_icon.setVisible(has_row)
        self._status.setVisible(has_row)
        self._open.setVisible(has_row)
        self._hint.setVisible(not has_row)
        if row is None:
            self._title.setText("No entry selected")
            self._alarm.hide()
            return
        entry = row.entry
        # The feed's name even for a suspicious entry: its name claims to be that program.
        name = entry.feed.feed_name if entry.feed is not None else entry.program
        title = f"{name} {entry.version}" if entry.version else name
        self._title.setText(title)
        word = row.status
        size = self._status.fontMetrics().height()
        self._status_icon.setPixmap(st.status_icon(word).pixmap(size, size))
        self._status.setText(word if word == st.OK else word[:1].upper() + word[1:])
        self._show_alarm(row, word)

        f, v = self._labels, self._values
        self._path.set(entry.path)
        is_dir = stat.S_ISDIR(entry.mode) and not stat.S_ISLNK(entry.mode)
        # Never open what a planted symlink points at: show the store folder instead.
        self._open.setText("Open folder" if is_dir else "Open store folder")
        self._open.setToolTip(
            "Show this implementation in the file manager"
            if is_dir
            else "This entry is not a directory: show the store folder that contains it"
        )
        digest = entry.digest
        v["Digest"].set(digest.name if digest else f"{entry.name} (not a digest)")
        f["Algorithm"].setText(digest.algorithm if digest else "—")
        feed = entry.feed
        v["Feed URL"].set(feed.feed_url if feed else "no cached feed lists it")
        f["Program"].setText(feed.feed_name if feed else entry.program)
        f["Version"].setText(entry.version or "unknown")
        store = entry.store
        where = store.label if store.path in store.label else f"{store.label}: {store.path}"
        f["Store"].setText(_breakable(where))
        f["Owner"].setText(f"{entry.owner}, mode {stat.filemode(entry.mode)}")
        usage = entry.usage
        if usage is None:
            size_text = files_text = "measuring…"
        else:
            size_text = (
                f"{humanize.naturalsize(usage.size)} ({usage.size:,} bytes), "
                f"{humanize.naturalsize(usage.disk)} on disk"
            )
            if usage.error:
                size_text += f"\n{_breakable(usage.error)}"
            files_text = f"{usage.files:,}"
        f["Size"].setText(size_text)
        f["Files"].setText(files_text)
        last = last_used_text(entry, datetime.now().timestamp())
        if usage is not None and usage.last_used and entry.atime_reliable:
            last += f" ({_when(usage.last_used)})"
        f["Last used"].setText(last)
        f["Added"].setText(_when(entry.added))
        f["Used by"].setText(
            ", ".join(entry.used_by) if entry.used_by else "no 0install app selects it"
        )
        f["Verification"].setText(_breakable(self._verification_text(row)))

    def _verification_text(self, row: Row) -> str:
        outcome = row.outcome
        if row.verifying:
            return "being verified…"
        if outcome is None:
            return "not verified yet"
        lines = [outcome.detail]
        if outcome.actual and outcome.expected and outcome.actual != outcome.expected:
            lines.append(f"Expected {outcome.expected}")
            lines.append(f"Actual   {outcome.actual}")
        if outcome.recorded and outcome.recorded not in (outcome.expected, outcome.actual):
            lines.append(f".manifest {outcome.recorded}")
        return "\n".join(lines)

    def _show_alarm(self, row: Row, word: str) -> None:
        entry = row.entry
        outcome = row.outcome
        title = text = ""
        changes: list[str] = []
        if word == st.CORRUPT and outcome is not None:
            title = "Damaged: this entry does not match its digest"
            text = outcome.detail
            changes = [c.describe() for c in outcome.changes]
        elif word == st.ERROR and outcome is not None:
            title = "Could not be verified"
            text = outcome.detail
        elif entry.kind in ("suspicious", "temporary", "unknown") and entry.reason:
            title = {
                "suspicious": "Suspicious entry",
                "temporary": "Temporary leftover",
                "unknown": "Not an implementation",
            }[entry.kind]
            text = entry.reason
            if outcome is not None and entry.kind == "suspicious" and outcome.status == "ok":
                text += f"\nIts contents verify ({outcome.detail}), but it is still unsafe."
        if not title:
            self._alarm.hide()
            return
        color = st.status_color(word if word in st.PROBLEMS else st.SKIPPED)
        wash = _rgba(color, 36)
        self._alarm.setStyleSheet(
            f"QFrame#alarm {{ background: {wash}; border: 1px solid {color.name()};"
            " border-radius: 4px; }"
        )
        self._alarm_title.setText(title)
        self._alarm_text.setText(_breakable(text))
        self._change_lines = changes
        shown = [f"• {c}" for c in changes[:MAX_CHANGES]]
        if len(changes) > MAX_CHANGES:
            shown.append(f"… and {len(changes) - MAX_CHANGES:,} more")
        self._changes.setText(_breakable("\n".join(shown)))
        self._changes_label.setVisible(bool(changes))
        self._changes.setVisible(bool(changes))
        self._alarm.show()

    def _open_folder(self) -> None:
        row = self._row
        if row is None:
            return
        entry = row.entry
        is_dir = stat.S_ISDIR(entry.mode) and not stat.S_ISLNK(entry.mode)
        folder = entry.path if is_dir else entry.store.path
        self.open_url(QUrl.fromLocalFile(folder))
        self.openRequested.emit(folder)


def _rgba(color: QColor, alpha: int) -> str:
    """A CSS ``rgba()`` of a colour with another alpha, for style sheets."""
    return f"rgba({color.red()}, {color.green()}, {color.blue()}, {alpha})"
