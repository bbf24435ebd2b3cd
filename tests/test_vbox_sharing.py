"""Sharing decisions in core (one for the window and the command line), reading VMs side by side,
the per-VM guest text, and VBoxManage ending with the command, against the stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from core import vbox_vms, vboxmanage, vboxmanage_output, vm_guest, vm_share
from tests.vbox_fixtures import RUNNING, SAVED, STOPPED, UUIDS, FakeVBox

REPO = Path(__file__).resolve().parent.parent
CACHE = vm_share.GUEST_CACHE


@pytest.fixture
def manager(fake: FakeVBox) -> vboxmanage.VBoxManage:
    return vboxmanage.VBoxManage(fake.exe, timeout=20, env={**os.environ, **fake.env})


def _vm(manager: vboxmanage.VBoxManage, name: str) -> vbox_vms.VM:
    return vbox_vms.read_vm(manager, UUIDS[name], "")


def _stand_ins(fake: FakeVBox) -> list[psutil.Process]:
    """The stand-in's processes still running, after giving killed ones a moment to go."""
    found = [p for p in psutil.process_iter(["cmdline"]) if fake.exe in (p.info["cmdline"] or [])]
    _gone, alive = psutil.wait_procs(found, timeout=5)
    for p in alive:
        p.kill()
    return alive


# --- one decision: what may be shared -------------------------------------------------------------


def test_a_name_in_use_is_refused_permanent_or_transient(manager, cache) -> None:
    running = _vm(manager, RUNNING)
    for name, words in (
        ("ZeroInstall", "permanent, read-only"),
        ("scratch", "transient, writable"),
    ):
        problem = vm_share.share_problem(running, vm_share.ShareRequest(str(cache), name=name))
        assert f"already has a share named '{name}' ({words}" in problem
        assert "remove it first or choose another name" in problem
    assert vm_share.share_problem(running, vm_share.ShareRequest(str(cache), name="Other")) == ""


def test_saved_unknown_and_not_running_vms_are_refused(manager, cache) -> None:
    request = vm_share.ShareRequest(str(cache))
    assert "is saved (suspended)" in vm_share.share_problem(_vm(manager, SAVED), request)
    stopped = _vm(manager, STOPPED)
    assert vm_share.share_problem(stopped, request) == ""
    transient = vm_share.ShareRequest(str(cache), transient=True)
    assert "is not running" in vm_share.share_problem(stopped, transient)
    unknown = vbox_vms.VM(STOPPED, UUIDS[STOPPED], error="VBoxManage did not answer in time")
    assert not unknown.known and unknown.state_text == "unknown"
    assert "its state is unknown (VBoxManage did not answer" in vm_share.share_problem(
        unknown, request
    )
    assert "reading" in vbox_vms.VM("x", "u", reading=True).state_text


def test_symlinks_never_stay_on_for_a_read_only_share(manager, fake, cache) -> None:
    assert "writable share only" in vm_share.ShareRequest(str(cache), symlinks=True).check()
    # A setting left over for the name (by hand) is switched off when a read-only share takes it.
    state = fake.state()
    state["vms"][1]["extradata"] = {vbox_vms.SYMLINK_KEY + "ZeroInstall": "1"}
    fake.state_file.write_text(json.dumps(state))
    stopped = _vm(manager, STOPPED)
    assert stopped.symlink_names == {"ZeroInstall"}
    commands = vm_share.share_commands(stopped, vm_share.ShareRequest(str(cache)))
    assert commands[-1] == ["setextradata", UUIDS[STOPPED], vbox_vms.SYMLINK_KEY + "ZeroInstall"]
    assert all(r.ok for r in vm_share.run_commands(manager, stopped, commands))
    assert fake.vm(STOPPED)["extradata"] == {}
    writable = vm_share.ShareRequest(str(cache), name="W", readonly=False, symlinks=True)
    assert vm_share.share_commands(stopped, writable)[-1][-1] == "1"


