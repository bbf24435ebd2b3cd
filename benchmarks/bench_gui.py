#!/usr/bin/env python3
"""Does the window stay responsive on a big cache? Figures, not a test.

Builds (once, in a temporary directory) a store of ``--entries`` tiny implementations (default
10,000), each named by its real sha256new digest with a ``.manifest`` file as 0install leaves it,
plus cached feeds that name them (100 programs). Then, in this process, with the real window
(offscreen unless QT_QPA_PLATFORM says otherwise):

1. listing: time from creating the window until every row is in the view (target < 1 s), against
   ``core.cache.scan`` alone on the same store (the baseline: what the window adds on top);
2. scanning: the background measure of every entry, while a 10 ms QTimer probe records the
   largest gap between its ticks (target: never more than 100 ms);
3. verifying: "Verify all" with the same probe, the median of three clicks each half a second
   after the window went idle (as a user clicks: the page has its next verification's process
   ready by then), against ``zeroinstall-admin verify`` on the same store (a separate process,
   start-up included, median of three, each run just after a click, once the window is idle
   again, so that other load on the machine weighs on both alike: the target is at most 1.3x its
   time) and
   ``core.verify.verify_paths`` alone in this process;
4. a second verification with the table sorted by Status, so rows move while results arrive;

and the peak RSS throughout of this process and its children together (psutil, every 100 ms; the
scan and the verification run in child processes; target < 300 MB). Prints the figures, the
ratios and whether they meet the targets.

    python3 benchmarks/bench_gui.py [--entries 10000] [--jobs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Verification records (core.records) of the window and of the command line timed against it: in
# the benchmarks' own directory, never /var/lib. Both judge unchanged entries by their keys.
os.environ.setdefault("ZEROINSTALL_ADMIN_RECORDS_DIR", "/tmp/zeroinstall-admin-bench/records")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from bench_verify import LAUNCH, run_timed  # noqa: E402 - this script's own directory
from PySide6.QtCore import (
    QElapsedTimer,
    QEventLoop,
    QSettings,
    Qt,
    QTimer,
)
from PySide6.QtWidgets import QApplication

from core import cache as core_cache
from core import verify as core_verify
from core.digests import format_digest
from core.feeds import escape_feed_url
from core.manifest import generate_manifest, hash_manifest
from core.stores import stores_from_paths
from gui.app import freeze_startup_objects, quiet_offscreen_platform

TARGET_ROWS_S = 1.0
TARGET_GAP_MS = 100.0
TARGET_RSS_MB = 300.0
TARGET_VERIFY_RATIO = 1.3
PROGRAMS = 100
ZI = "http://zero-install.sourceforge.net/2004/injector/interface"


def build_store(root: Path, count: int) -> tuple[Path, dict[str, str]]:
    """``count`` tiny implementations under root/cache/0install.net/implementations, and an env
    whose XDG cache dir holds feeds naming them. Returns (store path, env)."""
    cache = root / "cache"
    store = cache / "0install.net" / "implementations"
    feeds = cache / "0install.net" / "interfaces"
    store.mkdir(parents=True)
    feeds.mkdir(parents=True)
    by_program: dict[int, list[tuple[str, str]]] = {}
    work = root / "work"
    for i in range(count):
        src = work / str(i)
        (src / "bin").mkdir(parents=True)
        (src / "README").write_text(f"implementation {i}\n" + "text " * (i % 50))
        (src / "bin" / "run").write_text(f"#!/bin/sh\necho {i}\n")
        os.chmod(src / "bin" / "run", 0o755)
        manifest = generate_manifest(src, "sha256new")
        (src / ".manifest").write_bytes(manifest)
        name = format_digest("sha256new", hash_manifest("sha256new", manifest))
        os.rename(src, store / name)
        program = i % PROGRAMS
        by_program.setdefault(program, []).append((name, f"1.{i // PROGRAMS}"))
    shutil.rmtree(work)
    for program, impls in by_program.items():
        url = f"https://bench.example/program-{program}.xml"
        body = "".join(
            f'<implementation id="{n}" version="{v}"><manifest-digest sha256new="{n[10:]}"/>'
            "</implementation>\n"
            for n, v in impls
        )
        (feeds / escape_feed_url(url)).write_text(
            f'<?xml version="1.0"?>\n<interface xmlns="{ZI}" uri="{url}">'
            f"<name>Program {program}</name>\n{body}</interface>\n"
        )
    env = dict(os.environ)
    env.update(
        XDG_CACHE_HOME=str(cache),
        XDG_CACHE_DIRS=str(root / "none"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_CONFIG_DIRS=str(root / "none"),
        HOME=str(root),
    )
    return store, env


class Probe:
    """A 10 ms timer on the GUI thread: the largest gap between ticks is the longest freeze."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak_rss = self.process.memory_info().rss
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.clock = QElapsedTimer()
        self.gaps: list[float] = []
        self._last = 0
        self._ticks = 0

    def start(self) -> None:
        self.gaps = []
        self.clock.start()
        self._last = self.clock.nsecsElapsed()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._sample_rss()

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed()
        self.gaps.append((now - self._last) / 1e6)
        self._last = now
        self._ticks += 1
        if self._ticks % 10 == 0:
            self._sample_rss()

    def _sample_rss(self) -> None:
        # The scan and the verification run in child processes: their memory counts too.
        rss = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # it ended meanwhile
                rss += child.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)

    @property
    def max_gap(self) -> float:
        return max(self.gaps, default=0.0)

    def percentile(self, p: float) -> float:
        if not self.gaps:
            return 0.0
        ordered = sorted(self.gaps)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def wait(signal, timeout_s: float = 600) -> None:
    loop = QEventLoop()
    signal.connect(loop.quit)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(loop.quit)


