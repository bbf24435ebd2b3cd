"""Optimise on real stores filled by the real 0install: saves what 0install's own optimise saves,
changes nothing in a dry run, and every implementation still verifies with the real 0install."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

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


def test_never_links_to_a_file_linked_from_outside_the_store(
    real_store: RealStore, tmp_path: Path
) -> None:
    entries = sorted(real_store.add(label, tree(label)) for label in ("a", "b"))
    # Someone outside the store holds a hard link to a's copy (same filesystem).
    outside = tmp_path / "outside-link"
    os.link(entries[0] / "data" / "big.bin", outside)
    before = outside.stat().st_nlink
    store = stores_from_paths([str(real_store.path)])[0]
    done = optimise_store(store)
    assert outside.stat().st_nlink <= before  # nothing of the store was linked to it
    b_big = (entries[1] / "data" / "big.bin").stat()
    assert b_big.st_ino != outside.stat().st_ino
    assert any("outside the store's manifests" in s for s in done.skipped), done.skipped
    assert not done.not_verified


def test_a_file_or_unsearchable_store_is_refused_without_figures(
    real_store: RealStore, tmp_path: Path, code_for_other_users
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = optimise_store(stores_from_paths([str(afile)])[0], dry_run=True)
    assert result.refused and "not a directory" in result.problems[0]
    real_store.add("a", tree("a"))
    real_store.add("b", tree("b"))
    base = Path(tempfile.mkdtemp(prefix="zia-optimise-", dir="/tmp"))
    try:
        base.chmod(0o755)
        store = base / "implementations"
        shutil.copytree(real_store.path, store, symlinks=True)
        store.chmod(0o744)  # others may list it, not search it
        code = code_for_other_users.prelude() + (
            "import sys, runpy; sys.argv = ['zeroinstall-admin', 'optimise', '--dry-run', "
            f"'--store', {str(store)!r}]; runpy.run_module('core.cli', run_name='__main__')"
        )
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             code_for_other_users.python, "-I", "-c", code],
            capture_output=True, text=True, timeout=120, cwd="/", check=False,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "not searched" in proc.stderr and "would save" not in proc.stdout
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
        shutil.rmtree(base)


def test_dry_run_and_owner_verify_keep_last_use_on_strictatime(
    real_store: RealStore, code_for_other_users
) -> None:
    """As a user who does not own the store, on a filesystem that records every read."""
    for label in ("a", "b"):
        real_store.add(label, tree(label))
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    base = Path(tempfile.mkdtemp(prefix="zia-strictatime-", dir="/tmp"))
    base.chmod(0o755)
    store = base / "implementations"
    prelude = code_for_other_users.prelude()

    def cli_as(uid: int, *args: str) -> str:
        code = prelude + (
            f"import sys, runpy; sys.argv = ['zeroinstall-admin', *{list(args)!r}]; "
            "runpy.run_module('core.cli', run_name='__main__')"
        )
        return (
            f"setpriv --reuid={uid} --regid={uid} --clear-groups "
            f"{code_for_other_users.python} -I -c {shlex.quote(code)}"
        )

    listing = cli_as(12345, "list", "--json", "--store", str(store))
    script = "\n".join(
        [
            "set -e",
            f"mount -t tmpfs -o strictatime,mode=755 none {base}",
            f"cp -a {real_store.path} {store}",
            f"chown -R 65534:65534 {store}",
            # Every file last read long ago (and after its change: relatime would not hide it).
            f"find {store} -type f -exec touch -a -d 2024-01-01 {{}} +",
            f"{listing} > {base}/before.json",
            cli_as(12345, "optimise", "--dry-run", "--store", str(store)) + " > /dev/null",
            cli_as(65534, "verify", "--store", str(store)) + " > /dev/null",
            f"{listing} > {base}/after.json",
            f"cat {base}/before.json; echo '=='; cat {base}/after.json",
        ]
    )
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    shutil.rmtree(base, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.split("==\n")
    last = [{e["name"]: e["last_used"] for e in json.loads(x)} for x in (before, after)]
    assert last[0] and all(v and v.startswith("2024-01-01") for v in last[0].values()), last
    assert last[0] == last[1]
