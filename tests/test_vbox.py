"""core.vboxmanage, core.vboxmanage_output and core.vbox_vms against the stand-in VBoxManage:
listing, parsing, sharing, errors, timeouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import vbox_vms, vboxmanage, vboxmanage_output, vm_share
from tests.vbox_fixtures import RUNNING, SAVED, STOPPED, UUIDS, FakeVBox

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def manager(fake: FakeVBox) -> vboxmanage.VBoxManage:
    return vboxmanage.VBoxManage(fake.exe, timeout=20, env={**os.environ, **fake.env})


# --- finding -------------------------------------------------------------------------------------


def test_find_prefers_the_environment_variable(fake: FakeVBox, tmp_path: Path) -> None:
    other = tmp_path / "bin"
    other.mkdir()
    on_path = other / "VBoxManage"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert vboxmanage.find_vboxmanage({"VBOX_MANAGE": fake.exe, "PATH": str(other)}) == fake.exe
    assert vboxmanage.find_vboxmanage({"PATH": str(other)}) == str(on_path)


def test_find_returns_none_without_virtualbox(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(vboxmanage, "UNIX_LOCATIONS", [str(tmp_path / "opt" / "VBoxManage")])
    assert (
        vboxmanage.find_vboxmanage({"PATH": str(tmp_path), "VBOX_MANAGE": str(tmp_path / "no")})
        is None
    )


def test_windows_locations_come_from_the_installer_variables() -> None:
    paths = vboxmanage.candidate_paths(
        {"VBOX_MSI_INSTALL_PATH": r"D:\VB;E:\Other", "ProgramFiles": r"C:\PF", "PATH": ""},
        platform="win32",
    )
    assert paths[:2] == [
        os.path.join(r"D:\VB", "VBoxManage.exe"),
        os.path.join(r"E:\Other", "VBoxManage.exe"),
    ]
    assert paths[-1] == os.path.join(r"C:\PF", "Oracle", "VirtualBox", "VBoxManage.exe")


# --- parsing -------------------------------------------------------------------------------------


def test_list_keeps_names_with_quotes_spaces_and_non_ascii() -> None:
    text = (
        '"web "quoted" server" {1111-aa}\n"Bücher – 1" {2222-bb}\n'
        '"<inaccessible>" {3333-cc}\ngarbage\n'
    )
    assert vboxmanage_output.parse_list(text) == [
        ('web "quoted" server', "1111-aa"),
        ("Bücher – 1", "2222-bb"),
        ("<inaccessible>", "3333-cc"),
    ]


def test_machinereadable_unescapes_and_skips_what_it_does_not_understand() -> None:
    text = "\n".join(  # noqa: FLY002 - one line per row reads best
        [
            'name="a \\"b\\" c:\\\\d"',
            "Encryption:     disabled",
            "memory=4096",
            '"SATA-0-0"="/path.vdi"',
            "VRDEClients==0",
            'VideoMode="1024,768,32"@0,0 1',
            " rec_screen0",
            "GuestAdditionsFacility_VirtualBox Base Driver=50,1671300000000",
            'VMState="running"',
        ]
    )
    info = vboxmanage_output.parse_machinereadable(text)
    assert info["name"] == 'a "b" c:\\d'
    assert info["memory"] == "4096"
    assert info["SATA-0-0"] == "/path.vdi"
    assert info["VMState"] == "running"
    assert "VRDEClients" not in info and "VideoMode" not in info and "Encryption:" not in info
    assert "GuestAdditionsFacility_VirtualBox Base Driver" not in info


def test_human_folders_give_access_auto_mount_and_mount_point() -> None:
    text = (
        "Name:                        x\n"
        + "Shared folders:".ljust(28)
        + "\n\n"
        + "Name: 'ZeroInstall', Host path: '/a/it's' (machine mapping), readonly, auto-mount, "
        "mount-point: '/var/cache/0install.net/implementations'\n"
        "Name: 't', Host path: '/b' (transient mapping), writable, symlink-policy: forbidden\n"
        "\nGuest Facilities:\n"
    )
    folders = vboxmanage_output.parse_human_folders(text)
    assert [
        (f.name, f.host_path, f.transient, f.readonly, f.automount, f.mount_point) for f in folders
    ] == [
        ("ZeroInstall", "/a/it's", False, True, True, "/var/cache/0install.net/implementations"),
        ("t", "/b", True, False, False, ""),
    ]
    assert vboxmanage_output.parse_human_folders("Shared folders:".ljust(28) + "<none>\n") == []


@pytest.mark.parametrize(
    ("text", "parsed", "old"),
    [
        ("7.0.10 r158379", (7, 0, 10), False),
        ("4.1.2_ubuntu", (4, 1, 2), True),
        ("4.0.4", (4, 0, 4), True),
        ("4.2.0", (4, 2, 0), False),
        ("", None, False),
        ("junk", None, False),
    ],
)
def test_guest_additions_versions(text: str, parsed, old: bool) -> None:
    assert vboxmanage_output.parse_ga_version(text) == parsed
    assert vbox_vms.ga_is_old(text) is old


# --- listing the stand-in's machines -------------------------------------------------------------


def test_list_vms_reads_state_os_additions_and_folders(
    manager: vboxmanage.VBoxManage, cache: Path
) -> None:
    vms = {vm.name: vm for vm in vbox_vms.list_vms(manager)}
    assert set(vms) == {RUNNING, STOPPED, SAVED}
    running, stopped, saved = vms[RUNNING], vms[STOPPED], vms[SAVED]
    assert (running.state, running.running, running.os_type) == ("running", True, "Ubuntu (64-bit)")
    assert running.ga_version == "7.0.10" and not running.ga_old
    assert (stopped.state, stopped.running, stopped.ga_version, stopped.ga_old) == (
        "poweroff",
        False,
        "4.1.2",
        True,
    )
    assert saved.saved and saved.ga_version == "" and not saved.ga_old
    zi = running.folder("ZeroInstall")
    assert zi is not None
    assert (zi.host_path, zi.transient, zi.readonly, zi.automount, zi.symlinks) == (
        str(cache),
        False,
        True,
        True,
        False,
    )
    assert zi.mount_point == "/var/cache/0install.net/implementations"
    scratch = running.folder("scratch")
    assert scratch is not None
    assert (scratch.host_path, scratch.transient, scratch.readonly, scratch.symlinks) == (
        "/tmp/it's here",
        True,
        False,
        True,
    )
    assert vm_share.is_cache_path(zi.host_path) and not vm_share.is_cache_path(scratch.host_path)


def test_calls_name_vms_by_uuid_as_single_arguments(
    manager: vboxmanage.VBoxManage, fake: FakeVBox
) -> None:
    vbox_vms.list_vms(manager)
    calls = fake.calls()
    assert ["showvminfo", UUIDS[RUNNING], "--machinereadable"] in calls
    assert ["guestproperty", "get", UUIDS[STOPPED], "/VirtualBox/GuestAdd/Version"] in calls


def test_stores_shared_with_running_vms(fake: FakeVBox, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("VBOX_MANAGE", fake.exe)
    monkeypatch.setenv("FAKE_VBOX_STATE", str(fake.state_file))
    shared = vbox_vms.stores_shared_with_running_vms(timeout=20)
    assert shared == {str(cache): [RUNNING], "/tmp/it's here": [RUNNING]}


def test_stores_shared_is_empty_without_virtualbox_or_when_it_fails(
    fake: FakeVBox, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("VBOX_MANAGE", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(vboxmanage, "UNIX_LOCATIONS", [])
    assert vboxmanage.find_vboxmanage() is None
    assert vbox_vms.stores_shared_with_running_vms() == {}
    monkeypatch.setenv("VBOX_MANAGE", fake.exe)
    monkeypatch.delenv("FAKE_VBOX_STATE", raising=False)  # the stand-in then fails every call
    assert vbox_vms.stores_shared_with_running_vms(timeout=20) == {}


# --- changing shares ------------------------------------------------------------------------------


def _vm(manager, name):
    return next(vm for vm in vbox_vms.list_vms(manager) if vm.name == name)


def test_share_read_only_permanent_with_a_stopped_vm(manager, fake, cache) -> None:
    vm = _vm(manager, STOPPED)
    request = vm_share.ShareRequest(host_path=str(cache), automount=True, mount_point="/mnt/zi")
    assert request.check() == ""
    commands = vm_share.share_commands(vm, request)
    assert commands == [
        [
            "sharedfolder",
            "add",
            UUIDS[STOPPED],
            "--name",
            "ZeroInstall",
            "--hostpath",
            str(cache),
            "--readonly",
            "--automount",
            "--auto-mount-point",
            "/mnt/zi",
        ]
    ]
    results = vm_share.run_commands(manager, vm, commands)
    assert [r.ok for r in results] == [True]
    folder = _vm(manager, STOPPED).folder("ZeroInstall")
    assert folder is not None and (folder.readonly, folder.transient, folder.automount) == (
        True,
        False,
        True,
    )
    assert any(
        "older than 4.2.0" in w and "Incorrect manifest -- archive is corrupted" in w
        for w in vm_share.share_warnings(vm, request)
    )


def test_share_with_a_running_vm_is_transient(manager, fake, cache) -> None:
    vm = _vm(manager, RUNNING)
    request = vm_share.ShareRequest(host_path=str(cache), name="ZI2", symlinks=True, readonly=False)
    commands = vm_share.share_commands(vm, request)
    assert "--transient" in commands[0] and "--readonly" not in commands[0]
    assert commands[1] == [
        "setextradata",
        UUIDS[RUNNING],
        "VBoxInternal2/SharedFoldersEnableSymlinksCreate/ZI2",
        "1",
    ]
    assert all(r.ok for r in vm_share.run_commands(manager, vm, commands))
    folder = _vm(manager, RUNNING).folder("ZI2")
    assert folder is not None and folder.transient and folder.symlinks and folder.readonly is False
    warnings = " ".join(vm_share.general_warnings(request))
    assert "plant symlinks" in warnings and "writable" in warnings


def test_permanent_share_with_a_running_vm_fails_with_the_lock_error(manager, cache) -> None:
    vm = _vm(manager, RUNNING)
    result = vm_share.run_commands(
        manager,
        vm,
        vm_share.share_commands(vm, vm_share.ShareRequest(str(cache), name="P", transient=False)),
    )[0]
    assert not result.ok and result.returncode == 1
    assert (
        result.error_line
        == f"The machine '{RUNNING}' is already locked for a session (or being unlocked)"
    )
    assert result.code == "VBOX_E_INVALID_OBJECT_STATE"
    assert "transient" in result.explanation


def test_saved_vm_and_transient_on_stopped_vm_are_explained(manager, cache) -> None:
    saved = _vm(manager, SAVED)
    result = vm_share.run_commands(
        manager, saved, vm_share.share_commands(saved, vm_share.ShareRequest(str(cache)))
    )[0]
    assert result.error_line == "The machine is not mutable or running (state is Saved)"
    assert "saved" in result.explanation
    stopped = _vm(manager, STOPPED)
    result = vm_share.run_commands(
        manager,
        stopped,
        vm_share.share_commands(stopped, vm_share.ShareRequest(str(cache), transient=True)),
    )[0]
    assert result.error_line == f"Machine '{STOPPED}' is not currently running."
    assert "running" in result.explanation


def test_duplicate_missing_path_and_file_path_errors(manager, cache, tmp_path) -> None:
    vm = _vm(manager, RUNNING)
    dup = vm_share.run_commands(
        manager,
        vm,
        [
            [
                "sharedfolder",
                "add",
                vm.ref,
                "--name",
                "scratch",
                "--hostpath",
                str(cache),
                "--transient",
            ]
        ],
    )[0]
    assert (
        dup.error_line == "Shared folder named 'scratch' already exists"
        and dup.code == "VBOX_E_OBJECT_IN_USE"
    )
    assert "already has a shared folder" in dup.explanation
    stopped = _vm(manager, STOPPED)
    missing = vm_share.run_commands(
        manager,
        stopped,
        vm_share.share_commands(stopped, vm_share.ShareRequest(str(tmp_path / "nope"))),
    )[0]
    assert (
        missing.error_line.endswith("VERR_FILE_NOT_FOUND")
        and "does not exist" in missing.explanation
    )
    a_file = tmp_path / "file"
    a_file.write_text("x")
    not_dir = vm_share.run_commands(
        manager, stopped, vm_share.share_commands(stopped, vm_share.ShareRequest(str(a_file)))
    )[0]
    assert not_dir.error_line == f"Shared folder path '{a_file}' is not a directory"
    assert "not a folder" in not_dir.explanation


def test_unknown_vm_and_bad_name(manager) -> None:
    result = manager.run(["showvminfo", "no such vm", "--machinereadable"])
    assert result.returncode == 1
    assert result.error_line == "Could not find a registered machine named 'no such vm'"
    assert result.code == "VBOX_E_OBJECT_NOT_FOUND" and "no VM by that name" in result.explanation
    bad = manager.run(["sharedfolder", "add", UUIDS[STOPPED], "--name", "a b", "--hostpath", "/"])
    assert (
        bad.returncode == 2 and bad.error_line == "Invalid shared folder name 'a b': contains space"
    )
    assert (
        vm_share.ShareRequest("/", name="a b")
        .check()
        .startswith("the share name 'a b' contains a space")
    )


def test_unshare_removes_the_folder_and_its_symlink_setting(manager, fake) -> None:
    vm = _vm(manager, RUNNING)
    commands = vm_share.unshare_commands(vm, "scratch")
    assert commands == [
        ["sharedfolder", "remove", UUIDS[RUNNING], "--name", "scratch", "--transient"],
        ["setextradata", UUIDS[RUNNING], "VBoxInternal2/SharedFoldersEnableSymlinksCreate/scratch"],
    ]
    assert all(r.ok for r in vm_share.run_commands(manager, vm, commands))
    after = _vm(manager, RUNNING)
    assert after.folder("scratch") is None
    assert "VBoxInternal2/SharedFoldersEnableSymlinksCreate/scratch" not in fake.vm(RUNNING).get(
        "extradata", {}
    )
    again = vm_share.run_commands(
        manager, after, vm_share.unshare_commands(after, "scratch", transient=True)
    )[0]
    assert again.error_line == "Could not find a shared folder named 'scratch'"


def test_a_hanging_vboxmanage_is_killed_after_the_timeout(fake: FakeVBox) -> None:
    fake.set(hang=["showvminfo"])
    manager = vboxmanage.VBoxManage(fake.exe, timeout=1.0, env={**os.environ, **fake.env})
    started = time.monotonic()
    vms = vbox_vms.list_vms(manager)
    elapsed = time.monotonic() - started
    assert elapsed < 3 * 1.0 + 5  # one timeout per VM, not forever
    assert all(vm.error.startswith("VBoxManage did not answer in time") for vm in vms)
    assert len(vms) == 3
    result = manager.run(["showvminfo", UUIDS[RUNNING]], timeout=0.5)
    assert result.timed_out and result.returncode is None and not result.ok
    assert "stuck" in result.explanation


def test_a_vboxmanage_that_cannot_start_is_a_result(tmp_path: Path) -> None:
    result = vboxmanage.run(str(tmp_path / "missing"), ["list", "vms"], timeout=5)
    assert not result.ok and result.failure.startswith("cannot run")


def test_guest_instructions_for_a_vm_without_shares() -> None:
    from core import vm_guest

    vm = vbox_vms.VM("deb", "u", state="poweroff", os_type="Debian (64-bit)")
    text = vm_guest.guest_text(vm)
    assert "deb shares no folder yet" in text
    assert "sudo mount -t vboxsf -o ro ZeroInstall /var/cache/0install.net/implementations" in text
    assert (
        "ZeroInstall /var/cache/0install.net/implementations vboxsf ro,_netdev,nofail 0 0" in text
    )
    assert "vboxsf group" not in text  # not auto-mounted
    assert "`0install store optimise` cannot work" in text and "no hard links" in text


def test_cancel_kills_a_running_call_and_refuses_new_ones(fake: FakeVBox) -> None:
    import threading

    fake.set(hang=True)
    cancel = threading.Event()
    manager = vboxmanage.VBoxManage(
        fake.exe, timeout=60, env={**os.environ, **fake.env}, cancel=cancel
    )
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.monotonic()
    result = manager.run(["list", "vms"])
    assert time.monotonic() - started < 5
    assert result.failure == "cancelled" and not result.ok and not result.timed_out
    assert manager.run(["list", "vms"]).failure == "cancelled before VBoxManage ran"
    assert len(fake.calls()) == 1


def test_stores_shared_keeps_to_its_time_budget(fake: FakeVBox, monkeypatch) -> None:
    monkeypatch.setenv("VBOX_MANAGE", fake.exe)
    monkeypatch.setenv("FAKE_VBOX_STATE", str(fake.state_file))
    fake.set(hang=["showvminfo"])
    started = time.monotonic()
    assert vbox_vms.stores_shared_with_running_vms(timeout=1.5) == {}
    assert time.monotonic() - started < 1.5 + 5


def test_inaccessible_vm_is_listed_with_its_problem(fake: FakeVBox, manager) -> None:
    state = fake.state()
    state["vms"][2]["inaccessible"] = True
    fake.state_file.write_text(json.dumps(state))
    vms = vbox_vms.list_vms(manager)
    assert vms[2].inaccessible and vms[2].name == "<inaccessible>"
    assert "inaccessible" in vms[2].error
    assert [vm.name for vm in vms[:2]] == [RUNNING, STOPPED]


def test_human_folders_in_separate_groups() -> None:
    text = (
        "Shared folders:\n\n"
        "Name: 'a', Host path: '/a' (machine mapping), writable\n\n"
        "Name: 'b', Host path: '/b' (transient mapping), readonly\n"
        "Name: 'g', Host path: '/g' (global mapping), readonly\n"
    )
    assert [(f.name, f.transient) for f in vboxmanage_output.parse_human_folders(text)] == [
        ("a", False),
        ("b", True),
    ]


def test_a_hung_vboxmanage_does_not_outlive_the_process_that_started_it(fake: FakeVBox) -> None:
    """VBoxManage runs in a session of its own; a process that exits while a call hangs (a window
    closed mid-call) must not leave it behind."""
    import psutil

    fake.set(hang=True)
    code = (
        "import os, sys, threading, time\n"
        "from core import vboxmanage\n"
        "threading.Thread(target=vboxmanage.run, args=(sys.argv[1], ['list', 'vms'], 600),\n"
        "                 daemon=True).start()\n"
        "log = sys.argv[2] + '.log'\n"
        "while not (os.path.exists(log) and open(log).read()): time.sleep(0.02)\n"
    )
    env = {**os.environ, **fake.env}
    proc = subprocess.run(
        [sys.executable, "-c", code, fake.exe, str(fake.state_file)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert fake.calls() == [["list", "vms"]]
    left = []
    for p in psutil.process_iter(["cmdline"]):
        if fake.exe in (p.info["cmdline"] or []):
            left.append(p)
    gone, alive = psutil.wait_procs(left, timeout=5)
    for p in alive:
        p.kill()
    assert not alive, [p.info["cmdline"] for p in alive]
