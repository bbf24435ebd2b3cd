"""Starting the window: ``main(argv)`` parses the window's options, opens it, returns an exit code.

    zeroinstall-admin [--store DIR]... [--demo] [--page PAGE] [--screenshot FILE.png [--verify]]

``--screenshot`` never shows anything interactive: the window is laid out off screen, scanned (and
verified with ``--verify``), rendered to the PNG, and the process exits 0. It neither reads nor
writes the user's saved window settings, so README screenshots look the same on every machine.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

from gui.icons import APP_ID, app_icon
from gui.settings import APPLICATION, ORGANIZATION, open_settings

SCREENSHOT_TIMEOUT_S = 600
"""A screenshot run gives up (exit 1) if scanning and verifying take longer than this."""

log = logging.getLogger(__name__)


def app_version() -> str:
    """The installed package's version, or the source tree's when running from a checkout."""
    try:
        return metadata.version("zeroinstall-admin")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib

        with pyproject.open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="zeroinstall-admin",
        description="Browse and verify Zero Install implementation caches.",
    )
    parser.add_argument(
        "--store",
        metavar="DIR",
        action="append",
        default=[],
        help="show this implementations directory instead of the discovered stores (repeatable)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="build a demo cache in a temporary directory and open it",
    )
    parser.add_argument(
        "--screenshot",
        metavar="FILE.png",
        help="render the window to FILE.png once scanning has finished, then exit",
    )
    parser.add_argument(
        "--verify", action="store_true", help="verify every entry once scanning has finished"
    )
    parser.add_argument(
        "--page",
        metavar="PAGE",
        help="open (or render with --screenshot) this page: cache, clean, sharing or vms",
    )
    return parser.parse_args(list(sys.argv[1:] if argv is None else argv))


def quiet_offscreen_platform() -> None:
    """The offscreen platform says it cannot pass on size hints at every layout change: not news to
    anyone, so that one message is dropped; every other Qt message still reaches stderr."""

    def handler(_kind: QtMsgType, _context: object, message: str) -> None:
        if "propagateSizeHints" not in message:
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def _application(screenshot: bool = False) -> QApplication:
    if (
        screenshot
        and not os.environ.get("QT_QPA_PLATFORM")
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):
        # A screenshot needs no screen: render off screen on a machine without one (CI, servers).
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        quiet_offscreen_platform()
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "zeroinstall-admin"])
    assert isinstance(app, QApplication)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Zero Install Admin")
    app.setApplicationVersion(app_version())
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(app_icon())
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Open the window (or write a screenshot); returns the exit code."""
    args = parse_args(argv)
    if args.screenshot and not args.screenshot.lower().endswith(".png"):
        print(
            f"zeroinstall-admin: --screenshot needs a .png file name, not '{args.screenshot}'",
            file=sys.stderr,
        )
        return 2
    if not args.screenshot:
        from gui.display_server import display_problem

        problem = display_problem()
        if problem:
            print(problem, file=sys.stderr)
            return 1
    app = _application(screenshot=bool(args.screenshot))
    with ExitStack() as cleanup:
        env: Mapping[str, str] | None = None
        if args.demo:
            from core.demo import build_demo

            root = cleanup.enter_context(
                tempfile.TemporaryDirectory(
                    prefix="zeroinstall-admin-demo-", ignore_cleanup_errors=True
                )
            )
            env = build_demo(root)
            # The demo's verification records stay in the demo (core.records), like its stores.
            os.environ["ZEROINSTALL_ADMIN_RECORDS_DIR"] = os.path.join(root, "records")
        stores = None
        if args.store:
            from core.stores import stores_from_paths

            stores = stores_from_paths([os.path.abspath(p) for p in args.store], env)
        if args.screenshot:
            return _screenshot(app, stores, env, args.screenshot, args.verify, args.page)
        return _interactive(app, stores, env, args.verify, args.page)


def freeze_startup_objects() -> None:
    """Exempt everything that exists now (Qt's bindings, the modules, the window) from the
    garbage collector's full passes; call once, just before the first scan.

    It all lives as long as the window does, yet a full collection walks through all of it while
    holding the interpreter lock, and the next one falls due while the scan's rows are made. On
    10,000 entries that collection took 42-54 ms without this, and 24-27 ms with it.
    """
    gc.collect()
    gc.freeze()


def _build_window(stores, env, settings):
    from gui.cache_page import CachePage
    from gui.clean_page import CleanPage
    from gui.main_window import MainWindow
    from gui.maintenance_page import MaintenancePage
    from gui.sharing_page import SharingPage
    from gui.vm_page import VMPage

    window = MainWindow(app_version(), settings)
    page = CachePage(stores, env, parent=window)
    window.add_page(page)
    window.add_page(CleanPage(stores, env, parent=window))
    sharing = SharingPage(parent=window)
    window.add_page(sharing)
    window.add_page(MaintenancePage(parent=window))
    window.add_page(VMPage(env, parent=window))
    if stores is None:
        follow_sharing(window, sharing, env)
    return window, page


