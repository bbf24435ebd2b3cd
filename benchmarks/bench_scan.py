#!/usr/bin/env python3
"""How fast the cache model lists and measures stores, against ``du`` measured in the same run.

Run from the repository root:  python3 benchmarks/bench_scan.py  [--repeat N] [--rebuild]

1. Listing: a store of 10,000 small implementation-named entries, built in a temporary directory,
   timed with ``core.cache.list_entries`` (names and kinds only; the target is well under 1 s).
2. Measuring: a realistic store made of copies of this Python's standard library
   (``sysconfig.get_paths()['stdlib']`` without site-packages), split into one implementation per
   top-level package, each named by its real sha256new digest and made read-only as 0install does.
   It is built once under the temporary directory and reused (``--rebuild`` makes it again).
   ``core.measure.measure_all`` is timed against ``du -s`` and ``du -s --apparent-size`` on the same
   store with warm caches, together with the designs it was chosen over, so the figures show where
   the time goes. The target is at least 80% of du's speed (ratio >= 0.80).

Every figure is the best of N interleaved runs (the median is printed too): other programs on the
machine slow some runs down, and interleaving keeps that fair between du and us.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import stat
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import cache, measure, pool, stores
from core.manifest import ManifestError, manifest_digest

BENCH_DIR = Path(tempfile.gettempdir()) / f"zeroinstall-admin-bench-scan-{os.getuid()}"
LAYOUT_VERSION = 1  # bump when the realistic store is made differently, so old ones are rebuilt
TARGET_ENTRIES = 40_000  # files + directories in the realistic store, like a well-used cache
BIG_FILE = 512 * 1024  # copies after the first leave out files bigger than this
SKIPPED_TOP = {"site-packages", "dist-packages"}


# --- the stores ----------------------------------------------------------------------------------


def build_listing_store(root: Path, count: int = 10_000) -> Path:
    store = root / "implementations"
    store.mkdir(parents=True)
    for i in range(count):
        raw = i.to_bytes(4, "big") * 8
        entry = store / ("sha256new_" + base64.b32encode(raw).decode().rstrip("="))
        entry.mkdir()
        (entry / "file").write_bytes(b"x" * (i % 100))
        entry.chmod(0o555)
    return store


def _make_read_only(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                os.chmod(path, 0o555 if st.st_mode & 0o111 else 0o444)
        os.chmod(folder, 0o555)


def _make_writable(root: Path) -> None:
    for folder, dirs, _files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755)


def _copy_part(src: Path, dest: Path, small_only: bool) -> None:
    def ignore(folder: str, names: list[str]) -> list[str]:
        if not small_only:
            return []
        skip = []
        for name in names:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                skip.append(name)
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size > BIG_FILE:
                skip.append(name)
        return skip

    shutil.copytree(src, dest, symlinks=True, ignore=ignore, ignore_dangling_symlinks=True)


def build_realistic_store(rebuild: bool) -> Path:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    store = BENCH_DIR / "realistic" / "implementations"
    stamp_file = BENCH_DIR / "realistic" / "stamp.json"
    stamp = {"layout": LAYOUT_VERSION, "python": sys.version, "stdlib": str(stdlib)}
    if not rebuild and store.is_dir() and stamp_file.is_file():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                return store
        except ValueError:
            pass
    if store.parent.exists():
        _make_writable(store.parent)
        shutil.rmtree(store.parent)
    store.mkdir(parents=True)
    staging = BENCH_DIR / "realistic" / "staging"
    print(f"Building the realistic store from {stdlib} (once; reused afterwards)...", flush=True)
    started = time.perf_counter()
    tops = sorted(p for p in stdlib.iterdir() if p.name not in SKIPPED_TOP)
    entries = 0
    copy = 0
    while entries < TARGET_ENTRIES:
        copy += 1
        # One implementation per top-level package; the loose modules together make one more.
        modules = staging / "modules"
        modules.mkdir(parents=True)
        parts = []
        for top in tops:
            if top.is_dir() and not top.is_symlink():
                parts.append(top)
            elif (
                top.is_file()
                and not top.is_symlink()
                and (copy == 1 or top.stat().st_size <= BIG_FILE)
            ):
                shutil.copy2(top, modules / top.name)
        for part in [None, *parts]:
            work = modules if part is None else staging / part.name
            if part is not None:
                try:
                    _copy_part(part, work, small_only=copy > 1)
                except (OSError, shutil.Error):
                    shutil.rmtree(work, ignore_errors=True)
                    continue
            # Each copy is a different "version": its own marker makes its own digest.
            (work / "BENCH-COPY").write_text(f"copy {copy} of {work.name}\n")
            try:
                digest = manifest_digest(work, "sha256new")
            except ManifestError as exc:  # a FIFO or a newline in a name: not storable
                print(f"  skipped {work.name}: {exc}")
                shutil.rmtree(work)
                continue
            target = store / digest.name
            if target.exists():
                shutil.rmtree(work)
                continue
            entries += sum(1 + len(d) + len(f) for _, d, f in os.walk(work))
            _make_read_only(work)
            os.rename(work, target)
        shutil.rmtree(staging, ignore_errors=True)
    stamp_file.write_text(json.dumps(stamp))
    print(f"  built in {time.perf_counter() - started:.1f} s")
    return store


# --- the designs compared ------------------------------------------------------------------------


def walk_oswalk(root: str) -> tuple[int, int]:
    """The obvious way: os.walk (scandir inside, recursion by generator) plus os.lstat per name."""
    size = blocks = 0
    st = os.lstat(root)
    size, blocks = st.st_size, st.st_blocks
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            size += st.st_size
            blocks += st.st_blocks
    return size, blocks


def walk_scandir_str(root: str) -> tuple[int, int]:
    """An explicit stack, os.scandir and DirEntry.stat(follow_symlinks=False), str paths."""
    st = os.lstat(root)
    size, blocks = st.st_size, st.st_blocks
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                size += st.st_size
                blocks += st.st_blocks
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return size, blocks


def measure_one(entry: cache.Entry) -> measure.Usage:
    return measure.measure(entry)


def run_threads(entries: list[cache.Entry], n: int) -> None:
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(measure_one, entries))


def run_measure_all(entries: list[cache.Entry], jobs: int | None = None) -> list[measure.Usage]:
    results: list[measure.Usage] = []
    lock = threading.Lock()

    def on_result(entry: cache.Entry, usage: measure.Usage) -> None:
        with lock:
            results.append(usage)

    measure.measure_all(entries, on_result, jobs=jobs)
    return results


def du_time(path: Path, *options: str) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(["du", "-s", *options, str(path)], stdout=subprocess.DEVNULL, check=True)

    return run


def _helpers_cpu() -> float:
    """CPU seconds used so far by the idle worker processes kept by core.pool (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pool.idle_workers():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds in this process + helpers, CPU seconds in waited-for children such as du).
    Unlike wall time, this does not depend on what else the machine is running."""
    own, helpers, children = _self_cpu(), _helpers_cpu(), _children_cpu()
    fn()
    return _self_cpu() - own + _helpers_cpu() - helpers, _children_cpu() - children


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --- main ----------------------------------------------------------------------------------------


def bench_listing(repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="zia-bench-list-") as tmp:
        store_dir = build_listing_store(Path(tmp))
        store = stores.stores_from_paths([str(store_dir)])
        entries = cache.list_entries(store)  # warm the dentry cache
        times = [timed(lambda: cache.list_entries(store)) for _ in range(repeat)]
        kinds = {e.kind for e in entries}
        assert len(entries) == 10_000 and kinds == {"implementation"}, (len(entries), kinds)
        _make_writable(store_dir)
    best, median = min(times), statistics.median(times)
    print(
        f"list_entries, 10,000 entries: best {best:.3f} s, median {median:.3f} s "
        f"({10_000 / best:,.0f} entries/s); all 10,000 classified as implementations"
    )


def bench_measuring(repeat: int, rebuild: bool) -> None:
    store_dir = build_realistic_store(rebuild)
    store = stores.stores_from_paths([str(store_dir)])
    entries = cache.list_entries(store)
    n_files = sum(1 + len(d) + len(f) for _, d, f in os.walk(store_dir))
    du_bytes = int(
        subprocess.run(
            ["du", "-sb", str(store_dir)], capture_output=True, check=True
        ).stdout.split()[0]
    )
    print(
        f"\nRealistic store: {store_dir}\n  {len(entries)} implementations, "
        f"{n_files:,} files and directories, {du_bytes / 1e6:,.0f} MB apparent"
    )

    roots = [e.path for e in entries]
    jobs = pool.default_jobs()
    candidates: dict[str, Callable[[], object]] = {
        "du -s": du_time(store_dir),
        "du -s --apparent-size": du_time(store_dir, "--apparent-size"),
        "os.walk + os.lstat, 1 thread": lambda: [walk_oswalk(r) for r in roots],
        "scandir(path) + DirEntry.stat, 1 thread": lambda: [walk_scandir_str(r) for r in roots],
        "measure(): open dir + fstatat, 1 thread": lambda: [measure.measure(e) for e in entries],
        "measure() in 2 threads (GIL)": lambda: run_threads(entries, 2),
        "measure() in 4 threads (GIL)": lambda: run_threads(entries, 4),
        "measure_all(jobs=1)": lambda: run_measure_all(entries, 1),
        f"measure_all() (jobs={jobs})": lambda: run_measure_all(entries),
    }
    # Correctness first: measure_all must agree with du on the same store.
    measure.shutdown_helpers()
    first = timed(lambda: run_measure_all(entries))  # includes starting the helper processes
    usages = run_measure_all(entries)
    store_own = os.lstat(store_dir)
    total_size = sum(u.size for u in usages) + store_own.st_size
    total_disk = sum(u.disk for u in usages) + store_own.st_blocks * 512
    du_disk = int(
        subprocess.run(
            ["du", "-s", "--block-size=1", str(store_dir)], capture_output=True, check=True
        ).stdout.split()[0]
    )
    assert len(usages) == len(entries) and not any(u.error for u in usages)
    print(
        f"  measure_all totals: {total_size:,} bytes apparent (du -sb {du_bytes:,}), "
        f"{total_disk:,} on disk (du {du_disk:,}): "
        f"{'identical' if (total_size, total_disk) == (du_bytes, du_disk) else 'DIFFERENT'}"
    )

    for fn in candidates.values():  # warm caches
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            times[name].append(timed(fn))

    du_best = min(times["du -s"])
    print(f"\n  {'design':<42} {'best':>8} {'median':>8}   speed vs du -s (best)")
    for name, values in times.items():
        best = min(values)
        print(f"  {name:<42} {best:8.3f} {statistics.median(values):8.3f}   {du_best / best:5.2f}")
    best_all = min(times[f"measure_all() (jobs={jobs})"])
    apparent_best = min(times["du -s --apparent-size"])
    print(
        f"\n  first measure_all() of the process (workers starting): {first:.3f} s "
        f"({du_best / first:.2f} of du)"
    )
    print(
        f"  measure_all() vs du -s: {du_best / best_all:.2f} "
        f"(vs du -s --apparent-size: {apparent_best / best_all:.2f}); target >= 0.80"
    )
    load = os.getloadavg()
    print(
        f"  machine: {os.cpu_count()} CPUs ({jobs} usable), load average {load[0]:.2f} while "
        "measuring (other programs' load slows the parallel figure most)"
    )

    # CPU time does not depend on the machine's load: it shows the work each way costs, and what
    # measure_all's wall time is when its cores are free.
    du_cpu = statistics.median(cpu_seconds(du_time(store_dir))[1] for _ in range(repeat))
    one_cpu = statistics.median(
        cpu_seconds(lambda: run_measure_all(entries, 1))[0] for _ in range(repeat)
    )
    all_cpu = statistics.median(
        cpu_seconds(lambda: run_measure_all(entries))[0] for _ in range(repeat)
    )
    print(
        f"\n  CPU seconds (median): du -s {du_cpu:.3f}; measure_all(jobs=1) {one_cpu:.3f}; "
        f"measure_all(jobs={jobs}) {all_cpu:.3f} in all its processes "
        f"({all_cpu / one_cpu - 1:+.0%} for coordination)"
    )
    if jobs > 1:
        print(
            f"  with {jobs} free cores that is {all_cpu / jobs:.3f} s of wall time, "
            f"{du_cpu / (all_cpu / jobs):.2f} of du's speed (projection, not a measurement)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per figure (default 7)")
    parser.add_argument("--rebuild", action="store_true", help="build the realistic store again")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    bench_listing(args.repeat)
    bench_measuring(args.repeat, args.rebuild)
    measure.shutdown_helpers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
