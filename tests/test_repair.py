"""Repair: a damaged entry moved aside and fetched again by the real 0install, from a local feed
whose archive is a local file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from core.feeds import escape_feed_url
from core.verify_entry import verify_directory
from tests.conftest import REPO, run_0install, run_cli, write_tree


class Feed:
    """A local feed (its cached copy where the cached feeds are) with one version of a program
    whose archive is a local file; fetched once by 0install, into the store."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.env = env
        src = write_tree(
            tmp / "src" / "prog-1.0", {"hello.txt": "hello\n", "bin/run": "!echo hi\n"}
        )
        self.archive = tmp / "prog-1.0.tar.gz"
        with tarfile.open(self.archive, "w:gz") as tar:
            tar.add(src, arcname="prog-1.0")
        self.digest = run_0install(
            "digest", "--algorithm=sha256new", str(self.archive), "prog-1.0", env=env
        ).strip()
        self.path = tmp / "feeds" / "prog.xml"
        self.path.parent.mkdir()
        self.path.write_text(
            f'<?xml version="1.0"?>\n<interface uri="{self.path}" '
            'xmlns="http://zero-install.sourceforge.net/2004/injector/interface">\n'
            "  <name>Prog</name><summary>a test program</summary>\n"
            f'  <implementation id="{self.digest}" version="1.0" main="bin/run">\n'
            f'    <manifest-digest sha256new="{self.digest.partition("_")[2]}"/>\n'
            f'    <archive href="../{self.archive.name}" size="{self.archive.stat().st_size}" '
            'extract="prog-1.0"/>\n'
            "  </implementation>\n</interface>\n"
        )
        cached = Path(env["XDG_CACHE_HOME"]) / "0install.net" / "interfaces"
        cached.mkdir(parents=True)
        (cached / escape_feed_url(str(self.path))).write_bytes(self.path.read_bytes())
        run_0install("download", "--version=1.0", str(self.path), env=env)
        # As root 0install adds to the system store (XDG_CACHE_DIRS), as a user to its own.
        stores = [
            Path(env["XDG_CACHE_DIRS"]) / "0install.net" / "implementations",
            Path(env["XDG_CACHE_HOME"]) / "0install.net" / "implementations",
        ]
        self.store = next(s for s in stores if (s / self.digest).is_dir())
        self.entry = self.store / self.digest


@pytest.fixture
def feed(tmp_path: Path, zi_env: dict[str, str]) -> Feed:
    zi_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    zi_env["PYTHONPATH"] = str(REPO)
    return Feed(tmp_path, zi_env)


def damage(entry: Path) -> None:
    f = entry / "hello.txt"
    os.chmod(entry, 0o755)
    os.chmod(f, 0o644)
    f.write_text("HELLO\n")
    os.chmod(f, 0o444)
    os.chmod(entry, 0o555)


def repair(feed: Feed, *names: str, json_out: bool = True) -> subprocess.CompletedProcess:
    json_flag = ["--json"] if json_out else []
    return run_cli(
        "repair", "--store", str(feed.store), *names, *json_flag, env=feed.env, text=True
    )


def test_a_damaged_entry_is_fetched_again_and_verifies(feed: Feed) -> None:
    damage(feed.entry)
    assert verify_directory(feed.entry).status == "corrupt"
    proc = repair(feed, feed.digest)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["action"] == "repaired", row
    assert verify_directory(feed.entry).status == "ok"
    # The damaged copy is kept, out of 0install's reach, as evidence.
    aside = Path(row["quarantined_to"])
    assert aside.parent.name == "zeroinstall-admin-quarantine"
    assert (aside / "hello.txt").read_text() == "HELLO\n"
    log = Path(feed.env["XDG_STATE_HOME"]) / "zeroinstall-admin" / "actions.jsonl"
    actions = [json.loads(line)["action"] for line in log.read_text().splitlines()]
    assert actions == ["quarantining", "quarantined", "repaired"]  # the intent first


def test_an_entry_that_verifies_is_left_alone(feed: Feed) -> None:
    before = os.stat(feed.entry)
    proc = repair(feed, feed.digest, json_out=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK") and "nothing to repair" in proc.stdout
    assert os.stat(feed.entry).st_ino == before.st_ino


def test_an_entry_no_feed_lists_is_said_and_left(feed: Feed, tmp_path: Path) -> None:
    cached = Path(feed.env["XDG_CACHE_HOME"]) / "0install.net" / "interfaces"
    for f in cached.iterdir():
        f.unlink()
    damage(feed.entry)
    proc = repair(feed, feed.digest)
    assert proc.returncode == 1
    (row,) = json.loads(proc.stdout)
    assert row["action"] == "unknown-feed" and "no cached feed lists it" in row["message"]
    assert (feed.entry / "hello.txt").read_text() == "HELLO\n"  # left where it was


def test_a_failed_download_keeps_the_damaged_copy_and_says_where(feed: Feed) -> None:
    damage(feed.entry)
    feed.archive.unlink()
    proc = repair(feed, feed.digest)
    assert proc.returncode == 1
    (row,) = json.loads(proc.stdout)
    assert row["action"] == "failed" and "0install download failed" in row["message"]
    assert row["quarantined_to"] and Path(row["quarantined_to"]).is_dir()
    assert "the damaged copy is in" in row["message"]


def test_names_that_are_not_there_or_not_digests(feed: Feed) -> None:
    proc = repair(feed, "sha256new_" + "A" * 52)
    assert proc.returncode == 1 and "is not in any store" in proc.stderr
    proc = repair(feed, "not-a-digest")
    assert proc.returncode == 2


def test_an_entry_in_use_is_not_moved_from_under_the_program(feed: Feed) -> None:
    """A running program whose working directory is inside the damaged entry: repair refuses,
    names the process and says what to do; the entry stays; after the program ends it repairs."""
    damage(feed.entry)
    user = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=feed.entry,
    )  # fmt: skip
    try:
        assert user.stdout is not None and user.stdout.readline().strip() == "ready"
        proc = repair(feed, feed.digest, json_out=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout.startswith("NOT REPAIRED"), proc.stdout
        assert f"in use by process {user.pid}" in proc.stdout
        assert "working directory" in proc.stdout and "then repair it again" in proc.stdout
        assert (feed.entry / "hello.txt").read_text() == "HELLO\n"  # not moved
        quarantine = feed.store.parent / "zeroinstall-admin-quarantine"
        assert not quarantine.exists() or not any(quarantine.iterdir())
    finally:
        user.communicate(timeout=30)
    (row,) = json.loads(repair(feed, feed.digest).stdout)
    assert row["action"] == "repaired", row
