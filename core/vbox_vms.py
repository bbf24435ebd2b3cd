"""The VirtualBox VMs on this host: what VirtualBox tells about each (state, OS, Guest Additions,
shared folders), read several VMs at once, and the stores shared with running VMs (for the
clean-up).

A VM is named to VBoxManage by its UUID; a detail that cannot be read is recorded on the VM, never
raised, and a VirtualBox that stops answering costs one timeout, not one per VM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core.vboxmanage import VBoxError, VBoxManage, VBoxResult
from core.vboxmanage_output import (
    SharedFolder,
    machine_folders,
    parse_extradata_enumerate,
    parse_ga_version,
    parse_human_folders,
    parse_list,
    parse_machinereadable,
    parse_value,
)

SYMLINK_KEY = "VBoxInternal2/SharedFoldersEnableSymlinksCreate/"
"""Extra data key that, followed by a share's name and set to 1, lets the guest create symlinks
in that share."""
GA_PROPERTY = "/VirtualBox/GuestAdd/Version"
OLD_GA = (4, 2, 0)
"""Guest Additions older than this break symlinks in shared folders (0install docs)."""
OLD_GA_WARNING = (
    "Guest Additions {version} are older than 4.2.0: they have problems with symlinks in shared "
    'folders, and a guest that writes to a shared cache may fail with "Incorrect manifest -- '
    'archive is corrupted" although the archive is fine. Update the Guest Additions in this VM.'
)
RUNNING_STATES = frozenset(
    {
        "running",
        "paused",
        "stuck",
        "teleporting",
        "livesnapshotting",
        "onlinesnapshotting",
        "starting",
        "stopping",
        "saving",
        "restoring",
        "gurumeditation",
    }
)
"""States in which the VM holds its session lock: permanent folders cannot change, transient can
(for the states ``list runningvms`` shows)."""


def ga_is_old(version: str | None) -> bool:
    parsed = parse_ga_version(version)
    return parsed is not None and parsed < OLD_GA


@dataclass
class VM:
    name: str
    uuid: str
    state: str = ""  # VMState: poweroff, running, saved, ...; "" when unknown
    os_type: str = ""
    ga_version: str = ""  # "7.0.10", "" when not known
    folders: list[SharedFolder] = field(default_factory=list)
    inaccessible: bool = False
    error: str = ""  # why details could not be read, else ""
    reading: bool = False  # only the name is known yet: the details are being read
    symlink_names: frozenset[str] = frozenset()  # SharedFoldersEnableSymlinksCreate/<name> is 1

    @property
    def known(self) -> bool:
        """Whether VirtualBox told this VM's state (and so its shared folders)."""
        return bool(self.state)

    @property
    def windows(self) -> bool:
        """A Windows guest (``ostype`` such as ``Windows 10 (64-bit)``)."""
        return self.os_type.lower().startswith("windows")

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def saved(self) -> bool:
        return self.state in ("saved", "aborted-saved")

    @property
    def ga_old(self) -> bool:
        return ga_is_old(self.ga_version)

    @property
    def ref(self) -> str:
        """How to name this VM to VBoxManage: the UUID, which no rename or odd name can break."""
        return self.uuid or self.name

    @property
    def state_text(self) -> str:
        return {
            "poweroff": "powered off",
            "aborted": "aborted",
            "saved": "saved",
            "aborted-saved": "saved (aborted)",
            "running": "running",
            "paused": "paused",
            "gurumeditation": "guru meditation",
        }.get(self.state, self.state or ("reading…" if self.reading else "unknown"))

    def folder(self, name: str, transient: bool | None = None) -> SharedFolder | None:
        for f in self.folders:
            if f.name == name and (transient is None or f.transient == transient):
                return f
        return None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state,
            "os_type": self.os_type,
            "guest_additions": self.ga_version or None,
            "guest_additions_old": self.ga_old,
            "inaccessible": self.inaccessible,
            "error": self.error or None,
            "shared_folders": [
                {
                    "name": f.name,
                    "host_path": f.host_path,
                    "transient": f.transient,
                    "readonly": f.readonly,
                    "automount": f.automount,
                    "mount_point": f.mount_point or None,
                    "symlinks": f.symlinks,
                }
                for f in self.folders
            ],
        }


