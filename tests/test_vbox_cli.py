"""``zeroinstall-admin vm ...`` and ``snippet ...`` against the stand-in VBoxManage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from tests.vbox_fixtures import RUNNING, SAVED, STOPPED, UUIDS, FakeVBox


@pytest.fixture
def fake(tmp_path: Path, cache: Path, monkeypatch) -> FakeVBox:
    fake = FakeVBox(tmp_path / "vbox", cache)
    for key, value in fake.env.items():
        monkeypatch.setenv(key, value)
    # The user's store lives under tmp_path too, so a default host path never names this machine's.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    return fake


def test_vm_list_json(fake: FakeVBox, cache: Path, capsys) -> None:
    assert main(["vm", "list", "--json"]) == 0
    data = {vm["name"]: vm for vm in json.loads(capsys.readouterr().out)}
    assert set(data) == {RUNNING, STOPPED, SAVED}
    assert data[RUNNING]["state"] == "running" and data[RUNNING]["guest_additions"] == "7.0.10"
    assert data[STOPPED]["guest_additions_old"] is True
    folders = {f["name"]: f for f in data[RUNNING]["shared_folders"]}
    assert folders["ZeroInstall"]["zeroinstall_cache"] is True
    assert folders["ZeroInstall"]["readonly"] is True and folders["scratch"]["transient"] is True


def test_vm_list_text_flags_old_additions_and_caches(fake: FakeVBox, capsys) -> None:
    assert main(["vm", "list"]) == 0
    out = capsys.readouterr().out
    assert (
        f"{STOPPED}  [powered off]  Debian (64-bit)  Guest Additions 4.1.2 (older than 4.2.0" in out
    )
    assert "* Zero Install cache" in out and "symlinks on" in out


def test_vm_share_several_vms_at_once(fake: FakeVBox, cache: Path, capsys) -> None:
    code = main(
        [
            "vm",
            "share",
            STOPPED,
            RUNNING,
            "--name",
            "ZI",
            "--host-path",
            str(cache),
            "--automount",
            "--mount-point",
            "/opt/zi",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (
        f"$ VBoxManage sharedfolder add {UUIDS[STOPPED]} --name ZI --hostpath {cache} --readonly "
        "--automount --auto-mount-point /opt/zi"
    ) in captured.out
    assert "--readonly --transient --automount" in captured.out
    assert "sudo mount -t vboxsf -o ro ZI /var/cache/0install.net/implementations" in captured.out
    assert "older than 4.2.0" in captured.err and "Incorrect manifest" in captured.err
    stopped = next(f for f in fake.vm(STOPPED)["folders"] if f["name"] == "ZI")
    running = next(f for f in fake.vm(RUNNING)["folders"] if f["name"] == "ZI")
    assert (stopped["readonly"], stopped["transient"], stopped["mount_point"]) == (
        True,
        False,
        "/opt/zi",
    )
    assert (running["readonly"], running["transient"]) == (True, True)


def test_vm_share_writable_with_symlinks_warns(fake: FakeVBox, cache: Path, capsys) -> None:
    assert (
        main(["vm", "share", STOPPED, "--host-path", str(cache), "--writable", "--symlinks"]) == 0
    )
    captured = capsys.readouterr()
    assert "plant symlinks" in captured.err
    assert "--readonly" not in captured.out
    assert fake.vm(STOPPED)["extradata"] == {
        "VBoxInternal2/SharedFoldersEnableSymlinksCreate/ZeroInstall": "1"
    }


def test_vm_share_refuses_what_virtualbox_would_refuse_without_running_it(
    fake: FakeVBox, cache: Path, capsys
) -> None:
    assert main(["vm", "share", SAVED, "no such vm", "--host-path", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"{SAVED} is saved (suspended): VirtualBox refuses changes" in err
    assert "nothing was run for it" in err
    assert "Could not find a registered machine named 'no such vm'" in err
    # The name is taken on the running VM, by a transient share: refused, naming that share.
    assert main(["vm", "share", RUNNING, "--name", "scratch", "--host-path", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"{RUNNING} already has a share named 'scratch' (transient, writable, /tmp/it's" in err
    # ... and by a permanent one: no transient share goes on top of it.
    assert main(["vm", "share", RUNNING, "--host-path", str(cache), "--writable"]) == 1
    assert "already has a share named 'ZeroInstall' (permanent, read-only" in (
        capsys.readouterr().err
    )
    assert not [c for c in fake.calls() if c[:2] == ["sharedfolder", "add"]]
    assert not [c for c in fake.calls() if c[0] == "setextradata"]


def test_vm_share_prints_the_vms_own_guest_text(fake: FakeVBox, cache: Path, capsys) -> None:
    from core import vbox_vms, vboxmanage, vm_guest, vm_share
    from core.stores import discover_stores

    assert main(["vm", "share", STOPPED, "--host-path", str(cache), "--automount",
                 "--mount-point", vm_share.GUEST_CACHE]) == 0  # fmt: skip
    out = capsys.readouterr().out
    manager = vboxmanage.VBoxManage(fake.exe, env={**__import__("os").environ, **fake.env})
    vm = vbox_vms.read_vm(manager, UUIDS[STOPPED], "")
    text = vm_guest.guest_text(vm, [s.path for s in discover_stores()])
    assert "nothing to mount by hand" in text and "sudo mount" not in text
    assert (
        f"In the guest of {STOPPED}:\n"
        + "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())
        in out
    )
    # vm list prints the same text for that VM.
    assert main(["vm", "list"]) == 0
    listed = capsys.readouterr().out
    assert "".join(f"    {line}\n" if line else "\n" for line in text.splitlines()) in listed


def test_vm_share_symlinks_need_a_writable_share(fake: FakeVBox, cache: Path, capsys) -> None:
    assert main(["vm", "share", STOPPED, "--host-path", str(cache), "--symlinks"]) == 2
    assert "symlink creation is for a writable share only" in capsys.readouterr().err
    assert fake.calls() == []


def test_vm_output_escapes_control_characters(fake: FakeVBox, cache: Path, capsys) -> None:
    state = fake.state()
    state["vms"][1]["name"] = "evil\x1b]0;title\x07vm"
    state["vms"][1]["folders"] = [
        {"name": "n\x1b[31m", "path": str(cache), "transient": False, "readonly": True}
    ]
    fake.state_file.write_text(json.dumps(state))
    assert main(["vm", "list"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;title\\x07vm" in out and "n\\x1b[31m" in out
    code = main(["vm", "share", UUIDS[STOPPED], "--name", "a\x1b[2Jb", "--host-path", str(cache)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "\x1b" not in captured.out + captured.err
    assert "a\\x1b[2Jb" in captured.out


def test_vm_share_usage_errors_exit_2(fake: FakeVBox, cache: Path, capsys) -> None:
    assert main(["vm", "share", STOPPED, "--name", "a b", "--host-path", str(cache)]) == 2
    assert "contains a space" in capsys.readouterr().err
    assert main(["vm", "share", STOPPED, "--readonly", "--writable"]) == 2
    assert main(["vm", "share"]) == 2
    assert main(["vm", "unshare", STOPPED]) == 2
    assert main(["vm", "share", STOPPED, "--host-path", str(cache / "missing")]) == 1
    assert "is not an existing folder" in capsys.readouterr().err


def test_vm_unshare(fake: FakeVBox, capsys) -> None:
    assert main(["vm", "unshare", RUNNING, "--name", "scratch"]) == 0
    out = capsys.readouterr().out
    assert f"$ VBoxManage sharedfolder remove {UUIDS[RUNNING]} --name scratch --transient" in out
    assert [f["name"] for f in fake.vm(RUNNING)["folders"]] == ["ZeroInstall"]
    # A permanent folder of a running VM: VirtualBox would refuse it, so nothing runs; exit 1.
    calls = len(fake.calls())
    assert main(["vm", "unshare", RUNNING, "--name", "ZeroInstall"]) == 1
    err = capsys.readouterr().err
    assert f"{RUNNING} is running: VirtualBox keeps its settings locked" in err
    assert "nothing was run" in err
    assert not [c for c in fake.calls()[calls:] if c[0] == "sharedfolder"]
    assert main(["vm", "unshare", STOPPED, "--name", "nothing"]) == 1
    assert "has no shared folder named 'nothing'" in capsys.readouterr().err


def test_vm_without_virtualbox(tmp_path: Path, monkeypatch, capsys) -> None:
    from core import vboxmanage

    monkeypatch.setenv("VBOX_MANAGE", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(vboxmanage, "UNIX_LOCATIONS", [])
    assert main(["vm", "list"]) == 1
    err = capsys.readouterr().err
    assert "VBoxManage not found" in err and "which does not exist" in err


def test_vm_list_with_hanging_vboxmanage_ends(fake: FakeVBox, monkeypatch, capsys) -> None:
    from core import vboxmanage

    monkeypatch.setattr(vboxmanage, "DEFAULT_TIMEOUT", 1.0)
    fake.set(hang=["list"])
    assert main(["vm", "list"]) == 1
    err = capsys.readouterr().err
    assert "zeroinstall-admin: VBoxManage did not answer in time and was stopped" in err
    assert "VBoxManage: error:" not in err  # not VBoxManage's words: it said nothing
    assert "stuck" in err


def test_snippet_commands(tmp_path: Path, capsys) -> None:
    assert main(["snippet", "vagrant", "--name", "ZI", "--host-path", "/srv/cache"]) == 0
    out = capsys.readouterr().out
    assert 'id: "ZI"' in out and '"--hostpath", "/srv/cache", "--readonly"' in out
    assert main(["snippet", "libvirt", "--libvirt-version", "11.0"]) == 0
    assert "<readonly/>" in capsys.readouterr().out
    assert main(["snippet", "microvm", "--proto", "9p", "--writable"]) == 0
    out = capsys.readouterr().out
    assert 'proto = "9p"' in out and "readOnly" not in out
    assert main(["snippet", "fstab", "--guest-path", "/opt/zi"]) == 0
    assert "ZeroInstall /opt/zi vboxsf ro,_netdev,nofail 0 0" in capsys.readouterr().out
    assert main(["snippet", "nope"]) == 2
    assert main(["snippet", "vagrant", "--name", "a b"]) == 2


def test_snippet_runs_without_qt_or_virtualbox(tmp_path: Path) -> None:
    code = (
        "import sys; from core.cli import main; rc = main(['snippet', 'vagrant-v1']);"
        "assert not any(m.startswith('PySide6') for m in sys.modules); sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={"PATH": str(tmp_path)},
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.startswith("# Share the host's Zero Install cache")
        and "Vagrant::Config.run" in proc.stdout
    )


def test_vm_share_with_a_hanging_vboxmanage_runs_nothing(
    fake: FakeVBox, cache: Path, monkeypatch, capsys
) -> None:
    from core import vboxmanage

    monkeypatch.setattr(vboxmanage, "DEFAULT_TIMEOUT", 1.0)
    fake.set(hang=["showvminfo"])
    assert main(["vm", "share", STOPPED, RUNNING, "--host-path", str(cache)]) == 1
    err = capsys.readouterr().err
    assert err.count("VBoxManage did not answer in time") == 2
    assert [c[0] for c in fake.calls()] == ["showvminfo", "showvminfo"]  # side by side, once each
