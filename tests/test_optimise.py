"""Optimise on real stores filled by the real 0install: saves what 0install's own optimise saves,
changes nothing in a dry run, and every implementation still verifies with the real 0install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from core.optimise import optimise_store
from core.stores import stores_from_paths
from tests.conftest import RealStore, run_0install

BIG = "0123456789abcdef" * 4096  # 64 KiB, the same in every implementation


def tree(label: str) -> dict[str, str]:
    return {
        "data/big.bin": BIG,
        "bin/tool": "!#!/bin/sh\necho same\n",
        "id": label,
        "lib/link": "@../data/big.bin",
    }


def du(path: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split()[0])


def inodes(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.lstat().st_ino for p in sorted(path.rglob("*"))}


def test_dry_run_then_optimise_saves_space_and_everything_verifies(
    real_store: RealStore, tmp_path: Path
) -> None:
    entries = [real_store.add(label, tree(label)) for label in ("a", "b", "c")]
    store = stores_from_paths([str(real_store.path)])[0]
    before = du(real_store.path)
    layout = inodes(real_store.path)

    dry = optimise_store(store, dry_run=True)
    assert inodes(real_store.path) == layout  # nothing changed
    assert dry.linked == 4  # big.bin and tool of b and c
    assert dry.groups == 2 and len(dry.affected) == 2

    # 0install's own optimise on a copy saves the same number of bytes (apparent sizes)
    copy_root = tmp_path / "copy" / "0install.net"
    copy_root.mkdir(parents=True)
    copy = copy_root / "implementations"
    subprocess.run(["cp", "-a", str(real_store.path), str(copy)], check=True)
    said = run_0install("store", "optimise", str(copy), env=real_store.env)
    freed = re.search(r"Space freed up : ([\d.]+) KB", said)
    assert freed, said
    assert round(dry.saved_size / 1024, 1) == float(freed.group(1))

    done = optimise_store(store)
    assert (done.linked, done.saved, done.saved_size) == (dry.linked, dry.saved, dry.saved_size)
    assert before - du(real_store.path) == done.saved
    assert not done.not_verified and not done.skipped
    big = {(e / "data/big.bin").lstat().st_ino for e in entries}
    assert len(big) == 1
    assert all((e / "lib/link").is_symlink() for e in entries)  # symlinks are left alone
    for entry in entries:
        run_0install("store", "verify", str(entry), entry.name, env=real_store.env)
        assert (entry / "data").stat().st_mode & 0o777 == 0o555  # modes put back
    again = optimise_store(store, dry_run=True)
    assert again.linked == 0 and again.saved == 0


def test_a_damaged_copy_is_never_what_others_point_at(real_store: RealStore) -> None:
    entries = [real_store.add(label, tree(label)) for label in ("a", "b", "c")]
    store_path = real_store.path
    # Damage every copy but one in place (same size and mtime: only the content differs).
    damaged = sorted(entries)[:2]
    for entry in damaged:
        path = entry / "data" / "big.bin"
        st = path.stat()
        os.chmod(entry / "data", 0o755)
        path.chmod(0o644)
        path.write_text(BIG.replace("0", "X"))
        path.chmod(0o444)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.chmod(entry / "data", 0o555)
    done = optimise_store(stores_from_paths([str(store_path)])[0])
    good = (sorted(entries)[2] / "data" / "big.bin").read_text()
    assert good == BIG
    # The good copy was kept and linked into the damaged ones, which now verify again.
    for entry in entries:
        run_0install("store", "verify", str(entry), entry.name, env=real_store.env)
    assert not done.not_verified


def test_optimise_refuses_another_users_store_without_root(
    real_store: RealStore, monkeypatch
) -> None:
    real_store.add("a", tree("a"))
    store = stores_from_paths([str(real_store.path)])[0]
    monkeypatch.setattr(os, "geteuid", lambda: 12345)
    result = optimise_store(store)
    assert result.problems and "optimise it as root" in result.problems[0]
    assert shutil.which("du")