PARALLEL_READS = 4
"""How many VMs are read at once: VirtualBox serves several clients, and one slow VM must not hold
up the others; calls about one VM still run one at a time."""

STUCK = "not read: VBoxManage did not answer in time for another VM, so it was not asked again"
CANCELLED = "not read: cancelled"


def list_vm_names(vbox: VBoxManage, running_only: bool = False) -> list[tuple[str, str]]:
    result = vbox.run(["list", "runningvms" if running_only else "vms"])
    if not result.ok:
        raise VBoxError(result)
    return parse_list(result.stdout)


def read_vm(vbox: VBoxManage, name: str, uuid: str) -> VM:
    """All this page shows about one VM; a failed detail is recorded on the VM, never raised."""
    return _read_vm(vbox, name, uuid)[0]


def _read_vm(vbox: VBoxManage, name: str, uuid: str) -> tuple[VM, bool]:
    """The VM, and whether a call timed out (VirtualBox is likely stuck for every VM then).

    After a call that timed out no further call is made about this VM: each would wait as long.
    """
    vm = VM(name=name, uuid=uuid, inaccessible=name == "<inaccessible>")
    if vm.inaccessible:
        vm.error = "VirtualBox cannot read this VM's settings file (inaccessible)"
        return vm, False
    ref = vm.ref
    info_result = vbox.run(["showvminfo", ref, "--machinereadable"], vm=ref)
    if not info_result.ok:
        vm.error = info_result.summary
        return vm, info_result.timed_out
    info = parse_machinereadable(info_result.stdout)
    vm.name = info.get("name", name)
    vm.uuid = info.get("UUID", uuid) or uuid
    vm.state = info.get("VMState", "")
    vm.os_type = info.get("ostype", "")
    folders = machine_folders(info)
    results: dict[str, VBoxResult] = {}
    for key, args in (
        ("human", ["showvminfo", ref]),
        ("extradata", ["getextradata", ref, "enumerate"]),
        ("ga", ["guestproperty", "get", ref, GA_PROPERTY]),
    ):
        results[key] = result = vbox.run(args, vm=ref)
        if result.timed_out or result.failure:
            break
    human, extradata, ga = (results.get(k) for k in ("human", "extradata", "ga"))
    details = (
        {(f.name, f.transient): f for f in parse_human_folders(human.stdout)}
        if human is not None and human.ok
        else {}
    )
    extra = (
        parse_extradata_enumerate(extradata.stdout)
        if extradata is not None and extradata.ok
        else {}
    )
    vm.symlink_names = frozenset(
        key[len(SYMLINK_KEY) :]
        for key, value in extra.items()
        if key.startswith(SYMLINK_KEY) and value == "1"
    )
    version = parse_value(ga.stdout) if ga is not None and ga.ok else None
    if not version:
        version = info.get("GuestAdditionsVersion") or None
    if version:
        parsed = parse_ga_version(version)
        vm.ga_version = ".".join(map(str, parsed)) if parsed else version
    for f in folders:
        d = details.get((f.name, f.transient))
        vm.folders.append(
            SharedFolder(
                name=f.name,
                host_path=f.host_path,
                transient=f.transient,
                readonly=d.readonly if d else None,
                automount=d.automount if d else None,
                mount_point=d.mount_point if d else "",
                symlinks=f.name in vm.symlink_names,
            )
        )
    failed = next((r for r in results.values() if not r.ok), None)
    if human is None or not human.ok:
        why = (human or failed or info_result).summary
        vm.error = "read-only and auto-mount not known: " + why
    elif failed is not None:
        vm.error = "some details not known: " + failed.summary
    return vm, any(r.timed_out for r in results.values())


