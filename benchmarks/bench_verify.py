#!/usr/bin/env python3
"""How fast core.verify checks a whole real store, against the real 0install in the same run.

Builds (once) the stdlib store of ``make_stdlib_store.py``, warms the page cache, then times, best
of ``--repeat`` rounds (each round runs every contender once, so machine noise hits them alike):

* ours: ``core.verify.verify_paths`` on every entry, jobs = nproc and jobs = 1 (in this process);
* ``0install store audit`` with XDG_CACHE_HOME pointing at the benchmark cache and every other XDG
  directory empty, so it audits exactly that store;
* ``find STORE -type f -print0 | xargs -0 -P$(nproc) sha256sum > /dev/null``: parallel C hashing.

and prints seconds, throughput and the ratios. ``--profile`` adds where our time goes: per phase
(walks, small-file batches, big files, assembling + comparing, waiting for work), wall and CPU time
summed over the worker threads, and a cProfile of a jobs=1 run.

    python3 benchmarks/bench_verify.py [CACHE] [--repeat 3] [--profile]

hashlib uses the CPU's SHA instructions where there are some (then it hashes about 3x faster than
0install's and coreutils' own code). To see how we fare on a CPU without them, as on the reference
machine, mask them out for OpenSSL (only this process is affected):

    OPENSSL_ia32cap=":~0x20000000" python3 benchmarks/bench_verify.py
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import make_stdlib_store

from core import verify
from core.verify import verify_paths


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def zeroinstall_env(cache: Path) -> dict[str, str]:
    """An environment in which 0install sees exactly one store: the benchmark's."""
    empty = cache.parent / "empty-xdg"
    env = dict(os.environ)
    env.update(
        XDG_CACHE_HOME=str(cache),
        XDG_CACHE_DIRS=str(empty / "cache-dirs"),
        XDG_CONFIG_HOME=str(empty / "config-home"),
        XDG_CONFIG_DIRS=str(empty / "config-dirs"),
        XDG_DATA_HOME=str(empty / "data-home"),
        XDG_DATA_DIRS=str(empty / "data-dirs"),
    )
    return env


class Contender:
    def __init__(self, name: str, run: Callable[[], None]):
        self.name = name
        self.run = run
        self.times: list[float] = []

    @property
    def best(self) -> float:
        return min(self.times)


def entries_of(store: Path) -> list[str]:
    return [str(store / name) for name in sorted(os.listdir(store))]


def ours(store: Path, jobs: int) -> Callable[[], None]:
    def run() -> None:
        results = verify_paths(entries_of(store), jobs=jobs)
        bad = [r for r in results if r is None or r.status != "ok"]
        if bad:
            raise SystemExit(f"core.verify found problems in the benchmark store: {bad[:3]}")

    return run


