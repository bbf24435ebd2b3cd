#!/usr/bin/env python3
"""Build a realistic implementation store for benchmarks, from this Python's standard library.

The store lives at ``CACHE/0install.net/implementations`` (CACHE is the first argument, default
``/tmp/zeroinstall-admin-bench/cache``), so pointing ``XDG_CACHE_HOME`` at CACHE makes the real
0install see it. It is built once; running again with the same settings does nothing (``--force``
rebuilds).

How it is made: the stdlib (``sysconfig.get_paths()['stdlib']`` without ``site-packages`` and
``dist-packages``) is copied several times until the store holds about ``--files`` files and
``--megabytes`` MB. The first copy is complete; later copies keep only the smaller files, so the
mix of file sizes stays close to a real cache instead of repeating the few huge files. Each copy is
split into implementations by top-level package (neighbouring small packages grouped together), each
implementation gets a small marker file saying which copy it is (so every copy has its own digest),
and it is added as 0install does: a ``.manifest`` file, the directory named by its real sha256new
digest, everything made read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.digests import format_digest
from core.manifest import generate_manifest, hash_manifest

DEFAULT_CACHE = "/tmp/zeroinstall-admin-bench/cache"
ALGORITHM = "sha256new"
MARKER_NAME = "ZEROINSTALL-ADMIN-BENCH-COPY"
STAMP_NAME = "bench-store.json"
_LAYOUT_VERSION = 1  # bump when the way the store is made changes, so old stores get rebuilt
_SKIPPED_TOP = {"site-packages", "dist-packages"}


@dataclass(frozen=True, slots=True)
class SourceFile:
    rel: str  # path relative to the stdlib directory
    size: int


def store_dir(cache: str | os.PathLike) -> Path:
    """The implementations directory 0install uses for the cache dir ``cache``."""
    return Path(cache) / "0install.net" / "implementations"


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path) -> list[SourceFile]:
    """Every regular file and symlink of the stdlib, sorted, without third-party packages."""
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in _SKIPPED_TOP]
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            if stat.S_ISREG(st.st_mode) and not os.access(path, os.R_OK):
                continue
            found.append(SourceFile(os.path.relpath(path, root), st.st_size))
    found.sort(key=lambda f: f.rel)
    return found


def plan_copies(
    files: list[SourceFile], target_files: int, target_bytes: int
) -> list[list[SourceFile]]:
    """Which files each copy holds: the first copy everything, then copies of the smaller files
    whose mean size is what is still needed per file, until the file target is met."""
    copies = [list(files)]
    left_files = target_files - len(files)
    left_bytes = target_bytes - sum(f.size for f in files)
    by_size = sorted(f.size for f in files)
    while left_files > 0:
        wanted_mean = max(left_bytes, 0) / left_files
        # Largest prefix of the size-sorted files whose mean is at most the wanted mean (the prefix
        # mean only grows, so scan until it is exceeded).
        count, total = 0, 0
        for size in by_size:
            if count and (total + size) / (count + 1) > wanted_mean:
                break
            count += 1
            total += size
        cap = by_size[count - 1]
        chosen = [f for f in files if f.size <= cap][:left_files]
        copies.append(chosen)
        left_files -= len(chosen)
        left_bytes -= sum(f.size for f in chosen)
    return copies


def group_by_package(files: list[SourceFile], min_files: int) -> list[list[SourceFile]]:
    """Split one copy into implementations: one per top-level entry, small neighbours merged."""
    by_top: dict[str, list[SourceFile]] = {}
    for f in files:
        by_top.setdefault(f.rel.split(os.sep, 1)[0], []).append(f)
    groups: list[list[SourceFile]] = []
    current: list[SourceFile] = []
    for top in sorted(by_top):
        current.extend(by_top[top])
        if len(current) >= min_files:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _make_writable_and_remove(path: Path) -> None:
    """Remove a tree that 0install made read-only (chmod its directories first, unless root)."""
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o755)
    shutil.rmtree(path)


def _make_read_only(root: Path) -> None:
    """What 0install does after adding: no write bits anywhere (the executable bits stay)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o222)
        os.chmod(dirpath, 0o555)


def add_implementation(
    store: Path, src: Path, files: list[SourceFile], label: str
) -> tuple[str, int]:
    """Copy ``files`` into a new implementation; returns (digest name, bytes)."""
    tmp = Path(tempfile.mkdtemp(prefix="tmp-bench-", dir=store))
    size = 0
    for f in files:
        target = tmp / f.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / f.rel, target, follow_symlinks=False)
        size += f.size
    marker = tmp / MARKER_NAME
    marker.write_text(f"{label}\n")
    os.utime(marker, (1_600_000_000, 1_600_000_000))
    manifest = generate_manifest(tmp, ALGORITHM)
    (tmp / ".manifest").write_bytes(manifest)
    name = format_digest(ALGORITHM, hash_manifest(ALGORITHM, manifest))
    final = store / name
    if final.exists():
        _make_writable_and_remove(final)
    _make_read_only(tmp)
    tmp.rename(final)
    return name, size


def build(cache: Path, target_files: int, target_mb: int, group_files: int, force: bool) -> Path:
    store = store_dir(cache)
    stamp_path = store.parent / STAMP_NAME
    src = stdlib_dir()
    settings = {
        "layout": _LAYOUT_VERSION,
        "stdlib": str(src),
        "files": target_files,
        "megabytes": target_mb,
        "group_files": group_files,
    }
    if not force and stamp_path.exists():
        try:
            stamp = json.loads(stamp_path.read_text())
        except ValueError:
            stamp = {}
        if stamp.get("settings") == settings and store.is_dir():
            print(
                f"{store}: already built ({stamp['implementations']} implementations, "
                f"{stamp['files']} files, {stamp['bytes'] / 1e6:.0f} MB)"
            )
            return store
    if store.exists():
        print(f"{store}: removing the old benchmark store")
        _make_writable_and_remove(store)
    stamp_path.unlink(missing_ok=True)
    store.mkdir(parents=True)

    files = stdlib_files(src)
    copies = plan_copies(files, target_files, target_mb * 1_000_000)
    count = total_files = total_bytes = 0
    for copy_no, chosen in enumerate(copies):
        for group_no, group in enumerate(group_by_package(chosen, group_files)):
            label = f"copy {copy_no} group {group_no}"
            name, size = add_implementation(store, src, group, label)
            count += 1
            total_files += len(group) + 1
            total_bytes += size
            print(f"  {name}  {label}: {len(group)} files, {size / 1e6:.1f} MB", flush=True)
    stamp = {
        "settings": settings,
        "implementations": count,
        "files": total_files,
        "bytes": total_bytes,
    }
    stamp_path.write_text(json.dumps(stamp, indent=1))
    print(
        f"{store}: {count} implementations, {total_files} files, {total_bytes / 1e6:.0f} MB "
        f"from {src}"
    )
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "cache",
        nargs="?",
        default=DEFAULT_CACHE,
        help=f"cache dir to build the store in (the store is CACHE/0install.net/implementations; "
        f"default {DEFAULT_CACHE})",
    )
    parser.add_argument("--files", type=int, default=34_000, help="about how many files (34000)")
    parser.add_argument("--megabytes", type=int, default=600, help="about how many MB (600)")
    parser.add_argument(
        "--group-files",
        type=int,
        default=500,
        help="merge neighbouring top-level packages until an implementation has this many files",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if already built")
    args = parser.parse_args(argv)
    build(Path(args.cache).absolute(), args.files, args.megabytes, args.group_files, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
