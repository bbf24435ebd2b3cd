"""Sharing a host folder with VirtualBox VMs: what may be shared with which VM, and the
``VBoxManage`` calls that do it or undo it.

One decision for the window and the command line (:func:`share_problem`): a name already used on
the VM is refused, as VirtualBox Manager refuses it; nothing is run for a saved VM or one whose
state is unknown, since VirtualBox would refuse it. Symlink creation is per share name, so it is
only ever on for a writable share and goes when the share goes. Running the calls is
:mod:`core.vboxmanage`'s, reading VMs :mod:`core.vbox_vms`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.vbox_vms import OLD_GA_WARNING, SYMLINK_KEY, VM
from core.vboxmanage import VBoxManage, VBoxResult
from core.vboxmanage_output import SharedFolder

DEFAULT_SHARE_NAME = "ZeroInstall"
GUEST_CACHE = "/var/cache/0install.net/implementations"
"""Where a guest mounts the share: the shared system store's path, whatever the host path."""
SYMLINK_WARNING = (
    "Symlink creation lets the guest plant symlinks in the share; in a writable share they can "
    "point anywhere on the host that a program following them may reach. Turn it on only for a "
    "guest-writable cache that you trust the guests with, never for the host's own cache."
)


@dataclass(frozen=True)
class ShareRequest:
    """One shared folder to add to one or more VMs."""

    host_path: str
    name: str = DEFAULT_SHARE_NAME
    readonly: bool = True
    automount: bool = False
    mount_point: str = ""
    transient: bool | None = None  # None: transient for a running VM, permanent otherwise
    symlinks: bool = False

    def check(self) -> str:
        """Why this request cannot work on any VM, in one line, or ""."""
        if not self.name:
            return "the share name is empty: give one, such as ZeroInstall"
        if any(c in self.name for c in " \t\n"):
            return f"the share name '{self.name}' contains a space: VirtualBox does not allow that"
        if not self.host_path:
            return "no host path: choose the cache folder to share"
        if not os.path.isabs(self.host_path):
            return f"the host path '{self.host_path}' is not absolute"
        if not os.path.isdir(self.host_path):
            return f"the host path '{self.host_path}' is not an existing folder"
        if (
            self.mount_point
            and not self.mount_point.startswith("/")
            and ":" not in self.mount_point
        ):
            return f"the mount point '{self.mount_point}' is not an absolute path in the guest"
        if self.symlinks and self.readonly:
            return (
                "symlink creation is for a writable share only: in a read-only share the guest "
                "creates nothing, and the setting would stay on for the name"
            )
        return ""

    def transient_for(self, vm: VM) -> bool:
        return vm.running if self.transient is None else self.transient

    @classmethod
    def from_fields(cls, fields: object, **changes: object) -> ShareRequest | None:
        """A request from its remembered fields (a dict, e.g. from the settings file), or None
        when they do not make one."""
        if not isinstance(fields, dict):
            return None
        known = cls.__dataclass_fields__
        try:
            return cls(**{**{k: v for k, v in fields.items() if k in known}, **changes})
        except TypeError:
            return None


def taken_by(vm: VM, name: str) -> SharedFolder | None:
    """The share of ``vm`` already called ``name``, permanent or transient (VirtualBox Manager
    refuses a name in use either way: a transient share would hide or mix with the permanent one,
    and the symlink setting is per name)."""
    return vm.folder(name)


def share_problem(vm: VM, request: ShareRequest) -> str:
    """Why ``request`` cannot be shared with ``vm`` (nothing is to be run then), or "".

    One decision for the window and the command line: a name already used on the VM, a VM whose
    state is not known, a saved VM (VirtualBox refuses changes to it), a transient share for a
    VM that is not running.
    """
    if vm.inaccessible:
        return f"{vm.name}: VirtualBox cannot read this VM's settings (inaccessible)"
    if not vm.known:
        why = f" ({vm.error})" if vm.error else ""
        return f"{vm.name}: its state is unknown{why}; refresh and try again"
    existing = taken_by(vm, request.name)
    if existing is not None:
        return (
            f"{vm.name} already has a share named '{request.name}' ({existing.kind}, "
            f"{existing.access}, {existing.host_path}): remove it first or choose another name"
        )
    transient = request.transient_for(vm)
    if vm.saved:
        return (
            f"{vm.name} is saved (suspended): VirtualBox refuses changes to its shared folders "
            "until it is started (then share for this session) or its saved state is discarded"
        )
    if transient and not vm.running:
        return f"{vm.name} is not running: a transient share needs a running VM"
    return ""


def share_commands(vm: VM, request: ShareRequest) -> list[list[str]]:
    """The VBoxManage calls (argument lists) that share ``request`` with ``vm``.

    Symlink creation is switched on only for a writable share, and a setting left on for the
    name (by hand, or an older version of this program) is switched off for a read-only one.
    """
    transient = request.transient_for(vm)
    add = ["sharedfolder", "add", vm.ref, "--name", request.name, "--hostpath", request.host_path]
    if request.readonly:
        add.append("--readonly")
    if transient:
        add.append("--transient")
    if request.automount:
        add.append("--automount")
    if request.mount_point:
        add += ["--auto-mount-point", request.mount_point]
    commands = [add]
    if request.symlinks and not request.readonly:
        commands.append(["setextradata", vm.ref, SYMLINK_KEY + request.name, "1"])
    elif request.name in vm.symlink_names:
        commands.append(["setextradata", vm.ref, SYMLINK_KEY + request.name])
    return commands