def test_removing_a_share_removes_its_symlink_setting(manager, fake, cache) -> None:
    # A permanent and a transient share of one name, the setting on: removing one takes the
    # setting with it (it is per name, and would cover the one that stays).
    state = fake.state()
    vm = state["vms"][0]
    vm["folders"].append(
        {"name": "scratch", "path": str(cache), "transient": False, "readonly": True}
    )
    fake.state_file.write_text(json.dumps(state))
    running = _vm(manager, RUNNING)
    commands = vm_share.unshare_commands(running, "scratch", transient=True)
    assert commands[-1] == ["setextradata", UUIDS[RUNNING], vbox_vms.SYMLINK_KEY + "scratch"]
    assert all(r.ok for r in vm_share.run_commands(manager, running, commands))
    assert vbox_vms.SYMLINK_KEY + "scratch" not in fake.vm(RUNNING).get("extradata", {})
    assert not _vm(manager, RUNNING).folder("scratch").symlinks


def test_pending_shares_are_rebuilt_in_core(manager, cache) -> None:
    entries = [
        {"name": "ZI", "host_path": str(cache), "readonly": True, "transient": True},
        {"name": "ZeroInstall", "host_path": str(cache)},  # it has that one already
        "junk",
        {"bogus": 1},
    ]
    stopped = _vm(manager, STOPPED)
    requests = vm_share.pending_shares(stopped, entries)
    assert [(r.name, r.transient) for r in requests] == [("ZI", False), ("ZeroInstall", False)]
    assert vm_share.pending_shares(_vm(manager, RUNNING), entries) == []
    assert vm_share.pending_shares(_vm(manager, SAVED), entries) == []
    assert vm_share.pending_shares(vbox_vms.VM("x", "u"), entries) == []  # state unknown


# --- reading --------------------------------------------------------------------------------------


def test_a_stuck_virtualbox_costs_one_timeout_not_one_per_vm(fake: FakeVBox) -> None:
    fake.set(hang=["showvminfo"])
    manager = vboxmanage.VBoxManage(fake.exe, timeout=1.0, env={**os.environ, **fake.env})
    seen: list[int] = []
    vms = vbox_vms.list_vms(manager, on_vm=lambda row, vm: seen.append(row), parallel=1)
    assert sorted(seen) == [0, 1, 2]
    assert vms[0].error.startswith("VBoxManage did not answer in time")
    assert [vm.error for vm in vms[1:]] == [vbox_vms.STUCK, vbox_vms.STUCK]
    assert sum(c[0] == "showvminfo" for c in fake.calls()) == 1
    assert [vm.name for vm in vms] == [RUNNING, STOPPED, SAVED]


def test_cancel_stops_the_reading_and_kills_the_calls(fake: FakeVBox) -> None:
    fake.set(hang=["showvminfo"])
    cancel = threading.Event()
    manager = vboxmanage.VBoxManage(
        fake.exe, timeout=600, env={**os.environ, **fake.env}, cancel=cancel
    )
    names: list = []
    done: list = []
    reader = threading.Thread(
        target=lambda: done.append(
            vbox_vms.list_vms(manager, cancel=cancel, on_names=names.extend)
        ),
        daemon=True,
    )
    reader.start()
    started = threading.Event()

    def three_asked() -> bool:
        return sum(c[0] == "showvminfo" for c in fake.calls()) == 3

    while not three_asked():  # the three VMs are asked side by side
        started.wait(0.05)
    assert [n for n, _u in names] == [RUNNING, STOPPED, SAVED]  # the names came first
    cancel.set()
    reader.join(30)
    assert done and all(vm.error == vbox_vms.CANCELLED for vm in done[0])
    assert not _stand_ins(fake)


