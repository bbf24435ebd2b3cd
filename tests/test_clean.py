"""Clean-up on real stores filled by the real 0install: evidence, candidates and their reasons,
reclaimable space with hard links, and removal (safety cases, the privileged route, the log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import actionlog, clean, evidence, pins, root_helper
from core.cache import scan
from core.clean import Policy, judge, reclaimable
from core.feeds import escape_feed_url
from core.measure import measure_all
from core.stores import Store, stores_from_paths
from tests.conftest import RealStore, run_0install

ZI = "http://zero-install.sourceforge.net/2004/injector/interface"
FEED = "https://tools.example/hello.xml"
DAY = 86400


@pytest.fixture
def env(zi_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    zi_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return zi_env


def files(label: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    tree = {
        "bin/run": f"!#!/bin/sh\necho {label}\n",
        "README": "the same text in every version\n",
        f"lib/{label}.so": f"library {label}\n" * 50,
    }
    tree.update(extra or {})
    return tree


def write_feed(
    env: dict[str, str], impls: dict[str, str], url: str = FEED, name: str = "Hello"
) -> None:
    body = "".join(
        f'  <implementation id="{d}" version="{v}"><manifest-digest '
        f'{d.split("_", 1)[0]}="{d.split("_", 1)[1]}"/></implementation>\n'
        for d, v in impls.items()
    )
    folder = Path(env["XDG_CACHE_HOME"]) / "0install.net" / "interfaces"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / escape_feed_url(url)).write_text(
        f'<?xml version="1.0"?>\n<interface xmlns="{ZI}" uri="{url}">\n  <name>{name}</name>\n'
        f"  <summary>s</summary>\n{body}</interface>\n"
    )


def write_app(env: dict[str, str], app: str, digest: str, leaf: str = "selections.xml") -> None:
    folder = Path(env["XDG_CONFIG_HOME"]) / "0install.net" / "apps" / app
    folder.mkdir(parents=True, exist_ok=True)
    alg, value = digest.split("_", 1)
    (folder / leaf).write_text(
        f'<?xml version="1.0"?>\n<selections xmlns="{ZI}" interface="{FEED}">\n'
        f'  <selection id="{digest}" interface="{FEED}" version="1">'
        f'<manifest-digest {alg}="{value}"/></selection>\n</selections>\n'
    )


def set_atime(entry: Path, when: float) -> None:
    for folder, _dirs, names in os.walk(entry):
        for n in names:
            p = os.path.join(folder, n)
            if not os.path.islink(p):
                os.utime(p, (when, os.lstat(p).st_mtime))


def survey(store: RealStore, env: dict[str, str], policy: Policy | None = None, **kw):
    return clean.survey(
        stores_from_paths([str(store.path)]),
        env,
        policy,
        homes=[],
        pins_file=str(Path(env["XDG_STATE_HOME"]) / "pins.json"),
        **kw,
    )


def verdict_of(result, digest: str) -> clean.Verdict:
    return next(v for v in result.verdicts if v.entry.name == digest)


@pytest.fixture
def holder(tmp_path: Path):
    """A child process that holds a file open and maps another one, until told to stop."""
    procs: list[subprocess.Popen] = []

    def start(open_path: Path, map_path: Path) -> subprocess.Popen:
        code = (
            "import mmap, sys\n"
            f"held = open({str(open_path)!r}, 'rb')\n"
            f"with open({str(map_path)!r}, 'rb') as f:\n"
            "    mapped = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        proc.communicate(timeout=30)


# --- candidates and their reasons -----------------------------------------------------------------


def test_candidates_are_chosen_for_the_right_reasons(real_store: RealStore, env, holder) -> None:
    now = time.time()
    paths = {
        label: real_store.add(label, files(label))
        for label in ("old", "recent", "app", "open", "mapped", "pinned")
    }
    d = real_store.digests
    write_feed(
        env,
        {
            d["old"]: "1.0",
            d["recent"]: "1.1",
            d["app"]: "1.2",
            d["open"]: "1.3",
            d["mapped"]: "1.4",
        },
    )
    for label, path in paths.items():
        set_atime(path, now - (2 if label == "recent" else 60) * DAY)
    write_app(env, "hello", d["app"])
    p = pins.load(str(Path(env["XDG_STATE_HOME"]) / "pins.json"))
    pins.add(p, "entry", d["pinned"])
    p.save()
    leftover = real_store.path / "tmp-abc123"
    leftover.mkdir()
    os.utime(leftover, (now - 3 * DAY, now - 3 * DAY))
    fresh_tmp = real_store.path / "tmp-fresh1"
    fresh_tmp.mkdir()
    holder(paths["open"] / "README", paths["mapped"] / "lib" / "mapped.so")

    result = survey(real_store, env)

    old = verdict_of(result, d["old"])
    assert old.action == "remove"
    assert any(r.startswith("not used for 2 months: last access") for r in old.reasons)
    assert "an older version of Hello" in old.reasons
    recent = verdict_of(result, d["recent"])
    assert recent.action == "keep" and recent.reasons[0].startswith("used 2 days ago")
    assert verdict_of(result, d["app"]).reasons == ["selected by the 0install app hello"]
    opened = verdict_of(result, d["open"])
    assert opened.action == "keep"
    assert any("open file" in r and str(os.getpid()) not in r for r in opened.reasons), opened
    mapped = verdict_of(result, d["mapped"])
    assert mapped.action == "keep" and any("memory map" in r for r in mapped.reasons), mapped
    pinned = verdict_of(result, d["pinned"])
    assert pinned.action == "keep" and pinned.reasons == ["pinned (this entry)"]
    tmp = verdict_of(result, "tmp-abc123")
    assert tmp.action == "remove" and "unchanged for 3 days" in tmp.reasons[0]
    assert verdict_of(result, "tmp-fresh1").action == "keep"
    assert {v.entry.name for v in result.candidates} == {d["old"], "tmp-abc123"}


def test_keep_n_newest_versions_and_unowned(real_store: RealStore, env) -> None:
    now = time.time()
    for label in ("v1", "v2", "v10", "stray"):
        set_atime(real_store.add(label, files(label)), now - 90 * DAY)
    d = real_store.digests
    write_feed(env, {d["v1"]: "1.0", d["v2"]: "1.2-pre1", d["v10"]: "1.10"})
    result = survey(real_store, env, Policy(older_than_days=30, keep=2))
    assert verdict_of(result, d["v10"]).action == "keep"
    assert verdict_of(result, d["v2"]).reasons == [
        "one of the 2 newest cached versions of Hello (kept by the keep-newest setting)"
    ]
    assert verdict_of(result, d["v1"]).action == "remove"
    stray = verdict_of(result, d["stray"])
    assert stray.action == "remove" and "(unowned): no cached feed lists it" in stray.reasons


def test_dated_selections_and_process_environment_are_roots(real_store: RealStore, env) -> None:
    a = real_store.add("a", files("a"))
    b = real_store.add("b", files("b"))
    write_app(env, "tool", real_store.digests["a"], "selections-2025-01-02.xml")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PATH": f"{b}/bin:/usr/bin"},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        stores = stores_from_paths([str(real_store.path)])
        entries = scan(stores, env).entries
        ev = evidence.collect(stores, entries, pins=None, env=env, homes=[])
    finally:
        proc.communicate(timeout=30)
    by_name = {e.name: e for e in entries}
    [reason] = ev.rooted(by_name[a.name])  # the file, and how to let the entry go
    assert reason.startswith("named by an older selections file of the 0install app tool (")
    assert "selections-2025-01-02.xml" in reason and "delete that file" in reason
    uses = ev.in_use(by_name[b.name])
    assert any(f"process {proc.pid}" in r and "environment variable" in r for r in uses), uses


def test_unreadable_home_is_named(tmp_path: Path, env) -> None:
    home = tmp_path / "alice"
    (home / ".config" / "0install.net").mkdir(parents=True)
    loop = home / ".config" / "0install.net" / "apps"
    loop.symlink_to(loop)  # ELOOP: a home whose apps cannot be listed
    uses, unreadable, _problems = evidence.load_selections([], [str(home)])
    assert uses == {}
    assert len(unreadable) == 1 and unreadable[0].startswith(str(home))


def test_noatime_is_honest(real_store: RealStore, env) -> None:
    path = real_store.add("x", files("x"))
    set_atime(path, time.time() - 400 * DAY)
    stores = stores_from_paths([str(real_store.path)])
    result = scan(stores, env)
    measure_all(result.entries, lambda e, u: setattr(e, "usage", u))
    ev = evidence.collect(stores, result.entries, pins=None, env=env, homes=[], processes=False)
    modes = {stores[0].path: "noatime"}
    [v] = judge(result.entries, ev, Policy(), atime_modes=modes)
    assert v.action == "keep" and "mounted noatime" in v.reasons[0]
    [v] = judge(result.entries, ev, Policy(older_than_days=0), atime_modes=modes)
    assert v.action == "remove"


def test_vm_evidence_keeps_the_whole_store(real_store: RealStore, env) -> None:
    real_store.add("x", files("x"))
    stores = stores_from_paths([str(real_store.path)])
    entries = scan(stores, env).entries
    shared = os.path.dirname(os.path.realpath(real_store.path))
    ev = evidence.collect(
        stores,
        entries,
        pins=None,
        env=env,
        homes=[],
        processes=False,
        vms=lambda: ({shared: ["builder"]}, None),
    )
    assert "shared with the running VM builder" in ev.in_use(entries[0])[0]


# --- space ----------------------------------------------------------------------------------------


def du(*paths: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "-c", "--block-size=1", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def test_reclaimable_space_with_hard_links_is_exact(real_store: RealStore, env) -> None:
    a = real_store.add("a", files("a", {"big": "x" * 100_000}))
    b = real_store.add("b", files("b", {"big": "x" * 100_000}))
    c = real_store.add("c", files("c"))
    from core.optimise import optimise_store

    done = optimise_store(stores_from_paths([str(real_store.path)])[0])
    # README is now one file linked from a, b and c; big one file linked from a and b
    assert done.linked == 3 and not done.not_verified
    big, readme = os.lstat(a / "big"), os.lstat(a / "README")
    assert big.st_nlink == 2 and big.st_ino == os.lstat(b / "big").st_ino
    assert readme.st_nlink == 3 and readme.st_ino == os.lstat(c / "README").st_ino
    fa, fb, fc = (clean.footprint(str(p)) for p in (a, b, c))
    assert reclaimable([fa])[1] == du(a) - big.st_blocks * 512 - readme.st_blocks * 512
    # du counts each inode once: what a and b hold together, minus the README c still links
    assert reclaimable([fa, fb])[1] == du(a, b) - readme.st_blocks * 512
    assert reclaimable([fa, fb, fc])[1] == du(a, b, c)
    assert reclaimable([fc])[1] == du(c) - readme.st_blocks * 512


# --- removal --------------------------------------------------------------------------------------


def _verdicts(real_store: RealStore, env, names: list[str], action: str = "remove"):
    stores = stores_from_paths([str(real_store.path)])
    entries = {e.name: e for e in scan(stores, env).entries}
    return stores, [
        clean.Verdict(entries[n], action, ["test"])  # type: ignore[arg-type]
        for n in names
    ]


def test_remove_records_and_rechecks(real_store: RealStore, env) -> None:
    a = real_store.add("a", files("a"))
    b = real_store.add("b", files("b"))
    stores, verdicts = _verdicts(real_store, env, [a.name, b.name])
    log = Path(env["XDG_STATE_HOME"]) / "log.jsonl"
    pin_file = Path(env["XDG_STATE_HOME"]) / "pins.json"
    p = pins.load(str(pin_file))
    pins.add(p, "entry", b.name)  # pinned after the candidates were chosen
    p.save()
    recheck = clean.recheck_for(
        stores, [v.entry for v in verdicts], env, homes=[], pins_file=str(pin_file)
    )
    outcomes = clean.remove(verdicts, recheck, log_path=str(log), env=env)
    assert [o.action for o in outcomes] == ["removed", "skipped"]
    assert "pinned" in outcomes[1].message
    assert not a.exists() and b.exists()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    # The intent first (before anything changed), then the outcome; the skipped one only once.
    assert [r["action"] for r in records] == ["removing", "removed", "skipped"]
    assert records[0]["entry"] == a.name and "about to be" in records[0]["detail"]
    assert records[1]["entry"] == a.name
    assert records[1]["reasons"] == ["test"] and records[1]["size"] > 0 and records[1]["user"]
    assert actionlog.read(str(log))[0].entry == a.name


def test_interrupted_removal_leaves_no_partial_entry(real_store: RealStore, env) -> None:
    a = real_store.add("a", files("a", {"deep/er/file": "x"}))
    b = real_store.add("b", files("b"))
    _stores, verdicts = _verdicts(real_store, env, [a.name, b.name])
    calls = {"n": 0}

    def flaky(verdict: clean.Verdict) -> str:
        if verdict.entry.name != a.name:
            return clean._act_here(verdict)

        def step(event: str, _name: str) -> None:
            calls["n"] += 1
            if event == "unlink" and calls["n"] > 3:
                raise OSError(5, "Input/output error (injected)")

        root_helper.remove_implementation(os.path.realpath(real_store.path), a.name, on_step=step)
        return ""

    outcomes = clean.remove(verdicts, None, log_path=str(real_store.home / "l"), here=flaky)
    assert outcomes[0].action == "failed" and "injected" in outcomes[0].message
    assert outcomes[1].action == "removed"  # the rest carry on
    assert not a.exists() and not b.exists()
    left = [n for n in os.listdir(real_store.path) if n.startswith("tmp-remove-")]
    assert len(left) == 1  # the half-removed tree is under a temporary name only
    # and the next clean-up offers to finish the job
    result = survey(real_store, env, processes=False)
    assert verdict_of(result, left[0]).action == "remove"


def test_symlink_entry_is_unlinked_and_its_target_survives(
    real_store: RealStore, env, tmp_path: Path
) -> None:
    real_store.add("a", files("a"))
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "precious").write_text("keep me")
    fake = real_store.path / ("sha256new_" + "A" * 52)
    fake.symlink_to(outside)
    result = survey(real_store, env, processes=False)
    v = verdict_of(result, fake.name)
    assert v.action == "quarantine" and "suspicious" in v.reasons[0]
    v.action = "remove"
    [outcome] = clean.remove([v], None, log_path=str(tmp_path / "log"))
    assert outcome.ok and not os.path.lexists(fake)
    assert (outside / "sub" / "precious").read_text() == "keep me"


def test_quarantine_moves_a_suspicious_entry_out(real_store: RealStore, env, tmp_path) -> None:
    real_store.add("a", files("a"))
    fake = real_store.path / ("sha256new_" + "B" * 52)
    fake.symlink_to(tmp_path)
    result = survey(real_store, env, processes=False)
    [outcome] = clean.remove([verdict_of(result, fake.name)], None, log_path=str(tmp_path / "l"))
    assert outcome.action == "quarantined" and not os.path.lexists(fake)
    qdir = Path(root_helper.quarantine_dir_for(os.path.realpath(real_store.path)))
    assert [p.name.split(".")[0] for p in qdir.iterdir()] == [fake.name]
    assert (qdir.stat().st_mode & 0o777) == 0o700


def test_swapped_subdirectory_mid_removal_deletes_nothing_outside(
    real_store: RealStore, env, tmp_path: Path
) -> None:
    a = real_store.add("a", files("a", {"zz/inner/file": "x", "aa/file": "y"}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_text("must survive")
    (outside / "inner").mkdir()
    (outside / "inner" / "file").write_text("must survive too")
    _stores, [verdict] = _verdicts(real_store, env, [a.name])
    swapped = {"done": False}

    def swap(verdict: clean.Verdict) -> str:
        store = os.path.realpath(real_store.path)

        def step(event: str, name: str) -> None:
            # Once the entry is renamed aside, swap its "zz" directory for a symlink outside.
            if event == "enter" and name != "zz" and not swapped["done"]:
                temp = next(n for n in os.listdir(store) if n.startswith("tmp-remove-"))
                zz = os.path.join(store, temp, "zz")
                if os.path.isdir(zz) and not os.path.islink(zz):
                    os.chmod(os.path.join(store, temp), 0o755)
                    os.rename(zz, os.path.join(store, "moved-away"))
                    os.symlink(outside, zz)
                    swapped["done"] = True

        root_helper.remove_implementation(store, verdict.entry.name, on_step=step)
        return ""

    [outcome] = clean.remove([verdict], None, log_path=str(tmp_path / "l"), here=swap)
    assert swapped["done"] and outcome.ok, outcome.message
    assert (outside / "file").read_text() == "must survive"
    assert (outside / "inner" / "file").read_text() == "must survive too"
    assert not a.exists()


def test_system_store_goes_through_the_helper_verb_on_a_fake_root(
    real_store: RealStore, env, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(root_helper, "_ALLOW_REAL_ROOT", False)
    src = real_store.add("a", files("a"))
    other = real_store.add("b", files("b"))
    root = tmp_path / "root"
    system = root / "var/cache/0install.net/implementations"
    system.mkdir(parents=True)
    for entry in (src, other):
        subprocess.run(["cp", "-a", str(entry), str(system)], check=True)
    store = Store(str(system), "system", "--store")
    entries = {e.name: e for e in scan([store], env).entries}
    verdicts = [clean.Verdict(entries[n], "remove", ["old"]) for n in (src.name, other.name)]
    suspicious = system / ("sha256new_" + "C" * 52)
    suspicious.symlink_to(tmp_path)
    planted_entry = next(e for e in scan([store], env).entries if e.name == suspicious.name)
    planted = clean.Verdict(planted_entry, "quarantine", ["suspicious"])
    outcomes = clean.remove(
        verdicts[:1] + [planted],
        None,
        log_path=str(tmp_path / "log"),
        may_act_here=lambda e: False,
        privileged=lambda v: clean.act_privileged(v, str(root)),
    )
    assert [o.action for o in outcomes] == ["removed", "quarantined"], outcomes
    assert outcomes[0].message.startswith("removed ")  # the helper verb's own summary
    assert not (system / src.name).exists() and not os.path.lexists(suspicious)
    assert (root / "var/cache/0install.net/zeroinstall-admin-quarantine").is_dir()

    # A dismissed authorisation is a clear message; the entry stays and the log says so.
    from core import elevate

    def dismissed(verb, *args, root=None):
        return elevate.interpret(verb, tuple(args), 126, "", "Error executing command")

    monkeypatch.setattr(elevate, "run_helper", dismissed)
    [outcome] = clean.remove(
        verdicts[1:], None, log_path=str(tmp_path / "log"), may_act_here=lambda e: False
    )
    assert outcome.action == "failed"
    assert outcome.message == "authentication was dismissed: nothing was changed"
    assert (system / other.name).exists()
    records = [json.loads(x) for x in (tmp_path / "log").read_text().splitlines()]
    assert [r["action"] for r in records if not r["action"].endswith("ing")] == [
        "removed",
        "quarantined",
        "failed",
    ]


def test_can_change_here_knows_the_owner(real_store: RealStore, env) -> None:
    a = real_store.add("a", files("a"))
    entry = next(e for e in scan(stores_from_paths([str(real_store.path)]), env).entries)
    assert entry.name == a.name
    assert clean.can_change_here(entry)  # root, or the owner of a writable store


def test_survey_can_be_cancelled(real_store: RealStore, env) -> None:
    real_store.add("a", files("a"))
    cancel = threading.Event()
    cancel.set()
    result = survey(real_store, env, cancel=cancel, processes=False)
    assert all(v.footprint is None for v in result.verdicts)


def test_real_0install_still_verifies_what_is_kept(real_store: RealStore, env) -> None:
    a = real_store.add("a", files("a"))
    b = real_store.add("b", files("b"))
    _stores, verdicts = _verdicts(real_store, env, [a.name])
    clean.remove(verdicts, None, log_path=str(real_store.home / "l"))
    run_0install("store", "verify", str(b), b.name, env=env)


def test_shared_store_candidates_need_every_users_apps(
    real_store: RealStore, env, tmp_path: Path
) -> None:
    """0install for Windows' `update-all --clean` removes what other users still need: here an
    unused entry of a shared store is only pre-chosen when every user's apps were read."""
    old = real_store.add("old", files("old"))
    set_atime(old, time.time() - 90 * DAY)
    shared = [Store(str(real_store.path), "system", "--store")]
    pin_file = str(Path(env["XDG_STATE_HOME"]) / "pins.json")
    blind = clean.survey(shared, env, homes=[], pins_file=pin_file, processes=False)
    [v] = blind.verdicts
    assert v.action == "remove" and "other users' apps could not all be read" in v.doubt
    home = tmp_path / "bob"
    (home / ".config" / "0install.net" / "apps").mkdir(parents=True)
    seeing = clean.survey(shared, env, homes=[str(home)], pins_file=pin_file, processes=False)
    [v] = seeing.verdicts
    assert v.action == "remove" and not v.doubt