def idle(seconds: float) -> None:
    """Let the window run its event loop, untouched, for a while."""
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def verdict(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPUs)")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="override sys.setswitchinterval (seconds), to compare",
    )
    args = parser.parse_args()

    quiet_offscreen_platform()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    with tempfile.TemporaryDirectory(prefix="zeroinstall-admin-bench-gui-") as tmp:
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)
        root = Path(tmp)
        t = time.perf_counter()
        store, env = build_store(root, args.entries)
        print(f"built {args.entries:,} entries in {time.perf_counter() - t:.1f} s ({store})")
        stores = stores_from_paths([str(store)])

        # Baselines without any window, on a warm cache.
        core_cache.scan(stores, env=env)
        t = time.perf_counter()
        scan = core_cache.scan(stores, env=env)
        scan_alone = time.perf_counter() - t
        paths = [e.path for e in scan.entries]
        t = time.perf_counter()
        outcomes = core_verify.verify_paths(paths, jobs=args.jobs)
        verify_alone = time.perf_counter() - t
        bad = sum(1 for o in outcomes if o is None or o.status != "ok")
        if bad:
            print(f"warning: {bad} entries did not verify OK in the baseline run")
        command = [sys.executable, "-c", LAUNCH, "verify", "--store", str(store)]
        if args.jobs:
            command += ["--jobs", str(args.jobs)]
        repo = Path(__file__).resolve().parent.parent

        def time_cli() -> float:
            t = time.perf_counter()
            run_timed(command, env=env, cwd=repo, stdout=PIPE, stderr=PIPE, check=True)
            return time.perf_counter() - t

        time_cli()  # once first, as the window's first verification follows a scan
        del scan, paths, outcomes  # the baselines' objects are not the window's to carry

        from gui.cache_page import CachePage
        from gui.main_window import MainWindow

        probe = Probe()
        t = time.perf_counter()
        window = MainWindow("bench", None)
        page = CachePage(stores, env, jobs=args.jobs, parent=window)
        window.add_page(page)
        window.resize(1280, 800)
        window.show()
        freeze_startup_objects()  # as the app does before its first scan
        # From here on the GUI thread must stay responsive (building the window is start-up).
        probe.start()
        listed = QEventLoop()
        page.proxy.modelReset.connect(
            lambda: listed.quit() if page.proxy.rowCount() >= args.entries else None
        )
        window.start()
        listed.exec()  # an event loop, not a polling loop: polling would compete for the GIL
        app.processEvents()  # the view lays out and paints the first screen of rows
        rows_in_view = time.perf_counter() - t
        wait(page.scanFinished)
        scanned = time.perf_counter() - t
        probe.stop()
        scan_gap, scan_p99 = probe.max_gap, probe.percentile(99)
        measured = sum(1 for r in page.model.rows if r.entry.usage is not None)

        # Each click is followed by a run of the command line, so the two are timed in the same
        # conditions (a busy moment of the machine otherwise fell on one of them only).
        verify_times, verify_gaps, verify_p99s, cli_times = [], [], [], []
        for _ in range(3):
            idle(0.5)
            probe.start()
            t = time.perf_counter()
            page.verify_all()
            wait(page.verifyFinished)
            verify_times.append(time.perf_counter() - t)
            probe.stop()
            verify_gaps.append(probe.max_gap)
            verify_p99s.append(probe.percentile(99))
            idle(0.5)  # the page readies its next verification's process meanwhile
            cli_times.append(time_cli())
        verified = statistics.median(verify_times)
        cli_verify = statistics.median(cli_times)
        verify_gap, verify_p99 = max(verify_gaps), max(verify_p99s)
        ok = sum(1 for r in page.model.rows if r.status == "OK")

        page.table.sortByColumn(8, Qt.SortOrder.DescendingOrder)  # Status: rows move as it runs
        idle(0.5)
        probe.start()
        t = time.perf_counter()
        page.verify_all()
        wait(page.verifyFinished)
        verified_sorted = time.perf_counter() - t
        probe.stop()
        sorted_gap = probe.max_gap
        peak_mb = probe.peak_rss / 1e6
        page.shutdown()
        window.close()

    n = args.entries
    worst_gap = max(scan_gap, verify_gap, sorted_gap)
    print()
    print(f"entries: {n:,}   CPUs: {os.cpu_count()}   jobs: {args.jobs or 'default'}")
    print(
        f"rows in view:        {rows_in_view:6.2f} s  (core.cache.scan alone {scan_alone:.2f} s, "
        f"x{rows_in_view / scan_alone:.1f})  target < {TARGET_ROWS_S:.0f} s: "
        f"{verdict(rows_in_view < TARGET_ROWS_S)}"
    )
    print(
        f"scan + measure:      {scanned:6.2f} s  ({measured:,} measured)  largest GUI gap "
        f"{scan_gap:5.0f} ms, 99th percentile {scan_p99:4.0f} ms"
    )
    print(
        f"verify all:          {verified:6.2f} s  (median of 3; {ok:,} OK; verify_paths alone "
        f"{verify_alone:.2f} s, x{verified / verify_alone:.2f})  largest GUI gap "
        f"{verify_gap:5.0f} ms, 99th percentile {verify_p99:4.0f} ms"
    )
    ratio = verified / cli_verify
    print(
        f"verify all vs CLI:   x{ratio:.2f}  "
        f"(zeroinstall-admin verify {cli_verify:.2f} s, median of 3)"
        f"  target <= {TARGET_VERIFY_RATIO}x: {verdict(ratio <= TARGET_VERIFY_RATIO)}"
    )
    print(f"verify, by status:   {verified_sorted:6.2f} s  largest GUI gap {sorted_gap:5.0f} ms")
    print(
        f"largest GUI gap:     {worst_gap:6.0f} ms  target <= {TARGET_GAP_MS:.0f} ms: "
        f"{verdict(worst_gap <= TARGET_GAP_MS)}"
    )
    print(
        f"peak RSS:            {peak_mb:6.0f} MB  (the window's process and its children, "
        f"sampled every 100 ms)  target < {TARGET_RSS_MB:.0f} MB: "
        f"{verdict(peak_mb < TARGET_RSS_MB)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
