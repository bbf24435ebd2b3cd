"""Scheduled maintenance (issue 23) on a fake root: the units the helper writes (checked by the real
systemd-analyze) and removes, the runs the services start (verify, clean, watch, free space) with
their journal lines, status file and action log, and the lock shared with interactive runs.

Nothing here touches this machine's /etc or systemd: every file lives under tmp_path, and the
runs are started by hand, as the services would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import clean, maintenance, maintenance_run
from core import root_helper as rh
from core import store_lock as locks
from core.digests import format_digest
from core.maintenance_jobs import run_job
from core.maintenance_status import current_findings, last_check_text, read_status
from core.manifest import generate_manifest, hash_manifest
from tests.conftest import REPO, run_cli

ZI = "http://zero-install.sourceforge.net/2004/injector/interface"
DAY = 86400
OLD = time.time() - 90 * DAY
PYTHON = sys.executable


pytestmark = pytest.mark.usefixtures("no_real_root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fake root with the shared store, one user (alice) with a readable home."""
    r = tmp_path / "root"
    (r / "var/cache/0install.net/implementations").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "home/alice").mkdir(parents=True)
    (r / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
    )
    return r


def store_of(root: Path) -> Path:
    return root / "var/cache/0install.net/implementations"


def add_entry(store: Path, label: str, *, size: int = 1000, when: float | None = None) -> str:
    """An implementation added as 0store-secure-add does (a tmp-* directory renamed to its
    digest), with a .manifest; ``when``: its access and modification times."""
    tmp = store / f"tmp-{label}"
    (tmp / "bin").mkdir(parents=True)
    (tmp / "bin" / "run").write_text(f"#!/bin/sh\necho {label}\n")
    (tmp / "data").write_bytes(label.encode() * (size // len(label) + 1))
    manifest = generate_manifest(str(tmp), "sha256new")
    name = format_digest("sha256new", hash_manifest("sha256new", manifest))
    (tmp / ".manifest").write_bytes(manifest)
    if when is not None:
        for folder, _dirs, files in os.walk(tmp):
            for f in files:
                os.utime(os.path.join(folder, f), (when, when))
    os.rename(tmp, store / name)
    return name


def select_in_app(home: Path, app: str, digest: str) -> None:
    folder = home / ".config/0install.net/apps" / app
    folder.mkdir(parents=True, exist_ok=True)
    alg, value = digest.split("_", 1)
    (folder / "selections.xml").write_text(
        f'<?xml version="1.0"?>\n<selections xmlns="{ZI}" interface="https://x.example/a.xml">\n'
        f'  <selection id="{digest}" interface="https://x.example/a.xml" version="1">'
        f'<manifest-digest {alg}="{value}"/></selection>\n</selections>\n'
    )


class Journal:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, priority: int, text: str) -> None:
        self.lines.append((priority, text))

    def at(self, priority: int) -> list[str]:
        return [t for p, t in self.lines if p == priority]


def cli(*args: str, root: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``zeroinstall-admin maintenance ARGS [--root ROOT]``."""
    where = ["--root", str(root)] if root is not None else []
    return run_cli("maintenance", *args, *where, text=True, timeout=timeout, cwd=REPO)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_symlink() or p.is_file()}


# --- the units ------------------------------------------------------------------------------------


def test_enable_writes_units_systemd_accepts_and_disable_removes_exactly_them(root: Path):
    before = files_under(root)
    proc = cli("enable", "--yes", root=root)
    assert proc.returncode == 0, proc.stderr
    written = files_under(root) - before
    unit_dir = "etc/systemd/system/"
    assert written == {
        "etc/zeroinstall-admin/maintenance.conf",
        *(unit_dir + u for u in rh.MAINTENANCE_UNITS),
        unit_dir + "timers.target.wants/zeroinstall-admin-verify.timer",
        unit_dir + "timers.target.wants/zeroinstall-admin-clean.timer",
        unit_dir + "paths.target.wants/zeroinstall-admin-watch.path",
    }
    units = sorted(str(root / unit_dir / u) for u in rh.MAINTENANCE_UNITS)
    check = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                           capture_output=True, text=True, check=False)  # fmt: skip
    complaints = [
        ln for ln in check.stderr.splitlines()
        if ln.strip() and f"Command {rh.MAINTENANCE_PROGRAM} is not executable" not in ln
    ]  # fmt: skip
    assert complaints == []
    service = (root / unit_dir / "zeroinstall-admin-clean.service").read_text()
    for line in (
        "ProtectSystem=strict", "ProtectHome=read-only", "PrivateNetwork=yes",
        "NoNewPrivileges=yes", "IOSchedulingClass=idle", "Nice=19",
        "ReadWritePaths=/var/cache/0install.net", "StateDirectory=zeroinstall-admin",
        "LogsDirectory=zeroinstall-admin",
        f"ExecStart={rh.MAINTENANCE_PROGRAM} maintenance run clean",
    ):  # fmt: skip
        assert line in service.splitlines()
    timer = (root / unit_dir / "zeroinstall-admin-verify.timer").read_text()
    assert {"OnCalendar=daily", "Persistent=true", "RandomizedDelaySec=1h"} <= set(
        timer.splitlines()
    )
    assert (root / unit_dir / "timers.target.wants/zeroinstall-admin-verify.timer").readlink() == (
        Path("/etc/systemd/system/zeroinstall-admin-verify.timer")
    )
    status = json.loads(cli("status", "--json", root=root).stdout)
    assert status["enabled"] is True and status["settings"]["clean"] == "weekly"

    (root / "etc/systemd/system/unrelated.service").write_text("[Service]\nExecStart=/bin/true\n")
    proc = cli("disable", "--yes", root=root)
    assert proc.returncode == 0, proc.stderr
    assert files_under(root) == before | {"etc/systemd/system/unrelated.service"}
    assert cli("status", root=root).returncode == 1


def test_settings_are_checked_before_anything_is_written(root: Path):
    before = files_under(root)
    for bad in (
        ["--verify-when", "bogus"],  # systemd-analyze calendar refuses it
        ["--clean-when", "daily\nExecStartPre=/bin/sh"],  # a second line into the unit
        ["--min-free", "20%", "--max-free", "10%"],
        ["--min-free", "95%"],
        ["--older-than", "-1"],
        ["--keep", "many"],
    ):
        proc = cli("enable", "--yes", *bad, root=root)
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert files_under(root) == before, bad
    # Checked again by the helper itself (its arguments may come from anywhere).
    args = list(rh.MAINTENANCE_DEFAULTS.values())
    args[0] = "bogus"
    with pytest.raises(rh.UsageError, match="calendar"):
        rh.run_verb("maintenance-enable", args, root=str(root))
    assert files_under(root) == before


def test_a_file_someone_else_wrote_is_never_overwritten_nor_removed(root: Path):
    foreign = root / "etc/systemd/system/zeroinstall-admin-clean.timer"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("[Timer]\nOnCalendar=hourly\n")
    with pytest.raises(rh.HelperError, match="not written by this tool"):
        rh.run_verb("maintenance-enable", list(rh.MAINTENANCE_DEFAULTS.values()), root=str(root))
    assert not (root / "etc/zeroinstall-admin/maintenance.conf").exists()
    summary = rh.run_verb("maintenance-disable", [], root=str(root))
    assert foreign.read_text() == "[Timer]\nOnCalendar=hourly\n"
    assert "left alone" in summary


def test_turning_the_watch_off_removes_its_units(root: Path):
    assert cli("enable", "--yes", root=root).returncode == 0
    assert cli("enable", "--yes", "--no-watch", "--clean-when", "Sun *-*-* 04:00",
               root=root).returncode == 0  # fmt: skip
    unit_dir = root / "etc/systemd/system"
    assert not (unit_dir / "zeroinstall-admin-watch.path").exists()
    assert not (unit_dir / "paths.target.wants/zeroinstall-admin-watch.path").is_symlink()
    assert "OnCalendar=Sun *-*-* 04:00" in (unit_dir / "zeroinstall-admin-clean.timer").read_text()
    assert maintenance.load_settings(str(root)).watch is False


def test_enable_needs_the_shared_store(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    with pytest.raises(rh.HelperError, match="enable sharing first"):
        rh.run_verb("maintenance-enable", list(rh.MAINTENANCE_DEFAULTS.values()),
                    root=str(tmp_path))  # fmt: skip
    assert not (tmp_path / "etc/systemd").exists()


# --- verify ---------------------------------------------------------------------------------------


def test_verify_run_reports_each_finding_as_a_warning_and_writes_the_status(root: Path):
    store = store_of(root)
    good = add_entry(store, "good")
    bad = add_entry(store, "bad")
    (store / bad / "data").write_text("changed")
    planted = "sha256new_" + "A" * 52
    (store / planted).symlink_to("/etc")
    proc = cli("run", "verify", root=root)
    assert proc.returncode == 1, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("<4>")]
    assert len(warnings) == 2
    assert any(bad in ln and ln.startswith("<4>corrupt:") for ln in warnings)
    assert any(planted in ln and "Planted symlink" in ln for ln in warnings)
    assert not any(good in ln for ln in warnings)
    assert "<5>verify: 3 entries checked, 2 problems" in proc.stderr.splitlines()
    status = read_status(str(root))
    assert status["verify"]["checked"] == 3 and status["verify"]["problems"] == 2
    assert {f.name for f in current_findings(status)} == {bad, planted}
    assert oct(os.stat(root / "var/lib/zeroinstall-admin/maintenance-status.json").st_mode)[
        -3:
    ] == ("644")
    text = last_check_text(status)
    assert (
        text is not None and text.startswith("Last check: today ") and text.endswith(", 2 problems")
    )


def test_run_summaries_count_in_words(root: Path):
    add_entry(store_of(root), "one")
    journal = Journal()
    run_job("verify", maintenance.Place(str(root)), journal)
    assert "verify: 1 entry checked, 0 problems" in journal.at(6)


def test_last_check_text_says_when():
    now = time.mktime((2026, 3, 5, 12, 0, 0, 0, 0, -1))
    status = {"check": {"finished": now - 3600 * 9, "findings": []}}
    assert last_check_text(status, now) == "Last check: today 03:00, no problems"
    status["check"]["finished"] = now - DAY
    status["check"]["findings"] = [{"path": "/x", "name": "x", "status": "corrupt", "detail": ""}]
    assert last_check_text(status, now) == "Last check: yesterday 12:00, 1 problem"
    assert last_check_text({}, now) is None


# --- clean ----------------------------------------------------------------------------------------


def test_clean_run_removes_only_what_the_policy_allows(root: Path):
    store = store_of(root)
    old = add_entry(store, "old", when=OLD)
    selected = add_entry(store, "selected", when=OLD)
    pinned = add_entry(store, "pinned", when=OLD)
    recent = add_entry(store, "recent")
    select_in_app(root / "home/alice", "tool", selected)
    pins_dir = root / "home/alice/.local/state/zeroinstall-admin"
    pins_dir.mkdir(parents=True)
    (pins_dir / "pins.json").write_text(json.dumps({"entries": [pinned], "programs": []}))
    journal = Journal()
    result = run_job("clean", maintenance.Place(str(root)), journal)
    assert sorted(os.listdir(store)) == sorted([selected, pinned, recent])
    assert result.removed == 1 and not result.message
    assert any(old in line and line.startswith("removed:") for line in journal.at(5))
    records = [json.loads(x) for x in (root / "var/log/zeroinstall-admin/actions.jsonl")
               .read_text().splitlines()]  # fmt: skip
    # The intent first (written before anything changes), then the outcome, both under its name.
    assert [(r["action"], r["entry"]) for r in records] == [("removing", old), ("removed", old)]
    assert read_status(str(root))["clean"]["removed"] == 1


def test_clean_stops_without_removing_anything_when_a_home_cannot_be_read(root: Path):
    store = store_of(root)
    add_entry(store, "old", when=OLD)
    apps = root / "home/alice/.config/0install.net/apps"
    apps.parent.mkdir(parents=True)
    apps.symlink_to("apps")  # a loop: reading it fails even for root
    before = sorted(os.listdir(store))
    journal = Journal()
    result = run_job("clean", maintenance.Place(str(root)), journal)
    assert sorted(os.listdir(store)) == before
    assert result.removed == 0 and "nothing was removed" in result.message
    assert any(line.startswith("clean stopped:") for line in journal.at(4))
    assert result.exit_code == 1


# --- free space -----------------------------------------------------------------------------------


class FakeDisk:
    """A filesystem of ``total`` bytes whose only content is the store: free space goes up as
    entries go."""

    def __init__(self, store: Path, total: int):
        self.store, self.total = store, total

    def __call__(self, path: str) -> tuple[int, int]:
        used = sum(
            os.lstat(os.path.join(folder, f)).st_size
            for folder, _dirs, files in os.walk(self.store)
            for f in files
        )
        return self.total - used, self.total


def test_free_space_removes_least_recently_used_until_the_upper_limit(root: Path):
    store = store_of(root)
    k = 1 << 20
    ages = {"a": 40, "b": 30, "c": 20, "d": 10}  # days since last use: a is the oldest
    names = {label: add_entry(store, label, size=k, when=time.time() - days * DAY)
             for label, days in ages.items()}  # fmt: skip
    oldest_selected = add_entry(store, "sel", size=k, when=time.time() - 99 * DAY)
    select_in_app(root / "home/alice", "tool", oldest_selected)
    young = add_entry(store, "young", size=k, when=time.time() - 1 * DAY)  # within the grace
    busy = add_entry(store, "busy", size=k, when=time.time() - 98 * DAY)
    holder = subprocess.Popen([PYTHON, "-c", "import sys; sys.stdin.read()"],
                              cwd=store / busy, stdin=subprocess.PIPE)  # fmt: skip
    try:
        disk = FakeDisk(store, total=12 * k + 64 * 1024)  # 7 MB in entries, 5 MB free
        settings = maintenance.Settings(
            older_than_days=3650, min_free=f"{6}M", max_free=f"{7}M", grace_days=2
        )  # 5 MB free < 6 MB: remove until 7 MB are free, two entries
        journal = Journal()
        result = run_job(
            "verify", maintenance.Place(str(root)), journal, settings=settings, free_space=disk
        )
    finally:
        holder.stdin.close()  # type: ignore[union-attr]
        holder.wait(timeout=60)
    left = set(os.listdir(store))
    assert names["a"] not in left and names["b"] not in left
    assert {names["c"], names["d"], oldest_selected, young, busy} <= left
    assert result.removed == 2 and disk(str(store))[0] >= 7 * k
    assert any(line.startswith("free space low") for line in journal.at(4))


def test_free_space_in_a_small_tmpfs(root: Path, tmp_path: Path):
    """The real statvfs: a 4 MB tmpfs mounted over the store's parent in a private mount
    namespace, filled to below 10% free; the clean run frees it back above 20%."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root (a private mount namespace)")
    script = tmp_path / "fill_and_clean.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_maintenance import add_entry\n"
        "from core import maintenance\n"
        "from core.maintenance_jobs import run_job\n"
        "from core.maintenance_run import statvfs_space\n"
        "root = sys.argv[1]; store = root + '/var/cache/0install.net/implementations'\n"
        "os.makedirs(store)\n"
        "names = {}\n"
        "for i in range(9):\n"
        "    names[add_entry(__import__('pathlib').Path(store), f'e{i}', size=420_000,\n"
        "                    when=time.time() - (50 - i) * 86400)] = f'e{i}'\n"
        "free, total = statvfs_space(store)\n"
        "print('before', free, total, flush=True)\n"
        "s = maintenance.Settings(min_free='10%', max_free='20%', older_than_days=3650)\n"
        "r = run_job('clean', maintenance.Place(root), lambda p, t: print(p, t), settings=s)\n"
        "free, total = statvfs_space(store)\n"
        "left = ','.join(sorted(names[n] for n in os.listdir(store)))\n"
        "print('after', free, total, r.removed, left, flush=True)\n"
    )
    cache = root / "var/cache/0install.net"
    shutil.rmtree(cache)
    cache.mkdir()
    proc = subprocess.run(
        [unshare, "-m", "--propagation", "private", "sh", "-c",
         f"mount -t tmpfs -o size=4m tmpfs {cache} && exec {PYTHON} {script} {root}"],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = {ln.split()[0]: ln.split() for ln in proc.stdout.splitlines()
             if ln.startswith(("before", "after"))}  # fmt: skip
    free, total = int(lines["before"][1]), int(lines["before"][2])
    assert free < total // 10
    after_free, removed, left = int(lines["after"][1]), int(lines["after"][3]), lines["after"][4]
    assert after_free >= total // 5
    # Oldest first, and no more than needed: e0 (50 days) and e1 went.
    assert removed == 2 and left == ",".join(f"e{i}" for i in range(2, 9))
    assert not os.listdir(cache)  # the tmpfs was private: nothing was left on the real disk


# --- the watch ------------------------------------------------------------------------------------


def test_watch_verifies_a_new_entry_after_its_rename(root: Path):
    store = store_of(root)
    present = add_entry(store, "present")
    first = cli("run", "watch", root=root)
    # The first run, before any verification: what arrived in the last minutes is verified.
    assert first.returncode == 0 and "0 entries recorded" in first.stderr
    assert f"verified new entry {store / present}: OK" in first.stderr
    first = cli("run", "watch", root=root)
    assert first.returncode == 0 and "verified" not in first.stderr
    new = add_entry(store, "new")
    damaged = add_entry(store, "damaged")
    (store / damaged / "data").write_text("tampered")
    old_leftover = store / "tmp-left-over"
    old_leftover.mkdir()
    long_ago = time.time() - 86400
    os.utime(old_leftover, (long_ago, long_ago))  # not an add under way: not waited for
    proc = cli("run", "watch", root=root)
    assert proc.returncode == 1, proc.stderr  # a problem found
    assert f"<6>verified new entry {store / new}: OK" in proc.stderr.splitlines()
    assert any(ln.startswith("<4>corrupt:") and damaged in ln for ln in proc.stderr.splitlines())
    assert "tmp-left-over" not in proc.stderr
    assert [f.name for f in current_findings(read_status(str(root)))] == [damaged]
    again = cli("run", "watch", root=root)  # nothing new: nothing verified
    assert "verified" not in again.stderr and "<4>" not in again.stderr


def test_a_watch_run_started_by_an_add_follows_it_to_its_rename(root: Path):
    """0store-secure-add makes tmp-XXXX (the .path unit fires), fills it, then renames it: the
    run the first event started sees the rename through, whatever systemd does meanwhile."""
    store = store_of(root)
    run_job("verify", maintenance.Place(str(root)), Journal())  # the baseline
    building = store / "tmp-0store-add"
    (building / "bin").mkdir(parents=True)
    journal = Journal()
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (run_job("watch", maintenance.Place(str(root)), journal), done.set())
    )
    worker.start()
    try:
        (building / "bin" / "run").write_text("#!/bin/sh\necho staged\n")
        manifest = generate_manifest(str(building), "sha256new")
        name = format_digest("sha256new", hash_manifest("sha256new", manifest))
        (building / ".manifest").write_bytes(manifest)
        os.rename(building, store / name)
        assert done.wait(120), journal.lines  # the outcome, with a generous bound
    finally:
        worker.join(timeout=120)
    assert f"verified new entry {store / name}: OK" in journal.at(6)