def read_vms(
    vbox: VBoxManage,
    names: Sequence[tuple[str, str]],
    on_vm: Callable[[int, VM], None] | None = None,
    cancel: threading.Event | None = None,
    parallel: int = PARALLEL_READS,
) -> list[VM]:
    """The details of each listed ``(name, uuid)``, up to ``parallel`` VMs at once.

    ``on_vm(index, vm)`` is called (from a reading thread) as each VM is read. Once a call timed
    out, or ``cancel`` is set, the VMs not started yet are not asked about: each comes back with
    its name, an unknown state and the reason, so that a stuck VirtualBox costs one timeout, not
    one per VM. Give ``vbox`` the same ``cancel`` so that calls already running are killed.
    """
    found: list[VM | None] = [None] * len(names)
    lock = threading.Lock()
    todo = iter(range(len(names)))
    stuck = threading.Event()
    finished = threading.Event()
    left = [len(names)]

    def work() -> None:
        while True:
            with lock:
                index = next(todo, None)
            if index is None:
                return
            name, uuid = names[index]
            if cancel is not None and cancel.is_set():
                vm = VM(name=name, uuid=uuid, error=CANCELLED)
            elif stuck.is_set():
                vm = VM(name=name, uuid=uuid, error=STUCK)
            else:
                try:
                    vm, timed_out = _read_vm(vbox, name, uuid)
                except Exception as exc:  # noqa: BLE001 - one VM never stops the others
                    vm, timed_out = VM(name=name, uuid=uuid, error=f"not read: {exc}"), False
                if timed_out:
                    stuck.set()
                if cancel is not None and cancel.is_set() and not vm.known:
                    vm.error = CANCELLED
            found[index] = vm
            if on_vm is not None:
                on_vm(index, vm)
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    finished.set()

    if not names:
        return []
    # Daemon threads: a VBoxManage that hangs past every timeout never keeps the process alive.
    for _ in range(max(1, min(parallel, len(names)))):
        threading.Thread(target=work, name="vboxmanage-read", daemon=True).start()
    finished.wait()
    return [vm for vm in found if vm is not None]


def list_vms(
    vbox: VBoxManage,
    on_vm: Callable[[int, VM], None] | None = None,
    cancel: threading.Event | None = None,
    on_names: Callable[[list[tuple[str, str]]], None] | None = None,
    parallel: int = PARALLEL_READS,
) -> list[VM]:
    """Every registered VM with its state, OS, Guest Additions and shared folders.

    Raises :class:`VBoxError` only when the list itself cannot be read. ``on_names`` gets the
    list as soon as VirtualBox gave it; ``on_vm(index, vm)`` each VM as soon as it is read
    (see :func:`read_vms`).
    """
    names = list_vm_names(vbox)
    if on_names is not None:
        on_names(names)
    return read_vms(vbox, names, on_vm, cancel, parallel)


def stores_shared_with_running_vms(timeout: float = 10.0) -> dict[str, list[str]]:
    """Host path of each shared folder of each running VM -> the names of those VMs.

    For the clean-up: a guest's use of a shared cache leaves no trace on the host, so a store
    shared with a running VM counts as in use. Empty when VBoxManage is absent; a failing or
    hanging VBoxManage gives what could be read within ``timeout`` seconds in all, never an
    exception. Paths are as VirtualBox stores them (absolute; compare with realpath).
    """
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    try:
        vbox = VBoxManage.find(timeout=timeout)
        if vbox is None:
            return {}
        listing = vbox.run(["list", "runningvms"], timeout=left())
        if not listing.ok:
            return {}
        shared: dict[str, list[str]] = {}
        for name, uuid in parse_list(listing.stdout):
            if time.monotonic() >= deadline:
                break
            ref = uuid or name
            result = vbox.run(["showvminfo", ref, "--machinereadable"], vm=ref, timeout=left())
            if not result.ok:
                continue
            info = parse_machinereadable(result.stdout)
            shown = info.get("name", name)
            for folder in machine_folders(info):
                if not folder.host_path:
                    continue
                names = shared.setdefault(folder.host_path, [])
                if shown not in names:
                    names.append(shown)
        return shared
    except Exception:  # noqa: BLE001 - the clean-up must never fail because of VirtualBox
        return {}
