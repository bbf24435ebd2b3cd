"""The details pane: everything known about the selected cache entry, and what is wrong with it."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QAction, QColor, QDesktopServices, QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.display import display_path
from core.units import ago_text, gap_text
from gui import status as st
from gui.cache_rows import Row, last_used_text, size_detail, verdict_age
from gui.icons import icon

if TYPE_CHECKING:
    from core.cache import Entry

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


class ElidedValue(QLabel):
    """A value too long for the pane (a path, a digest, a URL), with the whole text in its tooltip
    and a "Copy" entry in its context menu: elided in the middle, or (``wrap``, for digests that
    must be read whole) wrapped every 16 characters."""

    copied = Signal(str)  # the name of what was copied

    def __init__(self, name: str, parent: QWidget, wrap: bool = False) -> None:
        super().__init__(parent)
        self._name = name
        self._full = ""
        self._wrap = wrap
        self.setTextFormat(Qt.TextFormat.PlainText)
        if wrap:
            # Not selectable: a selection would carry the invisible break points into the
            # clipboard; Copy (button or context menu) gives the exact text.
            self.setWordWrap(True)
            self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        else:
            self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 6)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.setAccessibleName(name)
        copy = QAction(f"Copy {name.lower()}", self)
        copy.triggered.connect(self.copy)
        self.addAction(copy)

    @property
    def full_text(self) -> str:
        return self._full

    def set(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self.setAccessibleDescription(text)
        self._elide()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self._full)
        self.copied.emit(self._name.lower())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        if self._wrap:
            if _plain(self.text()) != self._full:
                # A break point every 4 characters: lines fill the width evenly.
                full = self._full
                self.setText(_ZWSP.join(full[i : i + 4] for i in range(0, len(full), 4)))
            return
        shown = self.fontMetrics().elidedText(
            self._full, Qt.TextElideMode.ElideMiddle, max(0, self.width())
        )
        if shown != self.text():
            self.setText(shown)


def _copy_button(value: ElidedValue, parent: QWidget) -> QToolButton:
    button = QToolButton(parent)
    button.setText("Copy")
    button.setToolTip(f"Copy the whole {value.accessibleName().lower()} to the clipboard")
    button.setAutoRaise(True)
    button.clicked.connect(value.copy)
    return button


def _caption(text: str, value: ElidedValue, parent: QWidget) -> QWidget:
    """A field's caption with its Copy button at the right, above the value (full width)."""
    box = QWidget(parent)
    line = QHBoxLayout(box)
    line.setContentsMargins(0, 0, 0, 0)
    line.addWidget(QLabel(text, box))
    line.addStretch(1)
    line.addWidget(_copy_button(value, box))
    return box


_EPOCH_CHANGE = re.compile(r"mtime (-?\d+) -> (-?\d+)")
_SIZE_CHANGE = re.compile(r"size (\d+) -> (\d+)")


def readable_change(text: str) -> str:
    """A Change.describe() with dates instead of epoch seconds, and the difference:
    "mtime 1796090335 -> 1796090379" becomes "modified 2026-11-30 12:38:55 -> 12:39:39 (44 seconds
    later)"."""

    def when(m: re.Match[str]) -> str:
        a, b = int(m.group(1)), int(m.group(2))
        try:
            da, db = datetime.fromtimestamp(a), datetime.fromtimestamp(b)
        except (OverflowError, OSError, ValueError):
            return m.group(0)
        fa = da.strftime("%Y-%m-%d %H:%M:%S")
        fb = db.strftime("%H:%M:%S" if da.date() == db.date() else "%Y-%m-%d %H:%M:%S")
        gap = gap_text(b - a)
        side = "later" if b >= a else "earlier"
        return f"modified time {fa} -> {fb} ({gap} {side})"

    def size(m: re.Match[str]) -> str:
        a, b = int(m.group(1)), int(m.group(2))
        return f"size {a:,} -> {b:,} bytes ({b - a:+,})"

    return _SIZE_CHANGE.sub(size, _EPOCH_CHANGE.sub(when, text))