def store_states(env) -> list[tuple[str, str | None]]:
    """The discovered stores and whether each can be read: what enabling or disabling sharing
    changes (the shared store appears, or stops being usable)."""
    from core.stores import discover_stores

    return [(s.path, s.problem) for s in discover_stores(env)]


def follow_sharing(window, sharing, env) -> None:
    """After the Sharing page looks again (after Apply, Disable or Refresh), tell every page when
    the stores themselves changed, so that the Cache and Clean up pages look at them again."""
    seen = {"stores": store_states(env)}

    def looked() -> None:
        now = store_states(env)
        if now != seen["stores"]:
            seen["stores"] = now
            from gui.changes import STORES, CacheChange

            window.announce_change(CacheChange.of(STORES, source="sharing"))

    sharing.refreshed.connect(looked)


def show_page(window, page_id: str | None) -> bool:
    """Makes the page whose ``page_id`` is given current (None: leave it); False, after a usage
    message naming the pages there are, when the window has no such page."""
    if page_id is None:
        return True
    ids = [getattr(p, "page_id", None) for p in window.pages]
    if page_id in ids:
        window.sidebar.setCurrentRow(ids.index(page_id))
        return True
    print(
        f"zeroinstall-admin: there is no page '{page_id}'; choose one of: "
        + ", ".join(str(i) for i in ids),
        file=sys.stderr,
    )
    return False


def _interactive(app: QApplication, stores, env, verify: bool, page_id: str | None = None) -> int:
    window, page = _build_window(stores, env, open_settings())
    window.restore_state()
    if not show_page(window, page_id):
        window.deleteLater()
        return 2
    previous_hook = sys.excepthook

    def report(kind, error, tb) -> None:
        # A bug in a slot must not print a traceback at the user and carry on silently: log it
        # in full, and say in the window that something went wrong.
        log.error("unexpected error", exc_info=(kind, error, tb))
        window.report_error(f"Unexpected error: {kind.__name__}: {error} (details in the log)")

    sys.excepthook = report
    window.show()
    if not window.has_saved_geometry():
        page.set_default_sizes(page.width())
    if verify:
        page.scanFinished.connect(page.verify_all, Qt.ConnectionType.SingleShotConnection)
    freeze_startup_objects()
    window.start()
    try:
        return app.exec()
    finally:
        sys.excepthook = previous_hook
        page.shutdown()


def _screenshot(
    app: QApplication, stores, env, path: str, verify: bool, page_id: str | None = None
) -> int:
    window, page = _build_window(stores, env, None)
    if not show_page(window, page_id):
        window.deleteLater()
        return 2
    # Laid out and painted like a shown window, but never mapped on a screen.
    window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    window.show()
    page.set_default_sizes(page.width())
    loop = QEventLoop()
    outcome = {"timed_out": False}

    def when_idle() -> None:
        # The page in the picture may have work of its own (Clean up surveys the stores, Sharing
        # reads the system, Virtual machines asks VBoxManage): picture it once that is done.
        shown = window.current_page
        if shown is not page and getattr(shown, "busy", False):
            QTimer.singleShot(50, when_idle)
        else:
            loop.quit()

    def scanned() -> None:
        if verify and page.model.rowCount():
            page.verifyFinished.connect(when_idle)
            page.verify_all()
        else:
            when_idle()

    def too_long() -> None:
        outcome["timed_out"] = True
        loop.quit()

    page.scanFinished.connect(scanned, Qt.ConnectionType.SingleShotConnection)
    QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, too_long)
    window.start()
    loop.exec()
    try:
        if outcome["timed_out"]:
            print(
                f"zeroinstall-admin: scanning took more than {SCREENSHOT_TIMEOUT_S} s; "
                "no screenshot written",
                file=sys.stderr,
            )
            return 1
        page.refresh_now(at_once=True)
        _show_worst(page)
        app.processEvents()
        image = window.grab()
        if image.isNull() or not image.save(path, "PNG"):
            print(f"zeroinstall-admin: could not write the screenshot to '{path}'", file=sys.stderr)
            return 1
        return 0
    finally:
        page.shutdown()
        window.close()
        window.deleteLater()


def _show_worst(page) -> None:
    """Select the most alarming entry, so its details (what changed) are in the picture."""
    from gui import status as st
    from gui.cache_columns import Column

    model = page.model
    order = {w: i for i, w in enumerate(st.STATUSES)}
    best = None
    for row in model.rows:
        if row.status not in st.PROBLEMS:
            continue
        # Worst status first; among equals, one with a list of changed files shows the most.
        rank = (order[row.status], not (row.outcome and row.outcome.changes))
        if best is None or rank < best[0]:
            best = (rank, row)
    if best is None:
        return
    page.table.sortByColumn(Column.STATUS, Qt.SortOrder.DescendingOrder)
    index = page.proxy.mapFromSource(model.index(best[1].pos, 0))
    if index.isValid():
        page.select_proxy_row(index.row())