def audit(zeroinstall: str, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run(
            [zeroinstall, "store", "audit"], check=False, env=env, capture_output=True, timeout=600
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"0install store audit failed ({proc.returncode}): "
                f"{proc.stderr.decode(errors='replace')[-2000:]}"
            )

    return run


def sha256sum(store: Path, jobs: int) -> Callable[[], None]:
    # A benchmark baseline, written as the shell pipeline people would type.
    command = f"find '{store}' -type f -print0 | xargs -0 -P{jobs} sha256sum > /dev/null"

    def run() -> None:
        subprocess.run(["sh", "-c", command], check=True, timeout=600)

    return run


def warm(store: Path) -> tuple[int, int]:
    """Read every file once so all contenders start from a warm page cache; (files, bytes)."""
    files = size = 0
    for dirpath, _, filenames in os.walk(store):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    size += len(chunk)
            files += 1
    return files, size


def parallel_capacity(jobs: int) -> float:
    """How many cores this process really gets now: hashlib on big in-memory buffers releases the
    GIL, so N threads should hash N times as much as one; other load on the machine shows here."""
    data = b"\x5a" * (32 << 20)

    def hash_some() -> None:
        for _ in range(4):
            hashlib.sha256(data).digest()

    def timed(n: int) -> float:
        threads = [threading.Thread(target=hash_some) for _ in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - t0

    one = min(timed(1) for _ in range(3))
    many = min(timed(jobs) for _ in range(3))
    return jobs * one / many


# -- profiling ----------------------------------------------------------------------------------


def profile_phases(store: Path, jobs: int) -> None:
    """Run once with timers around each phase of the engine's workers."""
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    originals = {}

    def timed(phase: str, method):
        def wrapper(*args, **kwargs):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                w1, c1 = time.perf_counter(), time.thread_time()
                with lock:
                    wall[phase] += w1 - w0
                    cpu[phase] += c1 - c0
                    counts[phase] += 1

        return wrapper

    phases = {
        "walk": "walk",
        "hash_batch": "small-file batches",
        "hash_big": "big files",
        "finish": "assemble + compare",
        "next_task": "getting work / waiting",
    }
    for attr, phase in phases.items():
        originals[attr] = getattr(verify._Run, attr)
        setattr(verify._Run, attr, timed(phase, originals[attr]))
    try:
        t0, c0 = time.perf_counter(), _cpu()
        verify_paths(entries_of(store), jobs=jobs)
        elapsed, used = time.perf_counter() - t0, _cpu() - c0
    finally:
        for attr, method in originals.items():
            setattr(verify._Run, attr, method)
    print(f"\nPhases with jobs={jobs}: {elapsed:.3f} s wall, {used:.3f} s CPU (process)")
    print(f"  {'phase':<26}{'calls':>8}{'thread wall s':>15}{'thread CPU s':>14}")
    for phase in phases.values():
        print(f"  {phase:<26}{counts[phase]:>8}{wall[phase]:>15.3f}{cpu[phase]:>14.3f}")
    print(
        "  (thread wall minus thread CPU inside a phase is time off the CPU: mostly waiting for "
        "the GIL)"
    )


def profile_calls(store: Path) -> None:
    """cProfile of a jobs=1 run, taken inside the worker thread (cProfile sees one thread only)."""
    profiler = cProfile.Profile()
    original = verify._Run.worker

    def profiled_worker(self) -> None:
        profiler.enable()
        try:
            original(self)
        finally:
            profiler.disable()

    verify._Run.worker = profiled_worker
    try:
        verify_paths(entries_of(store), jobs=1)
    finally:
        verify._Run.worker = original
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    print("\ncProfile of the worker of a jobs=1 run, by own time (profiling slows it down):")
    print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", nargs="?", default=make_stdlib_store.DEFAULT_CACHE)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is kept")
    parser.add_argument("--profile", action="store_true", help="also show where our time goes")
    args = parser.parse_args(argv)

    cache = Path(args.cache).absolute()
    store = make_stdlib_store.build(cache, 34_000, 600, 500, force=False)
    nproc = os.cpu_count() or 1
    zeroinstall = shutil.which("0install")
    if zeroinstall is None:
        print("0install is not installed: install the 0install-core package", file=sys.stderr)
        return 2
    env = zeroinstall_env(cache)
    listed = subprocess.run(
        [zeroinstall, "store", "list"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    print("0install sees:\n  " + "\n  ".join(listed.strip().splitlines()))

    files, size = warm(store)
    entries = len(os.listdir(store))
    print(f"Store: {store}\n  {entries} entries, {files} files, {size / 1e6:.0f} MB; {nproc} CPUs")

    contenders = [
        Contender(f"ours, jobs={nproc}", ours(store, nproc)),
        Contender("ours, jobs=1", ours(store, 1)),
        Contender("0install store audit", audit(zeroinstall, env)),
        Contender(f"find | xargs -P{nproc} sha256sum", sha256sum(store, nproc)),
    ]
    for c in contenders:  # once untimed: caches, imports, 0install's own start-up files
        c.run()
    for _ in range(args.repeat):
        for c in contenders:
            t0 = time.perf_counter()
            c.run()
            c.times.append(time.perf_counter() - t0)

    before = parallel_capacity(nproc)
    after = parallel_capacity(nproc)
    print(
        f"\nCores really free: {nproc} threads hashing in-memory data did {before:.2f}x / "
        f"{after:.2f}x the work of one before / after the rounds (under {nproc}: other load)"
    )
    print(f"\nBest of {args.repeat} (warm page cache):")
    print(f"  {'':<34}{'seconds':>9}{'MB/s':>8}{'files/s':>10}   all runs")
    for c in contenders:
        runs = ", ".join(f"{t:.2f}" for t in c.times)
        print(
            f"  {c.name:<34}{c.best:>9.3f}{size / 1e6 / c.best:>8.0f}"
            f"{files / c.best:>10.0f}   {runs}"
        )
    ours_n, ours_1, zi_audit, c_hash = (c.best for c in contenders)
    print("\nRatios (higher is better for us):")
    ratios = [
        (f"0install store audit / ours jobs={nproc}", zi_audit / ours_n, "(goal >= 2, aim 2.5)"),
        ("0install store audit / ours jobs=1", zi_audit / ours_1, ""),
        (f"find | xargs -P{nproc} sha256sum / ours jobs={nproc}", c_hash / ours_n, ""),
        (f"ours jobs=1 / ours jobs={nproc}", ours_1 / ours_n, "(thread scaling)"),
    ]
    for label, ratio, note in ratios:
        print(f"  {label:<44}{ratio:6.2f}x  {note}")

    if args.profile:
        profile_phases(store, nproc)
        profile_phases(store, 1)
        profile_calls(store)
    return 0


if __name__ == "__main__":
    sys.exit(main())
