#!/usr/bin/env python3
"""How fast ``zeroinstall-admin verify`` checks whole stores, against the real 0install in the same
run.

Two stores (``--store small``, ``stdlib`` or ``both``, the default):

* small: 10,000 implementations of three 1-20 kB files each plus ``.manifest``
  (``make_small_store.py``), as an admin's real cache looks; target: at least 2.5x faster than
  ``0install store audit`` (aim 3.5x);
* stdlib: 37-ish big implementations made from this Python's standard library
  (``make_stdlib_store.py``); target: still at least 3.5x faster.

Each round runs every contender once as a separate process, start-up included, from a warm page
cache, so other load hits them alike: ``zeroinstall-admin verify`` (jobs = CPUs, and ``--jobs 1``),
``0install store audit`` (XDG_CACHE_HOME at the store's cache, every other XDG directory empty),
and ``find | xargs -P$(nproc) sha256sum`` (parallel C hashing). Printed: best and median wall
seconds, CPU seconds of each contender and all its children (independent of other load: on a busy
shared machine, compare those), and the ratios against the targets. ``--profile`` adds a cProfile
of a ``jobs=1`` run in this process.

    python3 benchmarks/bench_verify.py [--store both] [--repeat 3] [--profile]

hashlib uses the CPU's SHA instructions where there are some (then it hashes about 3x faster than
0install's and coreutils' own code). To see how we fare on a CPU without them, mask them out for
OpenSSL: ``OPENSSL_ia32cap=":~0x20000000" python3 benchmarks/bench_verify.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import make_small_store
import make_stdlib_store

from core.verify import verify_paths

PYTHON = sys.executable
"""The interpreter our command runs on in every timed run (``bench_targets.py --python``)."""


def compile_bytecode(*checkouts: Path) -> None:
    """Compile the project's modules before timing them, as an installed copy has them (the
    Debian package compiles them; an ordinary first run writes them). Where
    PYTHONDONTWRITEBYTECODE is set, as on some build machines, every run would otherwise compile
    the changed sources again: start-up time no user sees."""
    for checkout in checkouts:
        subprocess.run([PYTHON, "-m", "compileall", "-q", "core", "gui"], cwd=checkout, check=True)


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


def run_timed(
    command: list[str], *, timeout: float = 600, check: bool = False, **popen: Any
) -> subprocess.CompletedProcess:
    """``subprocess.run`` for a timed run: it waits for the process in one blocking call.

    ``subprocess.run(..., timeout=...)`` polls instead, sleeping up to 50 ms between looks, so
    every run it timed came out rounded up to its next look (1, 3, 7, ... 63, 113, 163 ms...):
    ``du -s`` of the 10,000 store took 0.17 s and was timed at 0.21. Here a timer kills a run
    that takes longer than ``timeout``."""
    proc = subprocess.Popen(command, **popen)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out, err = proc.communicate()
    finally:
        timer.cancel()
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, command, out, err)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


class Contender:
    def __init__(self, name: str, run: Callable[[], None]):
        self.name = name
        self.run = run
        self.times: list[float] = []
        self.cpu: list[float] = []

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu)

    def timed(self) -> None:
        c0 = _children_cpu()
        t0 = time.perf_counter()
        self.run()
        self.times.append(time.perf_counter() - t0)
        self.cpu.append(_children_cpu() - c0)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


REPO = Path(__file__).resolve().parent.parent
LAUNCH = "from gui.launch import run; run()"
"""What the installed zeroinstall-admin command runs (its console script calls gui.launch.run),
here from the checkout in the current directory."""


def entries_of(store: Path) -> list[str]:
    return [str(store / name) for name in sorted(os.listdir(store))]


RECORDS_DIR = "/tmp/zeroinstall-admin-bench/records"
"""Where the benchmarks' verification records go (core.records), never /var/lib."""


def ours(
    store: Path,
    jobs: int | None,
    env: dict[str, str],
    repo: Path = REPO,
    *,
    full: bool = True,
    extra: tuple[str, ...] = (),
) -> Callable[[], None]:
    """Our verify as a user runs it. ``full``: hash everything (``--full``; left out for another
    checkout, which may not know it), else only what changed since the records were taken."""
    command = [PYTHON, "-c", LAUNCH, "verify", "--store", str(store), *extra]
    if full and repo == REPO:
        command.append("--full")
    if jobs is not None:
        command += ["--jobs", str(jobs)]
    env = {**env, "ZEROINSTALL_ADMIN_RECORDS_DIR": RECORDS_DIR}

    def run() -> None:
        proc = run_timed(command, env=env, cwd=repo, stdout=PIPE, stderr=PIPE)
        if proc.returncode != 0:
            raise SystemExit(
                f"zeroinstall-admin verify found problems in the benchmark store: "
                f"{proc.stdout.decode(errors='replace')[-2000:]}{proc.stderr.decode(errors='replace')}"
            )

    return run