# Every command ends on SIGTERM as on Ctrl-C, with the shell's code for it (128 + 15).
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_vm_list_takes_its_vboxmanage_along_when_stopped(fake: FakeVBox, signum, code) -> None:
    fake.set(hang=["showvminfo"])
    env = {**os.environ, **fake.env, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "vm", "list"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        events = Path(str(fake.state_file) + ".events")
        waiting = threading.Event()
        while sum('"showvminfo"' in line for line in _lines(events)) < 3:
            assert proc.poll() is None, proc.communicate()
            waiting.wait(0.05)
        proc.send_signal(signum)
        assert proc.wait(30) == code
    finally:
        proc.kill()
        proc.communicate()
    assert not _stand_ins(fake)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# --- the guest's side -----------------------------------------------------------------------------


def _folder(name: str = "ZeroInstall", **kw) -> vboxmanage_output.SharedFolder:
    return vboxmanage_output.SharedFolder(
        name, kw.pop("host_path", "/var/cache/0install.net/implementations"), **kw
    )


def _linux(*folders: vboxmanage_output.SharedFolder, state: str = "poweroff") -> vbox_vms.VM:
    return vbox_vms.VM("deb", "u", state=state, os_type="Debian (64-bit)", folders=list(folders))


def test_an_auto_mounted_share_at_the_cache_path_needs_no_mount_lines() -> None:
    text = vm_guest.guest_text(_linux(_folder(readonly=True, automount=True, mount_point=CACHE)))
    assert "nothing to mount by hand" in text
    assert "sudo mount" not in text and "/etc/fstab" not in text and "/media/sf_" not in text
    assert "sudo usermod -aG vboxsf USER" in text


def test_an_auto_mounted_share_elsewhere_says_where_and_how() -> None:
    text = vm_guest.guest_text(_linux(_folder(readonly=True, automount=True)))
    assert "at /media/sf_ZeroInstall, where 0install does" in text
    assert f"sudo mount -t vboxsf -o ro ZeroInstall {CACHE}" in text
    # A plain share: mount lines, nothing about auto-mount.
    plain = vm_guest.guest_text(_linux(_folder(readonly=False, automount=False)))
    assert f"sudo mount -t vboxsf -o rw ZeroInstall {CACHE}" in plain
    assert "vboxsf group" not in plain and "/media/sf_" not in plain


def test_a_share_that_is_not_a_cache_is_not_offered_as_one() -> None:
    text = vm_guest.guest_text(_linux(_folder("photos", host_path="/home/me/photos")))
    assert "'photos' (/home/me/photos), which is not a Zero Install cache" in text
    assert "where 0install looks" not in text and "sudo mount" not in text


def test_a_windows_guest_gets_no_vboxsf_mount() -> None:
    vm = vbox_vms.VM(
        "win",
        "u",
        state="poweroff",
        os_type="Windows 10 (64-bit)",
        folders=[_folder(readonly=True)],
    )
    text = vm_guest.guest_text(vm)
    assert "mount" not in text.replace("auto-mounted", "") and "sudo" not in text
    assert "\\\\VBOXSVR\\ZeroInstall" in text
    assert vm_guest.WINDOWS_DIRS in text


def test_two_cache_shares_give_one_block_that_names_the_conflict() -> None:
    vm = _linux(
        _folder(readonly=True),
        _folder(
            host_path="/home/me/.cache/0install.net/implementations", transient=True, readonly=False
        ),
        state="running",
    )
    text = vm_guest.guest_text(vm)
    assert text.startswith("CONFLICT: deb has 2 shares of a Zero Install cache")
    assert "same name" in text
    assert text.count("sudo mount -t vboxsf") == 1
    assert f"sudo mount -t vboxsf -o ro ZeroInstall {CACHE}" in text  # the read-only one
    assert text.count("# Share ") == 1


def test_an_unknown_vm_says_unknown() -> None:
    vm = vbox_vms.VM("deb", "u", error="VBoxManage did not answer in time and was stopped (stuck)")
    text = vm_guest.guest_text(vm)
    assert "What deb shares is not known (VBoxManage did not answer in time" in text
    assert "shares no folder" not in text and "sudo" not in text


def test_describe_host_path(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    assert vm_share.describe_host_path("/nonexistent", True, str(user)) == (
        "This folder does not exist on the host."
    )
    assert vm_share.describe_host_path(str(user), True, str(user)).startswith(
        "Your own cache, read-only"
    )
    assert vm_share.describe_host_path(str(user), False, str(user)).startswith(
        "Your own cache, writable"
    )
    assert vm_share.describe_host_path(str(tmp_path), True, str(user)).startswith(
        "Not a Zero Install"
    )
    assert "a store 0install uses" in vm_share.describe_host_path(str(tmp_path), True, str(user))
    assert vm_share.describe_host_path(str(tmp_path), True, str(user), [str(tmp_path)]).startswith(
        "A Zero Install cache, read-only"
    )
