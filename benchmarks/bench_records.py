#!/usr/bin/env python3
"""Verification records (issue 22): how fast an unchanged cache is checked again, and full
verification of many tiny entries, against the real baselines in the same rounds.

1. unchanged store of 10,000 small entries (``make_small_store.py``), warm page cache:
   ``zeroinstall-admin verify`` (records taken by a first untimed run, so every entry is judged
   by its change keys) against ``find STORE -printf '%i %s %C@\\n'``: at most 2x its time;
2. unchanged standard-library store (``make_stdlib_store.py``, about 600 MB, 34,000 files), the
   page cache dropped before every run (``echo 3 > /proc/sys/vm/drop_caches``; needs root):
   ``verify`` at most 1.5x ``find``'s time, and at least 4x faster than ``verify --full``;
3. ``verify --full`` on 10,000 entries of 3-4 files of 10 B-20 kB (``make_small_store.py
   --shape tiny``), warm: at least 3x faster than ``0install store audit``.

``0install store audit`` runs in rounds 1 and 2 too, as the reference users know. Rounds are
interleaved; medians are compared; CPU seconds of each contender and its children are printed.

    python3 benchmarks/bench_records.py [--repeat 5] [--only small,stdlib,tiny]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from subprocess import DEVNULL, PIPE

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_verify
import make_small_store
import make_stdlib_store
from bench_verify import Contender, audit, ours, run_timed, warm, zeroinstall_env

REPO = Path(__file__).resolve().parent.parent


def find(store: Path) -> Contender:
    def run() -> None:
        run_timed(["find", str(store), "-printf", r"%i %s %C@\n"], stdout=DEVNULL, check=True)

    return Contender("find -printf '%i %s %C@\\n'", run)


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


class Cold(Contender):
    """A contender whose every run starts with the page cache dropped (not timed)."""

    def __init__(self, c: Contender) -> None:
        super().__init__(c.name + " (cold)", c.run)

    def timed(self) -> None:
        drop_caches()
        super().timed()


def cold(c: Contender) -> Contender:
    return Cold(c)


def report(title: str, contenders: list[Contender], rounds: int) -> None:
    print(f"\n== {title} ({rounds} rounds)")
    print(f"   {'':<46}{'best s':>8}{'median s':>10}{'CPU s':>8}   all runs")
    for c in contenders:
        runs = ", ".join(f"{t:.2f}" for t in c.times)
        print(f"   {c.name:<46}{c.best:>8.2f}{c.median:>10.2f}{c.best_cpu:>8.2f}   {runs}")


def rounds(contenders: list[Contender], repeat: int) -> None:
    for c in contenders:  # once untimed: records taken, caches, imports
        c.run()
    for _ in range(repeat):
        for c in contenders:
            c.timed()


def check_unchanged(store: Path, env: dict[str, str]) -> None:
    """Take the records, and make sure a second run judges every entry unchanged (else the
    figures would be of hashing)."""
    command = [bench_verify.PYTHON, "-c", bench_verify.LAUNCH, "verify", "--store", str(store)]
    env = {**env, "ZEROINSTALL_ADMIN_RECORDS_DIR": bench_verify.RECORDS_DIR}
    for _ in range(2):
        proc = run_timed(command + ["--json"], env=env, cwd=REPO, stdout=PIPE, stderr=PIPE)
    import json

    rows = json.loads(proc.stdout)
    hashed = sum(1 for r in rows if r["checked"] == "hashed")
    if hashed:
        print(f"   note: {hashed} entries were hashed again (racy or changed)")


def bench_small_unchanged(repeat: int) -> list[tuple]:
    cache = Path(make_small_store.DEFAULT_CACHE)
    store = make_small_store.build(cache, 10_000)
    env = zeroinstall_env(cache)
    warm(store)
    check_unchanged(store, env)
    zeroinstall = shutil.which("0install") or "0install"
    contenders = [
        Contender("zeroinstall-admin verify (unchanged)", ours(store, None, env, full=False)),
        find(store),
        Contender("0install store audit", audit(zeroinstall, env)),
    ]
    rounds(contenders, repeat)
    report(f"unchanged, 10,000 small entries, warm: {store}", contenders, repeat)
    ratio = contenders[0].median / contenders[1].median
    met = ratio <= 2.0
    print(f"   ours / find: {ratio:.2f}x (medians); target <= 2x: {'MET' if met else 'NOT MET'}")
    print(f"   audit / ours: {contenders[2].median / contenders[0].median:.1f}x")
    return [("unchanged 10,000 small, warm: ours / find", ratio, "<= 2x", met)]


def bench_stdlib_cold(repeat: int) -> list[tuple]:
    if os.geteuid() != 0:
        print("\n== unchanged stdlib store, cold: skipped (dropping the page cache needs root)")
        return []
    cache = Path(make_stdlib_store.DEFAULT_CACHE)
    store = make_stdlib_store.build(cache, 34_000, 600, 500, force=False)
    env = zeroinstall_env(cache)
    check_unchanged(store, env)
    zeroinstall = shutil.which("0install") or "0install"
    contenders = [
        cold(Contender("zeroinstall-admin verify (unchanged)", ours(store, None, env, full=False))),
        cold(find(store)),
        cold(Contender("zeroinstall-admin verify --full", ours(store, None, env))),
        cold(Contender("0install store audit", audit(zeroinstall, env))),
    ]
    rounds(contenders, repeat)
    report(
        f"unchanged stdlib store, page cache dropped before each run: {store}", contenders, repeat
    )
    recheck, baseline, full, zi = contenders
    ratio = recheck.median / baseline.median
    speedup = full.median / recheck.median
    print(
        f"   ours / find: {ratio:.2f}x; target <= 1.5x: {'MET' if ratio <= 1.5 else 'NOT MET'}\n"
        f"   ours --full / ours: {speedup:.1f}x; target >= 4x: "
        f"{'MET' if speedup >= 4 else 'NOT MET'}\n"
        f"   audit / ours: {zi.median / recheck.median:.1f}x"
    )
    return [
        ("unchanged stdlib, cold: ours / find", ratio, "<= 1.5x", ratio <= 1.5),
        ("unchanged stdlib, cold: --full / ours", speedup, ">= 4x", speedup >= 4),
    ]


def bench_tiny_full(repeat: int) -> list[tuple]:
    cache = Path(make_small_store.TINY_CACHE)
    store = make_small_store.build(cache, 10_000, shape="tiny")
    env = zeroinstall_env(cache)
    warm(store)
    zeroinstall = shutil.which("0install") or "0install"
    contenders = [
        Contender("zeroinstall-admin verify --full", ours(store, None, env)),
        Contender("0install store audit", audit(zeroinstall, env)),
    ]
    rounds(contenders, repeat)
    report(
        f"full verification, 10,000 entries of 3-4 files of 10 B-20 kB: {store}", contenders, repeat
    )
    ratio = contenders[1].median / contenders[0].median
    met = ratio >= 3
    print(f"   audit / ours --full: {ratio:.2f}x; target >= 3x: {'MET' if met else 'NOT MET'}")
    return [("--full, 10,000 tiny: audit / ours", ratio, ">= 3x", met)]


BENCHES = {"small": bench_small_unchanged, "stdlib": bench_stdlib_cold, "tiny": bench_tiny_full}


def run_all(repeat: int, only: list[str]) -> list[tuple]:
    summary: list[tuple] = []
    for name in only:
        summary += BENCHES[name](repeat)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--only", default="small,stdlib,tiny", help="comma-separated: " + ",".join(BENCHES)
    )
    args = parser.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}")
    bench_verify.compile_bytecode(REPO)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the runs")
    summary = run_all(args.repeat, only)
    print(f"\nload average {os.getloadavg()[0]:.2f} after the runs")
    for label, value, target, met in summary:
        print(f"   {label:<44}{value:6.2f}x   target {target}: {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