def unshare_commands(vm: VM, name: str, transient: bool | None = None) -> list[list[str]]:
    """The calls that remove shared folder ``name`` and its symlink setting from ``vm``.

    The setting goes with the share (it is per name, and would otherwise apply to the next share
    of that name, read-only or not); it is removed too when whether it is set is not known.
    """
    if transient is None:
        folder = vm.folder(name)
        transient = bool(folder and folder.transient)
    remove = ["sharedfolder", "remove", vm.ref, "--name", name]
    if transient:
        remove.append("--transient")
    commands = [remove]
    folder = vm.folder(name, transient)
    if folder is None or folder.symlinks or name in vm.symlink_names:
        commands.append(["setextradata", vm.ref, SYMLINK_KEY + name])
    return commands


def unshare_problem(vm: VM, folder: SharedFolder) -> str:
    """Why ``folder`` cannot be removed from ``vm`` now (VirtualBox would refuse it), or ""."""
    if not vm.known:
        return f"{vm.name}: its state is unknown; refresh and try again"
    if vm.saved:
        return (
            f"{vm.name} is saved (suspended): VirtualBox refuses changes to its shared folders "
            "until it is started or its saved state is discarded"
        )
    if folder.transient and not vm.running:
        return f"{vm.name} is not running: its transient share '{folder.name}' ended with it"
    if not folder.transient and vm.running:
        return (
            f"{vm.name} is running: VirtualBox keeps its settings locked, so the permanent share "
            f"'{folder.name}' can be removed only while the VM is stopped"
        )
    return ""


def pending_shares(vm: VM, entries: object) -> list[ShareRequest]:
    """The remembered transient shares of ``vm`` (``entries``: their fields) to make permanent
    now: none while it runs or is saved or its state is unknown, and none it already has."""
    if not vm.known or vm.running or vm.saved or not isinstance(entries, list):
        return []
    found = []
    for fields in entries:
        request = ShareRequest.from_fields(fields, transient=False)
        if request is not None and taken_by(vm, request.name) is None:
            found.append(request)
    return found


def run_commands(
    vbox: VBoxManage,
    vm: VM,
    commands: Sequence[Sequence[str]],
    on_result: Callable[[VBoxResult], None] | None = None,
) -> list[VBoxResult]:
    """Run the calls for one VM in order, stopping at the first failure."""
    results = []
    for args in commands:
        result = vbox.run(args, vm=vm.ref)
        results.append(result)
        if on_result is not None:
            on_result(result)
        if not result.ok:
            break
    return results


def general_warnings(request: ShareRequest) -> list[str]:
    """What the admin should know before sharing ``request`` with any VM."""
    warnings = []
    if request.symlinks:
        warnings.append(SYMLINK_WARNING)
    if not request.readonly:
        warnings.append(
            "Writable: root in the guest can change the host's cache, and so every program the "
            "host runs from it."
        )
    return warnings


def share_warnings(vm: VM, request: ShareRequest) -> list[str]:
    """What the admin should know before sharing ``request`` with ``vm`` in particular (what
    stops it altogether is :func:`share_problem`)."""
    warnings = []
    if vm.ga_old:
        warnings.append(f"{vm.name}: " + OLD_GA_WARNING.format(version=vm.ga_version))
    return warnings


def describe_host_path(
    path: str, readonly: bool, user_store: str, stores: Sequence[str] = ()
) -> str:
    """What sharing ``path`` read-only or writable means, for the admin choosing it."""
    from core.stores import SHARED_SYSTEM_STORE

    if not path:
        return "Choose the Zero Install cache to share."
    if not os.path.isabs(path):
        return "Not an absolute path on the host."
    if not os.path.isdir(path):
        return (
            "This folder does not exist on the host."
            if not os.path.exists(path)
            else "This is a file, not a folder: share the folder itself."
        )
    real = os.path.realpath(path)
    if real == os.path.realpath(SHARED_SYSTEM_STORE):
        if readonly:
            return (
                "The shared system store, read-only: guests cannot write to the host's cache, "
                "which is good for security; what a guest installs stays in that guest."
            )
        return (
            "The shared system store, writable: root in a guest could change what every user "
            "of this host runs from it. Keep it read-only."
        )
    if real == os.path.realpath(user_store):
        if readonly:
            return (
                "Your own cache, read-only: guests use what you downloaded and cannot change it; "
                "what a guest installs stays in that guest."
            )
        return (
            "Your own cache, writable: root in the guest can write to it, which is good for "
            "sharing but not for security (you trust the guest to check digests)."
        )
    if is_cache_path(path, stores):
        return "A Zero Install cache, " + (
            "read-only: guests cannot change it."
            if readonly
            else "writable: root in the guest can change what the host runs from it."
        )
    return (
        "Not a Zero Install cache (no 0install.net/implementations folder, and not a store "
        "0install uses here): the guest gets the folder, but 0install there finds nothing in it."
    )


def is_cache_path(path: str, stores: Sequence[str] = ()) -> bool:
    """Whether ``path`` on the host is a Zero Install implementation cache."""
    norm = os.path.normpath(path)
    if norm.rstrip("/").endswith("0install.net/implementations"):
        return True
    real = os.path.realpath(norm)
    return any(real == os.path.realpath(s) for s in stores)


def default_host_path(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The store to share, and why: the shared system store when sharing is set up on this host
    (it exists), otherwise the user's own store."""
    from core.stores import SHARED_SYSTEM_STORE, cache_dirs

    if os.path.isdir(SHARED_SYSTEM_STORE):
        return SHARED_SYSTEM_STORE, (
            "the shared system store: shared read-only, guests cannot write to the host's cache, "
            "which is good for security; what a guest installs stays in that guest"
        )
    user = os.path.join(cache_dirs(env)[0], "implementations")
    return user, (
        "your own store (sharing is not set up on this host): shared writable, root in the guest "
        "could write to it, which helps sharing but trusts the guest to check digests; keep it "
        "read-only unless you trust the guests"
    )