def audit(zeroinstall: str, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        proc = run_timed([zeroinstall, "store", "audit"], env=env, stdout=PIPE, stderr=PIPE)
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
        run_timed(["sh", "-c", command], check=True)

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


# -- profiling ----------------------------------------------------------------------------------


def profile_calls(store: Path) -> None:
    """cProfile of a jobs=1 run: everything happens in this process then."""
    profiler = cProfile.Profile()
    paths = entries_of(store)
    profiler.enable()
    try:
        verify_paths(paths, jobs=1)
    finally:
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(16)
    print("\ncProfile of a jobs=1 run, by own time (profiling slows it down):")
    print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()))


# -- main ---------------------------------------------------------------------------------------


TARGETS = {"small": (2.5, 3.5), "stdlib": (3.5, 3.5)}


def bench_store(
    label: str, cache: Path, store: Path, repeat: int, profile: bool, other: Path | None = None
) -> dict:
    nproc = os.cpu_count() or 1
    zeroinstall = shutil.which("0install")
    if zeroinstall is None:
        raise SystemExit("0install is not installed: install the 0install-core package")
    env = zeroinstall_env(cache)
    files, size = warm(store)
    entries = len(os.listdir(store))
    print(
        f"\n== {label} store: {store}\n   {entries:,} entries, {files:,} files, {size / 1e6:.0f} MB"
    )
    contenders = [
        Contender(f"zeroinstall-admin verify --full (jobs={nproc})", ours(store, None, env)),
        Contender("zeroinstall-admin verify --full --jobs 1", ours(store, 1, env)),
        Contender("0install store audit", audit(zeroinstall, env)),
        Contender(f"find | xargs -P{nproc} sha256sum", sha256sum(store, nproc)),
    ]
    if other is not None:  # another checkout, e.g. before a change
        contenders.append(Contender(f"verify of {other}", ours(store, None, env, other)))
    for c in contenders:  # once untimed: caches, imports, 0install's own start-up files
        c.run()
    for _ in range(repeat):
        for c in contenders:
            c.timed()
    print(f"   {'':<40}{'best s':>8}{'median s':>10}{'CPU s':>8}   all runs")
    for c in contenders:
        runs = ", ".join(f"{t:.2f}" for t in c.times)
        print(f"   {c.name:<40}{c.best:>8.2f}{c.median:>10.2f}{c.best_cpu:>8.2f}   {runs}")
    ours_n, ours_1, zi_audit = contenders[:3]
    goal, aim = TARGETS[label]
    wall = zi_audit.median / ours_n.median
    cpu = zi_audit.best_cpu / ours_n.best_cpu
    print(
        f"   0install store audit / ours: {wall:.2f}x wall (medians), {cpu:.2f}x CPU; "
        f"target >= {goal}x (aim {aim}x): {'MET' if wall >= goal else 'NOT MET'} by wall time"
    )
    print(
        f"   ours --jobs 1 / ours jobs={nproc}: {ours_1.median / ours_n.median:.2f}x "
        "(what the second worker gives; under 2 when other programs use the cores)"
    )
    if other is not None:
        before = contenders[4]
        print(
            f"   0install store audit / {other}: {zi_audit.median / before.median:.2f}x wall, "
            f"{zi_audit.best_cpu / before.best_cpu:.2f}x CPU"
        )
    if profile:
        profile_calls(store)
    return {"wall": wall, "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("small", "stdlib", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds")
    parser.add_argument("--profile", action="store_true", help="also show where our time goes")
    parser.add_argument(
        "--compare", type=Path, metavar="CHECKOUT", help="also time another checkout's verify"
    )
    args = parser.parse_args(argv)
    compile_bytecode(REPO, *([args.compare] if args.compare else []))
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.2f} before the runs")
    if args.store in ("small", "both"):
        cache = Path(make_small_store.DEFAULT_CACHE)
        store = make_small_store.build(cache, 10_000)
        bench_store("small", cache, store, args.repeat, args.profile, args.compare)
    if args.store in ("stdlib", "both"):
        cache = Path(make_stdlib_store.DEFAULT_CACHE)
        store = make_stdlib_store.build(cache, 34_000, 600, 500, force=False)
        bench_store("stdlib", cache, store, args.repeat, args.profile, args.compare)
    print(f"\nload average {os.getloadavg()[0]:.2f} after the runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
