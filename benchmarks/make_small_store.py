#!/usr/bin/env python3
"""Build a store of many small implementations, as an admin's real cache looks (10,000 by default).

Each implementation holds three files of 1-20 kB (seeded random bytes, so every run builds the same
store) plus the ``.manifest`` 0install writes; it is named by its real sha256new digest and made
read-only, as ``0install store add`` leaves it (``0install store audit`` passes it). The store lives
at ``CACHE/0install.net/implementations`` (default CACHE ``/tmp/zeroinstall-admin-bench/small``),
so ``XDG_CACHE_HOME=CACHE`` makes the real 0install see it. Built once; ``--force`` rebuilds.

    python3 benchmarks/make_small_store.py [CACHE] [--entries 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from make_stdlib_store import _make_read_only, _make_writable_and_remove, store_dir

from core.digests import format_digest
from core.manifest import generate_manifest, hash_manifest

DEFAULT_CACHE = "/tmp/zeroinstall-admin-bench/small"
ALGORITHM = "sha256new"
STAMP_NAME = "small-store.json"
_LAYOUT_VERSION = 1
MTIME = 1_600_000_000


TINY_CACHE = "/tmp/zeroinstall-admin-bench/tiny"
"""Where ``--shape tiny`` builds: issue 22's shape, 3 or 4 files of 10 bytes to 20 kB each."""

SHAPES = {"small": (3, 3, 1_000), "tiny": (3, 4, 10)}
"""files per entry (fewest, most) and the smallest file; the biggest is always 20 kB."""


def build(cache: Path, entries: int, force: bool = False, shape: str = "small") -> Path:
    store = store_dir(cache)
    stamp_path = store.parent / STAMP_NAME
    settings: dict = {"layout": _LAYOUT_VERSION, "entries": entries}
    if shape != "small":
        settings["shape"] = shape
    fewest, most, smallest = SHAPES[shape]
    if not force and stamp_path.exists() and store.is_dir():
        try:
            if json.loads(stamp_path.read_text()).get("settings") == settings:
                print(f"{store}: already built ({entries} implementations)")
                return store
        except ValueError:
            pass
    if store.exists():
        print(f"{store}: removing the old benchmark store")
        _make_writable_and_remove(store)
    stamp_path.unlink(missing_ok=True)
    store.mkdir(parents=True)
    rng = random.Random(7)
    total = 0
    for n in range(entries):
        tmp = store / f"tmp-small-{n}"
        tmp.mkdir()
        count = fewest if fewest == most else rng.randint(fewest, most)  # (small: as it was)
        names = ("lib.py", "data.bin", "README", "LICENSE")[:count]
        for k, name in enumerate(names):
            size = rng.randint(smallest, 20_000)
            path = tmp / name
            path.write_bytes(rng.randbytes(size))
            if k == 0 and n % 3 == 0:
                path.chmod(0o755)
            os.utime(path, (MTIME, MTIME))
            total += size
        manifest = generate_manifest(tmp, ALGORITHM)
        (tmp / ".manifest").write_bytes(manifest)
        name = format_digest(ALGORITHM, hash_manifest(ALGORITHM, manifest))
        _make_read_only(tmp)
        tmp.rename(store / name)
        if n % 1000 == 999:
            print(f"  {n + 1} implementations", flush=True)
    stamp_path.write_text(json.dumps({"settings": settings, "bytes": total}))
    print(f"{store}: {entries} implementations, {total / 1e6:.0f} MB")
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", nargs="?", default=DEFAULT_CACHE)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--force", action="store_true")
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="small", help="tiny: 3-4 files of 10 B-20 kB"
    )
    args = parser.parse_args(argv)
    build(Path(args.cache).absolute(), args.entries, args.force, args.shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