def test_after_a_verification_the_watch_checks_only_what_came_since(root: Path):
    store = store_of(root)
    add_entry(store, "verified-daily")
    run_job("verify", maintenance.Place(str(root)), Journal())
    journal = Journal()
    run_job("watch", maintenance.Place(str(root)), journal)
    assert not any("verified new entry" in t for _, t in journal.lines)
    late = add_entry(store, "late")
    run_job("watch", maintenance.Place(str(root)), journal)
    assert [t for t in journal.at(6) if "verified new entry" in t] == [
        f"verified new entry {store / late}: OK"
    ]


def test_watch_by_polling_reports_a_new_entry_within_seconds(root: Path):
    store = store_of(root)
    add_entry(store, "present")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [PYTHON, "-m", "core.cli", "maintenance", "run", "watch", "--follow", "--interval", "0.2",
         "--root", str(root)],
        stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    lines: list[str] = []
    arrived: dict[str, float] = {}
    changed = threading.Condition()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with changed:
                lines.append(line)
                arrived.setdefault(line, time.monotonic())
                changed.notify_all()

    def wait_for(text: str) -> float:
        """When a line holding ``text`` arrived (fails after a generous bound, for busy
        machines)."""
        with changed:
            found = changed.wait_for(
                lambda: any(text in ln for ln in lines) or proc.poll() is not None, timeout=120
            )
            hits = [arrived[ln] for ln in lines if text in ln]
        assert found and hits, "".join(lines)
        return hits[0]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(" recorded; new ones are verified")
        wait_for("verified new entry")  # the one already there, new at the first run
        new = add_entry(store, "arrives")
        renamed = time.monotonic()
        reported = wait_for(f"verified new entry {store / new}: OK")
        print(f"reported {reported - renamed:.2f} s after the rename")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        reader.join(timeout=60)
        proc.stderr.close()  # type: ignore[union-attr]


