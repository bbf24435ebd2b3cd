"""Machines for the stand-in VBoxManage, shared by the VirtualBox tests (core, CLI, GUI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import fake_vboxmanage

RUNNING = 'web "quoted" server'
STOPPED = "Ubuntu 22.04 – Bücher"
SAVED = "saved\\vm"

UUIDS = {
    RUNNING: "11111111-1111-4111-8111-111111111111",
    STOPPED: "22222222-2222-4222-8222-222222222222",
    SAVED: "33333333-3333-4333-8333-333333333333",
}


def machines(cache: Path) -> list[dict]:
    return [
        {
            "name": RUNNING,
            "uuid": UUIDS[RUNNING],
            "state": "running",
            "ostype": "Ubuntu (64-bit)",
            "ga_version": "7.0.10 r158379",
            "ga_property": "7.0.10",
            "folders": [
                {
                    "name": "ZeroInstall",
                    "path": str(cache),
                    "transient": False,
                    "readonly": True,
                    "automount": True,
                    "mount_point": "/var/cache/0install.net/implementations",
                },
                {
                    "name": "scratch",
                    "path": "/tmp/it's here",
                    "transient": True,
                    "readonly": False,
                    "automount": False,
                    "mount_point": "",
                },
            ],
            "extradata": {"VBoxInternal2/SharedFoldersEnableSymlinksCreate/scratch": "1"},
        },
        {
            "name": STOPPED,
            "uuid": UUIDS[STOPPED],
            "state": "poweroff",
            "ostype": "Debian (64-bit)",
            "ga_version": "4.1.2_ubuntu r1",
            "ga_property": "4.1.2_ubuntu",
            "folders": [],
        },
        {
            "name": SAVED,
            "uuid": UUIDS[SAVED],
            "state": "saved",
            "ostype": "Windows 10 (64-bit)",
            "ga_version": None,
            "ga_property": None,
            "folders": [],
        },
    ]


class FakeVBox:
    """The stand-in installed in a temporary directory, with its state file."""

    def __init__(self, root: Path, cache: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.state_file = root / "vbox-state.json"
        self.state_file.write_text(
            json.dumps({"version": "7.0.10r158379", "vms": machines(cache)}, ensure_ascii=False)
        )
        self.exe = fake_vboxmanage.install(str(root), str(self.state_file))
        self.env = {"VBOX_MANAGE": self.exe, "FAKE_VBOX_STATE": str(self.state_file)}

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def vm(self, name: str) -> dict:
        return next(v for v in self.state()["vms"] if v["name"] == name)

    def set(self, **changes) -> None:
        state = self.state()
        state.update(changes)
        self.state_file.write_text(json.dumps(state, ensure_ascii=False))

    def calls(self) -> list[list[str]]:
        log = Path(str(self.state_file) + ".log")
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """Where the shared system store would be, under tmp_path."""
    path = tmp_path / "var" / "cache" / "0install.net" / "implementations"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def fake(tmp_path: Path, cache: Path) -> FakeVBox:
    """The stand-in VBoxManage with the usual VMs, its state under tmp_path."""
    return FakeVBox(tmp_path / "vbox", cache)
