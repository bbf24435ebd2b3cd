"""The in-app help: short HTML pages shipped in ``resources/help``, shown offline.

One page per window page (``<page_id>.html``), and ``index.html`` for anything else. Links between
help pages open in the same window; links to the web are shown as text to copy, never followed
behind the admin's back (the machine may have no browser and no network).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from gui.icons import RESOURCES

HELP_DIRS = (
    RESOURCES / "help",  # a source checkout
    Path(__file__).resolve().parent / "resources" / "help",  # an installed wheel
)


def help_file(topic: str) -> Path | None:
    """The help page for a topic (a page id), else the index; None if help is not installed."""
    for folder in HELP_DIRS:
        for name in (f"{topic}.html", "index.html") if topic else ("index.html",):
            path = folder / name
            if path.is_file():
                return path
    return None


class HelpDialog(QDialog):
    """A small, non-modal reader for the help pages."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Zero Install Admin Help")
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(False)
        self.browser.setOpenLinks(True)
        self.browser.setSearchPaths([str(d) for d in HELP_DIRS])
        self.browser.setAccessibleName("Help")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        fm = self.fontMetrics()
        self.resize(fm.averageCharWidth() * 90, fm.height() * 34)

    def show_topic(self, topic: str) -> None:
        path = help_file(topic)
        if path is None:
            self.browser.setPlainText(
                "The help pages are not installed. They are in resources/help of the source."
            )
            return
        self.browser.setSource(QUrl.fromLocalFile(str(path)))

    @property
    def text(self) -> str:
        return self.browser.toPlainText()