def test_0install_itself_and_this_app_are_kept(real_store: RealStore, env) -> None:
    runner = real_store.add("zi-old", files("zi-old"))
    newest = real_store.add("zi-new", files("zi-new"))
    d = real_store.digests
    write_feed(
        env,
        {d["zi-old"]: "2.17", d["zi-new"]: "2.18"},
        url=evidence.ZEROINSTALL_FEEDS[0],
        name="0install",
    )
    stores = stores_from_paths([str(real_store.path)])
    entries = scan(stores, env).entries
    own = evidence.own_entries(entries, [("0install itself", str(runner / "bin" / "run"))])
    by_name = {e.name: e for e in entries}
    assert own[evidence.entry_key(by_name[runner.name])] == [
        f"the implementation of 0install itself ({runner / 'bin' / 'run'})"
    ]
    assert own[evidence.entry_key(by_name[newest.name])] == [
        "the newest cached version of 0install itself"
    ]
    # this app's own code and Python are not in that store
    ev = evidence.collect(stores, entries, pins=None, env=env, homes=[], processes=False)
    assert ev.own.get(evidence.entry_key(by_name[runner.name])) is None


def test_a_long_removal_looks_again_before_each_entry(
    real_store: RealStore, env, monkeypatch
) -> None:
    a = real_store.add("a", files("a"))
    b = real_store.add("b", files("b"))
    stores, verdicts = _verdicts(real_store, env, [a.name, b.name])
    calls: list[int] = []
    p = pins.Pins(str(Path(env["XDG_STATE_HOME"]) / "pins.json"))

    def recheck() -> evidence.Evidence:
        calls.append(1)
        if len(calls) == 2:  # b gets pinned while a is being removed
            pins.add(p, "entry", b.name)
        return evidence.Evidence(pins=p)

    monkeypatch.setattr(clean, "RECHECK_S", -1.0)  # every check counts as stale
    outcomes = clean.remove(verdicts, recheck, log_path=str(real_store.home / "l"))
    assert len(calls) == 3
    assert [o.action for o in outcomes] == ["removed", "skipped"]
    assert b.exists() and not a.exists()


