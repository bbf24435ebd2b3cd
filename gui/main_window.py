"""The main window: a sidebar of pages, their menus, the status bar, and remembered geometry.

It only hosts pages. Each page is a QWidget with ``title``, ``icon_name``, ``menu_actions()``,
``start()``, ``shutdown()``, ``save_state(settings)``, ``restore_state(settings)``, a ``page_id``
(for ``--page``) and optionally a ``busy`` property (True while its own background work runs; a
screenshot waits for it) and a ``statusMessage(str)`` signal for the status bar; the window adds
it to the sidebar and gives it a menu, shown only while the page is current (so two pages may both
use F5).
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QPoint, QRect, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from gui.changes import CacheChange
from gui.icons import app_icon, icon
from gui.settings import read_bytes, read_int

DEFAULT_SIZE = QSize(1280, 800)
FRAME_ALLOWANCE = QSize(16, 48)
"""Room left for a window manager's frame and title bar, unknown until the window is shown."""


def fitted_size(wanted: QSize, available: QRect) -> QSize:
    """``wanted``, made small enough for its frame to fit in ``available`` (a screen's area
    without panels)."""
    room = QSize(
        max(320, available.width() - FRAME_ALLOWANCE.width()),
        max(240, available.height() - FRAME_ALLOWANCE.height()),
    )
    return wanted.boundedTo(room)


def fitted_position(frame: QRect, available: QRect) -> QPoint:
    """Where a window's frame goes so that it lies inside ``available`` (moved, never resized)."""
    x = min(max(frame.left(), available.left()), available.right() + 1 - frame.width())
    y = min(max(frame.top(), available.top()), available.bottom() + 1 - frame.height())
    return QPoint(max(x, available.left()), max(y, available.top()))


class Page(Protocol):
    """What every page has (see the module's docstring for what a page may have as well: a
    ``busy`` property, ``statusMessage`` and ``cacheChanged`` signals, ``cache_changed``)."""

    title: str
    icon_name: str
    page_id: str  # for --page and the help topic (help/<page_id>.html)

    def menu_actions(self) -> list[QAction | None]: ...
    def start(self) -> None: ...
    def shutdown(self, timeout: float = 5.0) -> None: ...
    def save_state(self, settings: QSettings) -> None: ...
    def restore_state(self, settings: QSettings) -> None: ...