class DetailsPane(QScrollArea):
    """Shows one :class:`~gui.cache_rows.Row`; :meth:`show_row` with None shows a hint instead.

    From the top: the name, the verdict and every problem (what the admin came for), the
    actions, then the facts. Long values (paths, digests, URLs) are elided in the middle with the
    whole text in their tooltip and a Copy button; sentences wrap.
    """

    openRequested = Signal(str)  # the folder that "Open folder" opened
    openFailed = Signal(str, str)  # the folder nothing could open, and why
    copied = Signal(str)  # what was copied ("path", "digest"...)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # How a folder is opened: xdg-open's exit code is waited for (it exits 3 or 4, "no
        # method available", when nothing handles folders); tests replace it.
        self.open_url: Callable[[QUrl], object] = self._open_with_xdg_open
        self.now: Callable[[], float] = time.time  # tests replace it
        self._row: Row | None = None

        body = QWidget(self)
        self.setWidget(body)
        outer = QVBoxLayout(body)
        outer.setContentsMargins(10, 8, 10, 8)
        outer.setSpacing(8)
        self._build_verdict(body, outer)
        outer.addWidget(self._build_alarm(body))
        actions = QHBoxLayout()
        self._open = QPushButton(icon("folder-open"), "Open folder", body)
        self._open.clicked.connect(self._open_folder)
        actions.addWidget(self._open)
        actions.addStretch(1)
        outer.addLayout(actions)
        outer.addWidget(self._build_ids(body))
        outer.addWidget(self._build_facts(body))
        self._hint = QLabel(
            "Select an entry to see where it is, what it belongs to and whether it is intact.", body
        )
        self._hint.setWordWrap(True)
        outer.addWidget(self._hint)
        outer.addStretch(1)
        self.show_row(None)

    # --- building the sections, top to bottom ----------------------------------------------------

    def _build_verdict(self, body: QWidget, outer: QVBoxLayout) -> None:
        """The title, then the verdict line (icon and status) and how old the verdict is."""
        self._title = QLabel(body)
        title_font = QFont(self._title.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.3)
        title_font.setBold(True)
        self._title.setFont(title_font)
        self._title.setWordWrap(True)
        self._title.setTextFormat(Qt.TextFormat.PlainText)
        self._title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        outer.addWidget(self._title)

        status_line = QHBoxLayout()
        self._status_icon = QLabel(body)
        self._status = QLabel(body)
        bold = QFont(self._status.font())
        bold.setBold(True)
        self._status.setFont(bold)
        self._status.setWordWrap(True)
        self._status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._status.setTextFormat(Qt.TextFormat.PlainText)
        status_line.addWidget(self._status_icon, 0, Qt.AlignmentFlag.AlignTop)
        status_line.addWidget(self._status, 1)
        outer.addLayout(status_line)
        self._verification = QLabel(body)
        self._verification.setAccessibleName("Verification")
        self._verification.setWordWrap(True)
        self._verification.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._verification.setTextFormat(Qt.TextFormat.PlainText)
        self._verification.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self._verification)

    def _build_alarm(self, body: QWidget) -> QFrame:
        """The alarm box: every problem of the entry, in the status colour, above the facts; then
        the digests and changed files of a failed verification (:meth:`_show_alarm` fills it)."""
        self._alarm = QFrame(body)
        self._alarm.setObjectName("alarm")
        self._alarm_layout = QVBoxLayout(self._alarm)
        self._alarm_layout.setContentsMargins(8, 6, 8, 6)
        self._alarm_labels: list[QLabel] = []
        self._alarm_lines: list[str] = []
        self._digests = QWidget(self._alarm)
        self._digest_form = digests = QFormLayout(self._digests)
        digests.setContentsMargins(0, 0, 0, 0)
        digests.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        digests.setVerticalSpacing(2)
        digests.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._digest_values: dict[str, ElidedValue] = {}
        self._digest_rows: dict[str, QWidget] = {}
        for name in ("Expected", "Actual", ".manifest"):
            value = ElidedValue(f"{name} digest", self._digests, wrap=True)
            value.setFont(_fixed_font(value.font()))
            value.copied.connect(self.copied)
            digests.addRow(_caption(f"{name}:", value, self._digests), value)
            self._digest_values[name] = value
            self._digest_rows[name] = value
        self._changes_label = QLabel("What changed:", self._alarm)
        bold = QFont(self._status.font())
        bold.setBold(True)
        self._changes_label.setFont(bold)
        self._changes = QLabel(self._alarm)
        self._changes.setAccessibleName("Changed files")
        self._changes.setWordWrap(True)
        self._changes.setTextFormat(Qt.TextFormat.PlainText)
        self._changes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._changes.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._change_lines: list[str] = []
        self._alarm_tail = [self._digests, self._changes_label, self._changes]
        for widget in self._alarm_tail:
            self._alarm_layout.addWidget(widget)
        return self._alarm

    def _build_ids(self, body: QWidget) -> QWidget:
        """Path, digest and feed URL: each on a line of its own, the full width of the pane."""
        ids = QFormLayout()
        ids.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
        ids.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        ids.setVerticalSpacing(2)
        self._ids = ids
        self._values: dict[str, ElidedValue] = {}
        self._value_rows: dict[str, QWidget] = {}
        for name in ("Path", "Digest", "Feed URL"):
            value = ElidedValue(name, body, wrap=name == "Digest")
            value.copied.connect(self.copied)
            if name == "Digest":
                value.setFont(_fixed_font(value.font()))
            ids.addRow(_caption(f"{name}:", value, body), value)
            self._values[name] = value
            self._value_rows[name] = value
        self._path = self._values["Path"]
        self._ids_box = QWidget(body)
        self._ids_box.setLayout(ids)
        return self._ids_box

    def _build_facts(self, body: QWidget) -> QWidget:
        """The other facts, one label per line: program, version, store, owner, size, ages..."""
        self._labels: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
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
        return self._form_box

    # --- reading back (tests, accessibility) -----------------------------------------------------

    @property
    def row(self) -> Row | None:
        return self._row

    def field(self, name: str) -> str:
        """The whole text of a field ("Path", "Digest", "Size", "Verification"...)."""
        if name == "Verification":
            return _plain(self._verification.text())
        if name in self._values:
            return self._values[name].full_text
        if name in self._digest_values:
            return self._digest_values[name].full_text
        return _plain(self._labels[name].text())

    def value_widget(self, name: str) -> ElidedValue:
        """The elided value of "Path", "Digest", "Feed URL", "Expected", "Actual", ".manifest"."""
        return self._values.get(name) or self._digest_values[name]

    @property
    def status_text(self) -> str:
        return self._status.text()

    @property
    def alarm_text(self) -> str:
        """Every problem's title and text, "" when the box is hidden."""
        if self._alarm.isHidden():
            return ""
        return _plain("\n".join(self._alarm_lines))

    @property
    def changes(self) -> list[str]:
        """The readable changes listed for a damaged entry."""
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
        self._ids_box.setVisible(has_row)
        self._status_icon.setVisible(has_row)
        self._status.setVisible(has_row)
        self._verification.setVisible(has_row)
        self._open.setVisible(has_row)
        self._hint.setVisible(not has_row)
        if row is None:
            self._title.setText("No entry selected")
            self._alarm.hide()
            return
        entry = row.entry
        name = entry.program if entry.feed is not None else f"{entry.program} {entry.short_name}"
        title = f"{name} {entry.version}" if entry.version else name
        self._title.setText(display_path(title))
        word = row.status
        size = self._status.fontMetrics().height()
        self._status_icon.setPixmap(st.status_icon(word).pixmap(size, size))
        self._status.setText(self._headline(row))
        self._verification.setText(_breakable(self._verification_text(row)))
        self._show_alarm(row, word)
        # A failed verdict is told in the box of problems; an OK one (or none) here.
        told = row.outcome is not None and row.outcome.status in ("corrupt", "error")
        self._verification.setVisible(not (told and not entry_not_dir(row)))
        self._show_facts(entry)

    def _show_facts(self, entry: Entry) -> None:
        """Where the entry is, what it belongs to, its size and ages; the Open button's words."""
        f, v = self._labels, self._values
        self._path.set(display_path(entry.path))
        is_dir = stat.S_ISDIR(entry.mode) and not stat.S_ISLNK(entry.mode)
        # Never open what a planted symlink points at: show the store folder instead.
        self._open.setText("Open folder" if is_dir else "Open store folder")
        self._open.setToolTip(
            "Show this implementation in the file manager"
            if is_dir
            else "This entry is not a directory: show the store folder that contains it"
        )
        digest = entry.digest
        v["Digest"].set(digest.name if digest else f"{display_path(entry.name)} (not a digest)")
        f["Algorithm"].setText(digest.algorithm if digest else "—")
        feed = entry.feed
        v["Feed URL"].set(feed.feed_url if feed else "")
        self._ids.setRowVisible(self._value_rows["Feed URL"], feed is not None)
        f["Program"].setText(
            feed.feed_name if feed else f"{entry.program}: no cached feed lists it"
        )
        f["Version"].setText(entry.version or "unknown")
        store = entry.store
        f["Store"].setText(_breakable(f"{store.label}: {display_path(store.path)}"))
        f["Store"].setToolTip(display_path(store.path))
        f["Owner"].setText(f"{entry.owner}, mode {stat.filemode(entry.mode)}")
        usage = entry.usage
        if usage is None:
            size_text = files_text = "measuring…"
        else:
            size_text = size_detail(usage)
            if usage.error:
                size_text += f"\n{_breakable(usage.error)}"
            files_text = f"{usage.files:,}" if usage.files else "none"
        f["Size"].setText(size_text)
        f["Files"].setText(files_text)
        last = last_used_text(entry, self.now())
        if usage is not None and usage.last_used and entry.atime_reliable:
            last += f" ({_when(usage.last_used)})"
        f["Last used"].setText(last)
        if entry.added:
            source = (
                "when its .manifest was written"
                if entry.added_from == "manifest"
                else "the directory's modification time: it has no .manifest"
            )
            f["Added"].setText(f"{_when(entry.added)} ({source})")
        else:
            f["Added"].setText("unknown")
        f["Used by"].setText(
            ", ".join(entry.used_by) if entry.used_by else "no 0install app selects it"
        )

    def _headline(self, row: Row) -> str:
        """ "OK, 10 minutes ago", "Damaged, 2 hours ago; writable by everyone", "Not verified"."""
        if row.verifying:
            return "Being verified…"
        word = row.status
        problems = [p for p in row.problems if p not in (st.CORRUPT, st.ERROR)]
        if entry_not_dir(row):
            # Not a directory: no verdict on contents applies, whatever the verifier said.
            text = "Planted"
            if row.outcome is not None and row.verified_at is not None:
                text += f", checked {ago_text(self.now() - row.verified_at)}"
            return text
        age = verdict_age(row, self.now())
        if age:
            text = age[:1].upper() + age[1:]
        elif word == st.SUSPICIOUS:
            text = "Suspicious"
        else:
            text = "Not verified yet"
        if problems and not (row.status == st.SUSPICIOUS and not age):
            text += "; " + ", ".join(problems)
        elif problems:
            text += ": " + ", ".join(problems)
        return text

    def _verification_text(self, row: Row) -> str:
        outcome = row.outcome
        if row.verifying:
            return "being verified…"
        if outcome is None:
            if row.entry.digest is None:
                return "Not an implementation: there is nothing to verify."
            return "Verify selected (Ctrl+Shift+V) checks its contents against its digest."
        return outcome.detail

    def _problems(self, row: Row, word: str) -> list[tuple[str, str]]:
        """(title, text) of each thing wrong with the entry, worst first."""
        entry = row.entry
        outcome = row.outcome
        found: list[tuple[str, str]] = []
        not_a_dir = entry.issue in st.NOT_A_DIRECTORY
        if entry.kind == "suspicious" and entry.reason:
            title = {
                "planted": "Planted: a symbolic link where an implementation belongs",
                "not-a-directory": "Planted: not a directory",
                "digest-case": "Never used: digest in the wrong case",
                "bad-digest": "Never used: impossible digest",
                "foreign-owner": "Owned by someone else",
                "world-writable": "Writable by everyone",
                "group-writable": "Writable by its group",
            }.get(entry.issue, "Suspicious entry")
            found.append((title, entry.reason + "."))
        if outcome is not None and not not_a_dir:
            if outcome.status == "corrupt":
                planted = (
                    outcome.recorded is not None
                    and outcome.actual is not None
                    and outcome.recorded == outcome.actual
                    and outcome.expected != outcome.actual
                )
                title = (
                    "Planted or renamed: its contents and .manifest belong to another digest"
                    if planted
                    else "Damaged: does not match its digest"
                )
                found.append((title, outcome.detail))
            elif outcome.status == "error":
                found.append(("Could not be verified", outcome.detail))
        if entry.kind in ("temporary", "unknown") and entry.reason:
            title = "Temporary leftover" if entry.kind == "temporary" else "Not an implementation"
            found.append((title, entry.reason + "."))
        return found

    def _show_alarm(self, row: Row, word: str) -> None:
        outcome = row.outcome
        problems = self._problems(row, word)
        self._alarm_lines = []
        if not problems:
            for label in self._alarm_labels:
                label.hide()
            self._alarm.hide()
            self._change_lines = []
            return
        bold = QFont(self._status.font())
        bold.setBold(True)
        # Two labels (title, text) per problem, made once and reused.
        while len(self._alarm_labels) < 2 * len(problems):
            is_title = len(self._alarm_labels) % 2 == 0
            label = QLabel(self._alarm)
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            if is_title:
                label.setFont(bold)
            else:
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self._alarm_layout.insertWidget(len(self._alarm_labels), label)
            self._alarm_labels.append(label)
        for i, label in enumerate(self._alarm_labels):
            if i < 2 * len(problems):
                title, text = problems[i // 2]
                label.setText(title if i % 2 == 0 else _breakable(text))
                label.show()
            else:
                label.hide()
        for title, text in problems:
            self._alarm_lines += [title, text]
        color = st.status_color(word if word in st.PROBLEMS else st.SKIPPED)
        wash = _rgba(color, 36)
        self._alarm.setStyleSheet(
            f"QFrame#alarm {{ background: {wash}; border: 1px solid {color.name()};"
            " border-radius: 4px; }"
        )
        # The digests of a failed verification, in full on demand: they are what to report.
        shown_digests = False
        values = {
            "Expected": outcome.expected if outcome else None,
            "Actual": outcome.actual if outcome else None,
            ".manifest": outcome.recorded if outcome else None,
        }
        mismatch = outcome is not None and outcome.status == "corrupt"
        for name, value in values.items():
            wanted = bool(mismatch and value)
            if name == ".manifest":
                wanted = wanted and value not in (values["Expected"], values["Actual"])
            self._digest_form.setRowVisible(self._digest_rows[name], wanted)
            self._digest_values[name].set(value or "")
            shown_digests = shown_digests or wanted
        self._digests.setVisible(shown_digests)
        changes = [readable_change(c.describe()) for c in outcome.changes] if outcome else []
        if entry_not_dir(row):
            changes = []
        self._change_lines = changes
        shown = [f"• {c}" for c in changes[:MAX_CHANGES]]
        if len(changes) > MAX_CHANGES:
            shown.append(f"… and {len(changes) - MAX_CHANGES:,} more")
        self._changes.setText(_breakable("\n".join(shown)))
        self._changes_label.setVisible(bool(changes))
        self._changes.setVisible(bool(changes))
        self._alarm.show()

    def flash(self) -> None:
        """Draw the eye to the pane for a moment (Show details on an entry already shown)."""
        from PySide6.QtCore import QTimer

        body = self.widget()
        body.setObjectName("detailsBody")
        body.setStyleSheet(
            "QWidget#detailsBody { border: 2px solid palette(highlight); border-radius: 4px; }"
        )
        QTimer.singleShot(700, self, lambda: body.setStyleSheet(""))

    def _open_with_xdg_open(self, url: QUrl) -> object:
        """Open a folder with xdg-open and report its exit code when it comes (asynchronously):
        starting it is not success. Without xdg-open, Qt's own way (other desktops)."""
        import shutil

        from PySide6.QtCore import QProcess

        program = shutil.which("xdg-open")
        folder = url.toLocalFile()
        if program is None:
            if QDesktopServices.openUrl(url):
                return True
            self.openFailed.emit(folder, "xdg-open is not installed and nothing else opens folders")
            return None
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)

        def finished(code: int, status: QProcess.ExitStatus) -> None:
            output = bytes(process.readAll().data()).decode("utf-8", "replace").strip()
            process.deleteLater()
            if status == QProcess.ExitStatus.NormalExit and code == 0:
                self.openRequested.emit(folder)
                return
            last = output.splitlines()[-1] if output else f"exit status {code}"
            last = last.replace(f"'{folder}'", "it").replace(folder, "it")
            self.openFailed.emit(folder, f"xdg-open failed: {last.removeprefix('xdg-open: ')}")

        def failed(error: QProcess.ProcessError) -> None:
            if error == QProcess.ProcessError.FailedToStart:
                process.deleteLater()
                self.openFailed.emit(folder, f"xdg-open could not start ({process.errorString()})")

        process.finished.connect(finished)
        process.errorOccurred.connect(failed)
        process.start(program, [folder])
        return None

    def _open_folder(self) -> None:
        row = self._row
        if row is None:
            return
        entry = row.entry
        is_dir = stat.S_ISDIR(entry.mode) and not stat.S_ISLNK(entry.mode)
        folder = entry.path if is_dir else entry.store.path
        result = self.open_url(QUrl.fromLocalFile(folder))
        if result is False:
            self.openFailed.emit(folder, "nothing on this machine opens folders (no file manager)")
        elif result is not None:
            self.openRequested.emit(folder)
        # None: the answer comes later (openRequested or openFailed)


def entry_not_dir(row: Row) -> bool:
    return row.entry.issue in st.NOT_A_DIRECTORY


def _fixed_font(base: QFont) -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setPointSizeF(base.pointSizeF())
    return font


def _rgba(color: QColor, alpha: int) -> str:
    """A CSS ``rgba()`` of a colour with another alpha, for style sheets."""
    return f"rgba({color.red()}, {color.green()}, {color.blue()}, {alpha})"