def test_the_scope_note_never_tells_root_to_run_as_root(monkeypatch) -> None:
    """Root in an environment of its own (the demo) does not read the homes; the note must not
    tell it to become root. An ordinary user is told that root sees everyone's apps."""
    no_vms = lambda: ({}, None)  # noqa: E731
    env = {"HOME": "/nonexistent"}
    monkeypatch.setattr(evidence.os, "geteuid", lambda: 0)
    ev = evidence.collect([], [], pins=None, env=env, processes=False, vms=no_vms)
    assert "other users' apps are not known" in ev.apps_scope and "run as root" not in ev.apps_scope
    monkeypatch.setattr(evidence.os, "geteuid", lambda: 1000)
    ev = evidence.collect([], [], pins=None, env=env, processes=False, vms=no_vms)
    assert "run as root to read every home" in ev.apps_scope


def test_delete_keeps_what_is_used_and_deletes_the_rest_whatever_clean_would_do(
    real_store: RealStore, env
) -> None:
    """core.delete, behind the window's Delete and the command line's delete: an entry something
    uses or pins is kept with the reasons; a fresh temporary directory (which a clean-up leaves
    alone) and an entry used a moment ago go; the space is what removing them gives back."""
    from core import delete

    used = real_store.add("used", files("used"))
    pinned = real_store.add("pinned", files("pinned"))
    fresh = real_store.add("fresh", files("fresh"))
    write_app(env, "hello", used.name)
    pins_file = str(Path(env["XDG_STATE_HOME"]) / "pins.json")
    p = pins.load(pins_file)
    pins.add(p, "entry", pinned.name)
    p.save()
    (real_store.path / "tmp-fresh1").mkdir()
    stores = stores_from_paths([str(real_store.path)])
    entries = {e.name: e for e in scan(stores, env).entries}
    chosen = [entries[n] for n in (used.name, pinned.name, fresh.name, "tmp-fresh1")]

    plan = delete.check(chosen, env, homes=[], pins_file=pins_file)

    assert [(e.name, r) for e, r in plan.kept] == [
        (used.name, ["selected by the 0install app hello"]),
        (pinned.name, ["pinned (this entry)"]),
    ]
    assert [v.entry.name for v in plan.allowed] == [fresh.name, "tmp-fresh1"]
    assert all(v.action == "remove" and v.reasons[0] == "deleted on request" for v in plan.allowed)
    assert "a 0install may still fill it" in plan.allowed[1].reasons[1]  # what clean would say
    assert plan.disk == reclaimable(v.footprint for v in plan.allowed if v.footprint)[1] > 0
    assert plan.question().startswith("Delete 2 entries, freeing ")
    assert "2 selected entries are kept" in plan.note() and "password" not in plan.note()
    outcomes = clean.remove(plan.allowed, plan.recheck, log_path=str(real_store.home / "log"))
    assert [o.action for o in outcomes] == ["removed", "removed"]
    assert not fresh.exists() and used.exists() and pinned.exists()


def test_set_pinned_is_the_one_way_pins_change(tmp_path: Path) -> None:
    """The window's Pin/Unpin and the pin/unpin commands: only real changes are saved and told."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    a, b = "sha256new_" + "A" * 52, "sha256new_" + "B" * 52
    current, changed = pins.set_pinned([("entry", a)], True, env)
    assert changed == [("entry", a)]
    current, changed = pins.set_pinned([("entry", a), ("entry", b)], True, env)
    assert changed == [("entry", b)]  # a was pinned already
    assert pins.load(pins.pins_path(env)).entries == [a, b]  # saved
    current, changed = pins.set_pinned([("entry", a), ("entry", a)], False, env)
    assert changed == [("entry", a)] and current.entries == [b]
    assert pins.load(current.path).entries == [b]
    with open(current.path, "w") as f:
        f.write("{not json")
    with pytest.raises(pins.PinError, match="cannot read the pins file"):
        pins.set_pinned([("entry", a)], True, env)