class MainWindow(QMainWindow):
    """Hosts the pages. ``settings`` None means: remember nothing (screenshots).

    It is also the one path of "the cache changed" (:mod:`gui.changes`): a page's
    ``cacheChanged`` signal reaches every page's ``cache_changed(change)``, so that no page
    shows what another page (or the command line) removed, pinned or changed.
    """

    cacheChanged = Signal(object)  # every CacheChange, after the pages heard it

    def __init__(
        self, version: str, settings: QSettings | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.version = version
        self.settings = settings
        self.setWindowTitle("Zero Install Admin")
        self.setWindowIcon(app_icon())
        self.setObjectName("mainWindow")

        self.sidebar = QListWidget(self)
        self.sidebar.setAccessibleName("Pages")
        self.sidebar.setIconSize(QSize(32, 32))
        self.sidebar.setSpacing(2)
        self.sidebar.setFrameShape(QListWidget.Shape.NoFrame)
        self.sidebar.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.sidebar.setStyleSheet(
            "QListWidget { background: palette(window); }"
            " QListWidget::item { padding: 8px 6px; border-radius: 4px; color: palette(text); }"
            " QListWidget::item:selected { background: palette(highlight);"
            " color: palette(highlighted-text); }"
        )
        self.stack = QStackedWidget(self)
        central = QWidget(self)
        layout = QHBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(6)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.statusBar().setSizeGripEnabled(True)

        self._pages: list[QWidget] = []
        self._menus: list[QMenu] = []
        self._announced: dict[str, float] = {}  # entry path -> when announced as removed
        self._build_menus()
        self.sidebar.currentRowChanged.connect(self._page_chosen)
        self.resize(DEFAULT_SIZE)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu = bar.addMenu("&File")
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.setToolTip("Close the window (running work is cancelled)")
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.close)
        self.file_menu.addAction(quit_action)
        self._page_menu_anchor = bar.addSeparator()  # page menus go before View
        self.view_menu = bar.addMenu("&View")
        self.help_menu = bar.addMenu("&Help")
        self.help_action = QAction(icon("about"), "Zero Install Admin &Help", self)
        self.help_action.setShortcut(QKeySequence.StandardKey.HelpContents)
        self.help_action.setToolTip("What the columns mean and what to do about each problem (F1)")
        self.help_action.triggered.connect(self.show_help)
        self.help_menu.addAction(self.help_action)
        self.addAction(self.help_action)
        about = QAction(icon("about"), "&About Zero Install Admin", self)
        about.setToolTip("Version and licence")
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self.show_about)
        about_qt = QAction("About &Qt", self)
        about_qt.setToolTip("The Qt version this window runs on")
        about_qt.setMenuRole(QAction.MenuRole.AboutQtRole)
        about_qt.triggered.connect(QApplication.aboutQt)
        self.help_menu.addAction(about)
        self.help_menu.addAction(about_qt)
        self._page_menu_anchor.setVisible(False)

    # --- pages -----------------------------------------------------------------------------------

    def add_page(self, page: QWidget) -> None:
        n = len(self._pages)
        self._pages.append(page)
        self.stack.addWidget(page)
        item = QListWidgetItem(icon(page.icon_name), page.title)  # type: ignore[attr-defined]
        item.setToolTip(f"{page.title} (Ctrl+{n + 1})")  # type: ignore[attr-defined]
        item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.sidebar.addItem(item)
        menu = QMenu(page.title.replace("&", "&&"), self)  # type: ignore[attr-defined]
        menu.setToolTipsVisible(True)
        for action in page.menu_actions():  # type: ignore[attr-defined]
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
                if action.shortcutContext() == Qt.ShortcutContext.WindowShortcut:
                    self.addAction(action)  # shortcuts work anywhere in the window
        self.menuBar().insertMenu(self._page_menu_anchor, menu)
        self._menus.append(menu)
        go = QAction(icon(page.icon_name), page.title, self)  # type: ignore[attr-defined]
        go.setShortcut(QKeySequence(f"Ctrl+{n + 1}"))
        go.setToolTip(f"Show the {page.title} page")  # type: ignore[attr-defined]
        go.triggered.connect(lambda _=False, i=n: self.sidebar.setCurrentRow(i))
        self.view_menu.addAction(go)
        if hasattr(page, "statusMessage"):
            page.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 15000))
        if hasattr(page, "cacheChanged"):
            page.cacheChanged.connect(self.announce_change)
        self._fit_sidebar()
        if self.sidebar.currentRow() < 0:
            self.sidebar.setCurrentRow(0)
        else:
            self._page_chosen(self.sidebar.currentRow())

    @property
    def pages(self) -> list[QWidget]:
        return list(self._pages)

    @property
    def current_page(self) -> QWidget | None:
        return self.stack.currentWidget()

    def _fit_sidebar(self) -> None:
        fm = self.sidebar.fontMetrics()
        titles = [p.title for p in self._pages]  # type: ignore[attr-defined]
        widest = max((fm.horizontalAdvance(t) for t in titles), default=0)
        self.sidebar.setFixedWidth(widest + self.sidebar.iconSize().width() + 48)

    def _page_chosen(self, index: int) -> None:
        if not 0 <= index < len(self._pages):
            return
        self.stack.setCurrentIndex(index)
        for i, (page, menu) in enumerate(zip(self._pages, self._menus, strict=True)):
            current = i == index
            menu.menuAction().setVisible(current)
            for action in page.menu_actions():  # type: ignore[attr-defined]
                if action is not None:
                    action.setVisible(current)

    def announce_change(self, change: CacheChange) -> None:
        """Tell every page what changed. A removal the action log reports (``source`` "log")
        that this app announced itself a moment ago is not announced twice."""
        import time

        if change.kind == "removed" and change.paths:
            now = time.monotonic()
            self._announced = {p: t for p, t in self._announced.items() if now - t < 120}
            if change.source == "log":
                fresh = frozenset(p for p in change.paths if p not in self._announced)
                if not fresh:
                    return
                change = CacheChange(change.kind, fresh, change.source)
            for path in change.paths:
                self._announced[path] = now
        for page in self._pages:
            heard = getattr(page, "cache_changed", None)
            if heard is not None:
                heard(change)
        self.cacheChanged.emit(change)

    def show_page(self, page_id: str) -> QWidget | None:
        """Make the page with this id current; returns it (None if there is none)."""
        for i, page in enumerate(self._pages):
            if getattr(page, "page_id", None) == page_id:
                self.sidebar.setCurrentRow(i)
                return page
        return None

    def start(self) -> None:
        for page in self._pages:
            page.start()  # type: ignore[attr-defined]

    # --- settings, closing ------------------------------------------------------------------------

    def fit_to_screen(self, first: bool = False) -> None:
        """Make the window fit the available area of its screen: a first size no bigger than the
        screen (1280x800 does not fit a 1280x800 screen with a title bar, nor 1920x1080 at 150%),
        a restored one clamped to it and moved back on screen only when it does not fit (never
        moved otherwise: before the window is shown its frame is unknown, and moving it by a
        guessed frame made it creep down by a title bar's height at every start)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None or self.isMaximized() or self.isFullScreen():
            return
        area = screen.availableGeometry()
        size = fitted_size(DEFAULT_SIZE if first else self.size(), area)
        # The contents' minimum size may be wider than a small screen: give way to it.
        least = self.minimumSizeHint().expandedTo(self.minimumSize())
        if least.width() > size.width() or least.height() > size.height():
            self.setMinimumSize(least.boundedTo(size))
        if size != self.size():
            self.resize(size)
        margins = FRAME_ALLOWANCE
        if first:
            frame = QRect(QPoint(0, 0), size + margins)
            frame.moveCenter(area.center())
            self.move(frame.topLeft())
            return
        if self.isVisible():
            frame = self.frameGeometry()
            # The real frame is known now: shrink by what it adds beyond the screen.
            over = frame.size() - area.size()
            if over.width() > 0 or over.height() > 0:
                smaller = QSize(
                    self.width() - max(0, over.width()), self.height() - max(0, over.height())
                )
                self.setMinimumSize(self.minimumSize().boundedTo(smaller))
                self.resize(smaller)
                frame.setSize(frame.size() - QSize(max(0, over.width()), max(0, over.height())))
            target = fitted_position(frame, area)
            if target != frame.topLeft():
                self.move(target)
            return
        inner = self.geometry()
        side = margins.width() // 2
        frame = QRect(
            inner.left() - side,
            inner.top() - (margins.height() - side),
            inner.width() + margins.width(),
            inner.height() + margins.height(),
        )
        target = fitted_position(frame, area)
        if target != frame.topLeft():
            self.setGeometry(QRect(inner.topLeft() + (target - frame.topLeft()), inner.size()))

    def restore_state(self) -> None:
        """Geometry (fitted to the screen), the last page and each page's layout, from the
        settings (if any)."""
        geometry = read_bytes(self.settings, "window/geometry") if self.settings else b""
        place = self.settings.value("window/place") if self.settings else None
        restored = False
        if isinstance(place, list | tuple) and len(place) == 4:
            # The frame's top-left and the inner size, as saved: set with move(), which places
            # the frame, so that nothing drifts (restoreGeometry() put the window a title bar
            # lower at every start under some window managers).
            try:
                x, y, w, h = (int(v) for v in place)
            except (TypeError, ValueError):
                x = y = w = h = 0
            if w > 0 and h > 0:
                self.resize(QSize(w, h))
                self.move(QPoint(x, y))
                restored = True
        if not restored and geometry:
            self.restoreGeometry(geometry)
            restored = True
        if (
            restored
            and self.settings is not None
            and read_int(self.settings, "window/maximized", 0)
        ):
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)
        self.fit_to_screen(first=not restored)
        if self.settings is None:
            return
        for page in self._pages:
            page.restore_state(self.settings)  # type: ignore[attr-defined]
        last = read_int(self.settings, "window/page", 0)
        if 0 <= last < len(self._pages):
            self.sidebar.setCurrentRow(last)

    def has_saved_geometry(self) -> bool:
        return self.settings is not None and bool(
            read_bytes(self.settings, "window/geometry") or self.settings.value("window/place")
        )

    def save_state(self) -> None:
        if self.settings is None:
            return
        self.settings.setValue("window/geometry", self.saveGeometry())
        normal = self.normalGeometry() if self.isMaximized() else None
        pos, size = (normal.topLeft(), normal.size()) if normal else (self.pos(), self.size())
        self.settings.setValue("window/place", [pos.x(), pos.y(), size.width(), size.height()])
        self.settings.setValue("window/maximized", int(self.isMaximized()))
        self.settings.setValue("window/page", self.sidebar.currentRow())
        for page in self._pages:
            page.save_state(self.settings)  # type: ignore[attr-defined]
        self.settings.sync()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        off_screen = self.testAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
        # Only a real, remembering window (tests and screenshots keep the size they asked for).
        if not getattr(self, "_refitted", False) and not off_screen and self.settings is not None:
            # The window manager adds its frame after the window is mapped: check again once it
            # has, with the real frame (the first fit could only guess its size).
            self._refitted = True
            QTimer.singleShot(300, self, self._after_shown)

    def _after_shown(self) -> None:
        self.fit_to_screen()
        for page in self._pages:
            fit = getattr(page, "fit_columns", None)
            if fit is not None:
                fit()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_state()
        for page in self._pages:
            page.shutdown()  # type: ignore[attr-defined]
        super().closeEvent(event)

    def about_text(self) -> str:
        return (
            f"<h3>Zero Install Admin {self.version}</h3>"
            "<p>Browse, verify and clean the implementation caches of "
            "<a href='https://0install.net/'>Zero Install</a>.</p>"
            "<p>Licensed under the GNU LGPL, version 2.1 or later.</p>"
        )

    def show_help(self) -> None:
        """The offline help, at the current page's topic (``help/<page_id>.html``) if it has one."""
        from gui.help import HelpDialog

        dialog = getattr(self, "_help", None)
        if dialog is None:
            dialog = self._help = HelpDialog(self)
        dialog.show_topic(getattr(self.current_page, "page_id", ""))
        dialog.show()
        if QGuiApplication.platformName() != "offscreen":  # which says it cannot raise windows
            dialog.raise_()
        dialog.activateWindow()

    def show_about(self) -> None:
        QMessageBox.about(self, "About Zero Install Admin", self.about_text())

    def report_error(self, text: str) -> None:
        """An unexpected error: in the current page's banner if it has one, else the status bar."""
        banner = getattr(self.current_page, "banner", None)
        if banner is not None:
            banner.add_message(text, "error")
        else:
            self.statusBar().showMessage(text)