# --- the lock -------------------------------------------------------------------------------------


def hold_lock(
    lock_file: str, how: str = "LOCK_EX", *, argv: tuple[str, ...] = ()
) -> subprocess.Popen:
    """Another process holding ``lock_file`` (or any file or directory) with ``how`` until its
    stdin closes; ``argv``: what to run it under (``setpriv ...``)."""
    holder = subprocess.Popen(
        [*(argv or (PYTHON,)), "-c", ("import fcntl, os, sys\n"
         f"path = {lock_file!r}\n"
         "os.path.isdir(path) or os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)\n"
         "fd = os.open(path, os.O_RDONLY if os.path.isdir(path)"
         " else os.O_RDWR | os.O_CREAT, 0o600)\n"
         f"fcntl.flock(fd, fcntl.{how})\n"
         "print('locked', flush=True)\nsys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    said = holder.stdout.readline().strip()
    if said != "locked":
        holder.kill()
        raise AssertionError(f"the holder failed: {holder.communicate()[1]}")
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.stdin.close()  # type: ignore[union-attr]
    holder.wait(timeout=60)
    holder.stdout.close()  # type: ignore[union-attr]
    holder.stderr.close()  # type: ignore[union-attr]


@pytest.fixture
def other_holder(root: Path):
    """Another root process (a scheduled run, root's command) holding the store's lock until the
    test ends."""
    lock_file = locks.lock_file_for(str(store_of(root)))
    assert lock_file is not None
    holder = hold_lock(lock_file)
    yield holder
    release(holder)


def test_a_run_never_works_on_a_store_another_run_holds(root: Path, other_holder, monkeypatch):
    store = store_of(root)
    old = add_entry(store, "old", when=OLD)
    monkeypatch.setitem(maintenance_run.LOCK_WAIT_S, "clean", 0.0)
    journal = Journal()
    result = run_job("clean", maintenance.Place(str(root)), journal)
    assert old in os.listdir(store) and result.removed == 0
    assert "another run is working on" in result.message
    # An interactive removal (the window's or the command line's) waits its turn too.
    scan = clean.survey(maintenance.Place(str(root)).stores(), maintenance.Place(str(root)).env(),
                        clean.Policy(older_than_days=0), homes=[])  # fmt: skip
    outcomes = clean.remove([v for v in scan.candidates], None)
    assert [o.action for o in outcomes] == ["skipped"] and "another run" in outcomes[0].message
    assert old in os.listdir(store)


def test_interactive_verification_waits_for_a_scheduled_run(root: Path, other_holder):
    add_entry(store_of(root), "fine")
    proc = run_cli("verify", "--store", str(store_of(root)), text=True)
    assert proc.returncode == 1 and "another run is working on" in proc.stderr
    assert "Traceback" not in proc.stderr


def probe_lock(lock_file: str, hows: tuple[str, ...] = ("LOCK_SH", "LOCK_EX")) -> list[str]:
    """What another process gets asking for ``lock_file`` in each way: 'free' or 'busy'."""
    probe = subprocess.run(
        [PYTHON, "-c", ("import fcntl, os, sys\n"
         f"fd = os.open({lock_file!r}, os.O_RDWR)\n"
         f"for how in {[f'fcntl.{h}' for h in hows]!r}:\n"
         "    try:\n        fcntl.flock(fd, eval(how) | fcntl.LOCK_NB)\n        print('free')\n"
         "        fcntl.flock(fd, fcntl.LOCK_UN)\n"
         "    except OSError:\n        print('busy')\n")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return probe.stdout.split()


def test_verifications_share_the_lock_removals_do_not(root: Path):
    store = str(store_of(root))
    lock_file = locks.lock_file_for(store)
    assert lock_file is not None
    with locks.store_lock([store], shared=True):
        assert probe_lock(lock_file) == ["free", "busy"]
    assert probe_lock(lock_file) == ["free", "free"]


def test_the_lock_nests_within_one_process(root: Path):
    store = str(store_of(root))
    lock_file = locks.lock_file_for(store)
    assert lock_file is not None
    with locks.store_lock([store]):
        with locks.store_lock([store]):
            pass
        assert probe_lock(lock_file, ("LOCK_EX",)) == ["busy"]
    assert not rh._held_locks


def test_roots_lock_is_in_a_directory_only_root_can_open(root: Path):
    store = str(store_of(root))
    lock_file = locks.lock_file_for(store)
    assert lock_file is not None and not lock_file.startswith(store)
    assert os.path.dirname(lock_file) == os.environ[rh.STORE_LOCK_DIR_ENV]
    with locks.store_lock([store]):
        st = os.stat(os.path.dirname(lock_file))
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o700
    assert rh.store_lock_file(rh.STORE_LOCK_DIR, store).startswith("/var/lib/zeroinstall-admin/")


@pytest.fixture
def open_root(tmp_path: Path):
    """A fake root like ``root`` where any user can reach the shared store (tmp_path is root's)."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="zia-lock-", dir="/tmp"))
    base.chmod(0o755)
    r = base / "root"
    (r / "var/cache/0install.net/implementations").mkdir(parents=True, mode=0o755)
    for d in (r, r / "var", r / "var/cache", r / "var/cache/0install.net"):
        d.chmod(0o755)
    (r / "etc").mkdir()
    (r / "home/alice").mkdir(parents=True)
    (r / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
    )
    yield r
    shutil.rmtree(base, ignore_errors=True)


def as_nobody(code_for_other_users) -> tuple[str, ...]:
    return ("runuser", "-u", "nobody", "--", code_for_other_users.python, "-I")


def test_another_user_holding_the_store_cannot_hold_off_roots_clean(
    open_root: Path, code_for_other_users, monkeypatch
):
    """nobody may open the shared store: an flock on it (shared or exclusive) stops no run of
    root's, a removal through the helper's verbs included; root's lock file is out of its reach."""
    store = store_of(open_root)
    old = add_entry(store, "old", when=OLD)
    older = add_entry(store, "older", when=OLD)
    for path in store.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    monkeypatch.setitem(maintenance_run.LOCK_WAIT_S, "clean", 0.0)
    monkeypatch.setattr(rh, "STORE_LOCK_WAIT_S", 0.0)
    place = maintenance.Place(str(open_root))
    holder = hold_lock(str(store), "LOCK_SH", argv=as_nobody(code_for_other_users))
    try:
        summary = rh.run_verb("quarantine", [str(store), older], root=str(open_root))
        assert summary.startswith("moved"), summary
    finally:
        release(holder)
    holder = hold_lock(str(store), "LOCK_EX", argv=as_nobody(code_for_other_users))
    try:
        result = run_job("clean", place, Journal())
        assert result.removed == 1 and not result.message, result.message
        assert old not in os.listdir(store)
    finally:
        release(holder)
    # nobody cannot reach root's lock file to hold it instead, and takes no lock of its own.
    lock_file = locks.lock_file_for(str(store))
    assert lock_file is not None and os.path.exists(lock_file)
    tried = subprocess.run(
        [*as_nobody(code_for_other_users), "-c", code_for_other_users.prelude() + (
         "import os\nfrom core import store_lock as locks\n"
         f"print(locks.lock_file_for({str(store)!r}))\n"
         f"try:\n    os.open({lock_file!r}, os.O_RDONLY)\nexcept PermissionError:\n"
         "    print('refused')\n")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert tried.stdout.split() == ["None", "refused"], tried.stderr


def test_a_user_locks_a_store_of_their_own_in_their_state_directory(
    open_root: Path, code_for_other_users
):
    home = open_root.parent / "home"
    store = home / "store"
    store.mkdir(parents=True)
    shutil.chown(home, "nobody")
    shutil.chown(store, "nobody")
    proc = subprocess.run(
        [*as_nobody(code_for_other_users), "-c", code_for_other_users.prelude() + (
         "import os\nfrom core import store_lock as locks\n"
         f"os.environ['HOME'] = {str(home)!r}\nos.environ.pop('XDG_STATE_HOME', None)\n"
         f"with locks.store_lock([{str(store)!r}]):\n"
         f"    print(locks.lock_file_for({str(store)!r}))\n")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lock_file = Path(proc.stdout.strip())
    assert lock_file.parent == home / ".local/state/zeroinstall-admin/locks"
    assert lock_file.is_file() and lock_file.parent.stat().st_mode & 0o777 == 0o700


def test_the_helpers_verbs_wait_for_roots_lock(root: Path, other_holder, monkeypatch):
    monkeypatch.setattr(rh, "STORE_LOCK_WAIT_S", 0.0)
    store = store_of(root)
    entry = add_entry(store, "held")
    for verb in ("quarantine", "remove-implementation"):
        with pytest.raises(rh.HelperError, match="another run is working on"):
            rh.run_verb(verb, [str(store), entry], root=str(root))
    assert entry in os.listdir(store)


def test_run_refuses_bad_usage_plainly(root: Path, tmp_path: Path):
    proc = cli("run", "clean", "--follow", root=root)
    assert proc.returncode == 2 and "--follow goes with" in proc.stderr
    proc = cli("run", "nonsense", root=root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("maintenance", text=True, cwd=REPO)  # no action: every one is named
    assert proc.returncode == 2
    assert "maintenance needs an action: status, enable, disable, script or run" in proc.stderr
    proc = cli("status", root=Path("/"))
    assert proc.returncode == 2 and "--root / is the real system" in proc.stderr
    for bad in (root / "etc/passwd", tmp_path / "missing"):
        proc = cli("status", root=bad)
        assert proc.returncode == 2 and f"--root '{bad}' is not a directory" in proc.stderr


# --- mail -----------------------------------------------------------------------------------------


def test_mail_to_root_through_sendmail_when_on_and_only_then(root: Path, tmp_path: Path):
    store = store_of(root)
    bad = add_entry(store, "bad")
    (store / bad / "data").write_text("changed")
    mailbox = tmp_path / "mailbox"
    sendmail = root / "usr/sbin/sendmail"
    sendmail.parent.mkdir(parents=True)
    sendmail.write_text(f'#!/bin/sh\necho "$@" > {mailbox}.args\ncat >> {mailbox}\n')
    sendmail.chmod(0o755)
    place = maintenance.Place(str(root))
    run_job("verify", place, Journal(), settings=maintenance.Settings(mail=False))
    assert not mailbox.exists()
    run_job("verify", place, Journal(), settings=maintenance.Settings(mail=True))
    text = mailbox.read_text()
    assert text.startswith("To: root\nSubject: zeroinstall-admin verify on ")
    assert text.splitlines()[1].endswith(": 1 problem")
    assert bad in text and (tmp_path / "mailbox.args").read_text().split() == ["-oi", "-t"]
