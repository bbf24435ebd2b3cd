#!/usr/bin/env python3
"""Every speed target of the engine in one run, each against its baseline measured in the same run.

1. ``zeroinstall-admin verify`` on the store of 10,000 small implementations
   (``make_small_store.py``) against ``0install store audit``: at least 2.5x faster (aim 3.5x);
2. the same on the standard-library store (``make_stdlib_store.py``): at least 3.5x faster;
3. ``zeroinstall-admin list --json`` (sizes included) on the 10,000 store against ``du -s`` of it:
   at most 1.5x its time (aim 1.25x);
4. the window (``bench_gui.py``, run as a separate process): "Verify all" within 1.3x of the
   command line, the GUI thread never stalled more than 100 ms, memory under 300 MB;
5. verification records (``bench_records.py``, issue 22): an unchanged 10,000 store re-checked
   within 2x of ``find -printf '%i %s %C@\n'`` (warm), the unchanged stdlib store within 1.5x of
   that ``find`` and at least 4x faster than ``verify --full`` (page cache dropped before each
   run; root only), and ``verify --full`` on 10,000 entries of 3-4 files of 10 B-20 kB at least
   3x faster than ``0install store audit``.

Items 1 and 2 time ``verify --full`` (a plain ``verify`` judges unchanged entries by their change
keys after its first run).

Rounds are interleaved (each runs every contender once), so other load on the machine hits all of
them alike; medians are compared, and CPU seconds (the process and all its children) are printed
too: on a machine shared with other work, those are the steadier figure.

    python3 benchmarks/bench_targets.py [--repeat 5] [--skip-stdlib] [--skip-gui] [--skip-records]
        [--python PATH]

Our command runs on this script's interpreter (the development virtual environment's), or on
``--python``'s: ``--python /usr/bin/python3`` times it on the interpreter the Debian package
installs it on (the command line needs no package from the virtual environment; the window's
benchmark always runs on this one). The header says which, with its version.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_records
import bench_verify
import make_small_store
import make_stdlib_store
from bench_verify import Contender, run_timed

REPO = Path(__file__).resolve().parent.parent


def bench_list(store: Path, repeat: int) -> tuple[float, float]:
    env = dict(os.environ)
    ours = [bench_verify.PYTHON, "-c", bench_verify.LAUNCH, "list", "--json", "--store", str(store)]

    def run_ours() -> None:
        run_timed(ours, env=env, cwd=REPO, stdout=subprocess.DEVNULL, check=True)

    def run_du() -> None:
        run_timed(["du", "-s", str(store)], stdout=subprocess.DEVNULL, check=True)

    contenders = [Contender("zeroinstall-admin list --json", run_ours), Contender("du -s", run_du)]
    for c in contenders:
        c.run()
    # Each round takes half a second: three times the rounds, for a median other load moves less.
    for _ in range(3 * repeat):
        for c in contenders:
            c.timed()
    print(f"\n== list --json with sizes, 10,000 small entries: {store} ({3 * repeat} rounds)")
    print(f"   {'':<40}{'best s':>8}{'median s':>10}{'CPU s':>8}   all runs")
    for c in contenders:
        runs = ", ".join(f"{t:.2f}" for t in c.times)
        print(f"   {c.name:<40}{c.best:>8.2f}{c.median:>10.2f}{c.best_cpu:>8.2f}   {runs}")
    ours_c, du_c = contenders
    ratio = ours_c.median / du_c.median
    print(
        f"   ours / du -s: {ratio:.2f}x (medians); target <= 1.5x (aim 1.25x): "
        f"{'MET' if ratio <= 1.5 else 'NOT MET'}"
    )
    return ratio, ours_c.best_cpu / max(du_c.best_cpu, 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds of each comparison")
    parser.add_argument("--skip-stdlib", action="store_true")
    parser.add_argument("--skip-gui", action="store_true")
    parser.add_argument("--skip-records", action="store_true", help="leave out bench_records.py")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter our command runs on (default: this one)",
    )
    args = parser.parse_args(argv)
    bench_verify.PYTHON = args.python
    bench_verify.compile_bytecode(REPO)
    version = subprocess.run(
        [args.python, "-VV"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the runs")
    print(f"our command runs on {args.python}: {version}")
    summary = []

    small_cache = Path(make_small_store.DEFAULT_CACHE)
    small = make_small_store.build(small_cache, 10_000)
    got = bench_verify.bench_store("small", small_cache, small, args.repeat, False)
    summary.append(
        ("verify, 10,000 small: audit / ours", got["wall"], ">= 2.5x", got["wall"] >= 2.5)
    )
    if not args.skip_stdlib:
        cache = Path(make_stdlib_store.DEFAULT_CACHE)
        store = make_stdlib_store.build(cache, 34_000, 600, 500, force=False)
        got = bench_verify.bench_store("stdlib", cache, store, args.repeat, False)
        summary.append(("verify, stdlib: audit / ours", got["wall"], ">= 3.5x", got["wall"] >= 3.5))
    ratio, _cpu = bench_list(small, args.repeat)
    summary.append(("list --json, 10,000 small: ours / du -s", ratio, "<= 1.5x", ratio <= 1.5))
    if not args.skip_records:
        which = ["small", "tiny"] if args.skip_stdlib else ["small", "stdlib", "tiny"]
        summary += bench_records.run_all(args.repeat, which)

    if not args.skip_gui:
        print("\n== the window (benchmarks/bench_gui.py)")
        proc = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "bench_gui.py")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        print("   " + "\n   ".join(proc.stdout.strip().splitlines()))
        if proc.returncode:
            print(proc.stderr[-2000:])

    print(f"\nload average {os.getloadavg()[0]:.2f} after the runs")
    print("\nSummary (the window's verdicts are in its section above):")
    for label, value, target, met in summary:
        print(f"   {label:<46}{value:6.2f}x   target {target}: {'MET' if met else 'NOT MET'}")
    print(
        f"   medians of {args.repeat} rounds ({3 * args.repeat} for list); on a loaded machine the "
        "ratios move with the load: compare the CPU seconds too"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
