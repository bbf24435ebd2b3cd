"""What to do inside a VirtualBox guest so that its 0install uses the shared cache.

Built from what the VM really has: its OS type (a Windows guest reaches a share as
``\\\\VBOXSVR\\<name>`` and names extra stores in ``implementation-dirs``; a Linux guest mounts
``vboxsf``), and its real shares (an auto-mounted share already at the cache path needs no mount
line; a share that is not a cache is not offered as one; two cache shares are named as a
conflict). The window and ``zeroinstall-admin vm share|list`` print the same text.
"""

from __future__ import annotations

import os
import shlex
import textwrap
from collections.abc import Sequence

from core.vbox_vms import OLD_GA_WARNING, VM
from core.vboxmanage_output import SharedFolder
from core.vm_share import DEFAULT_SHARE_NAME, GUEST_CACHE, is_cache_path

WINDOWS_DIRS = r"%ProgramData%\0install.net\injector\implementation-dirs"
"""Where 0install for Windows reads extra stores for every user (``%AppData%`` for one user)."""
GUEST_USER_CACHE = "~/.cache/0install.net/implementations"


def guest_text(vm: VM, stores: Sequence[str] = ()) -> str:
    """What to type in ``vm``'s guest to use the cache it shares, from its OS and real shares.

    ``stores`` are the host's stores (to recognise a shared cache by its path).
    """
    parts: list[str] = []
    if vm.ga_old:
        warning = "WARNING: " + OLD_GA_WARNING.format(version=vm.ga_version)
        parts.append(textwrap.fill(warning, 72) + "\n")
    if not vm.known:
        if vm.reading:
            parts.append(f"Reading what {vm.name} shares…\n")
            return "\n".join(parts)
        why = vm.error.split(" (")[0] if vm.error else ""
        parts.append(
            f"What {vm.name} shares is not known" + (f" ({why})" if why else "") + ".\n"
            "Read it again (Refresh, or `zeroinstall-admin vm list`) to see what to type\n"
            "in the guest.\n"
        )
        return "\n".join(parts)
    caches = [f for f in vm.folders if is_cache_path(f.host_path, stores)]
    guest_caches = [f for f in vm.folders if f not in caches and f.readonly is False and f.symlinks]
    others = [f for f in vm.folders if f not in caches and f not in guest_caches]
    if not vm.folders:
        parts.append(
            f"{vm.name} shares no folder yet: share the cache with it first (Share the cache\n"
            "with these VMs, or `zeroinstall-admin vm share`). Then, for a read-only share\n"
            f"named {DEFAULT_SHARE_NAME}:\n"
        )
        default = SharedFolder(DEFAULT_SHARE_NAME, "", readonly=True, automount=False)
        parts.append(_cache_block(vm, default))
        return "\n".join(parts)
    if not caches and not guest_caches:
        parts.append(
            f"{vm.name} shares {_names(others)}, which "
            + ("is not a Zero Install cache" if len(others) == 1 else "are not Zero Install caches")
            + ":\n0install in the guest finds nothing to use there. Share the cache with this VM\n"
            "to use it from the guest.\n"
        )
        return "\n".join(parts)
    if len(caches) > 1:
        chosen = next((f for f in caches if f.readonly), caches[0])
        same = len({f.name for f in caches}) == 1
        parts.append(
            f"CONFLICT: {vm.name} has {len(caches)} shares of a Zero Install cache:\n"
            + "".join(f"  '{f.name}' ({_what(f)}) -> {f.host_path}\n" for f in caches)
            + (
                "They have the same name, so the guest cannot tell which one it mounts.\n"
                if same
                else "Only one can be mounted where 0install looks.\n"
            )
            + "Remove the one you do not want (Remove share, or `zeroinstall-admin vm unshare`).\n"
            + f"Until then, the lines below are for the {chosen.kind} '{chosen.name}' "
            + f"({chosen.access}).\n"
        )
        caches = [chosen]
    for f in caches:
        parts.append(f"# Share '{f.name}' ({_what(f)}): the host's cache\n" + _cache_block(vm, f))
    for f in guest_caches:
        parts.append(
            f"# Share '{f.name}' ({_what(f)}): a cache written by the guests\n"
            + _guest_cache_block(vm, f)
        )
    if others:
        parts.append(f"Also shared, not a Zero Install cache: {_names(others)}.\n")
    return "\n".join(parts)


def _names(folders: Sequence[SharedFolder]) -> str:
    return ", ".join(f"'{f.name}' ({f.host_path})" for f in folders)


def _what(f: SharedFolder) -> str:
    auto = ", auto-mounted" if f.automount else ""
    return f"{f.kind}, {f.access}{auto}"


def _cache_block(vm: VM, f: SharedFolder) -> str:
    """The host's cache shared as ``f``: mounted where 0install looks, read-only or not."""
    if vm.windows:
        return _windows_block(f)
    readonly = f.readonly is not False
    options = "ro" if readonly else "rw"
    lines: list[str] = []
    auto_at = (f.mount_point or f"/media/sf_{f.name}") if f.automount else ""
    if auto_at and os.path.normpath(auto_at) == GUEST_CACHE:
        lines += [
            f"The Guest Additions mount '{f.name}' at {GUEST_CACHE}",
            "at boot, where 0install looks: nothing to mount by hand.",
            "",
        ]
    else:
        if auto_at:
            lines += [
                f"The Guest Additions mount '{f.name}' at {auto_at}, where 0install does",
                "not look. Mount it where 0install looks as well (or share it again with",
                f"the auto-mount point {GUEST_CACHE}):",
            ]
        else:
            lines.append(
                "In the guest (with the Guest Additions), mount the share where 0install looks:"
            )
        quoted = shlex.quote(GUEST_CACHE)
        fstab_options = f"{options},_netdev,nofail"
        lines += [
            f"  sudo mkdir -p {quoted}",
            f"  sudo mount -t vboxsf -o {options} {shlex.quote(f.name)} {quoted}",
            "",
            "To mount it at every boot, add this line to /etc/fstab:",
            f"  {_fstab_field(f.name)} {_fstab_field(GUEST_CACHE)} vboxsf {fstab_options} 0 0",
            "",
        ]
    if auto_at:
        lines += [
            "Auto-mounted folders belong to the vboxsf group (mode 770, 700 when",
            "read-only): users who run 0install must be in it (then log in again):",
            "  sudo usermod -aG vboxsf USER",
            "",
        ]
    lines += [
        "`0install store optimise` cannot work on this cache in",
        "the guest: vboxsf has no hard links. Optimise on the host.",
    ]
    if readonly:
        lines += [
            "",
            "The share is read-only: what the guest installs goes to",
            "its own cache (~/.cache/0install.net) and stays there.",
        ]
    return "\n".join(lines) + "\n"


def _guest_cache_block(vm: VM, f: SharedFolder) -> str:
    """A cache shared between guests and written by them: mounted as the guest user's own
    cache, owned by that user (the 0install docs' guest-wide cache)."""
    if vm.windows:
        return (
            _windows_block(f) + "A malicious guest can corrupt this cache for every VM using it.\n"
        )
    return (
        "Mount it as the guest user's own cache (Guest Additions 4.2.0 or later,\n"
        'or 0install reports "Incorrect manifest -- archive is corrupted"):\n'
        f"  mkdir -p {GUEST_USER_CACHE}\n"
        f"  sudo mount -t vboxsf -o rw,uid=$(id -u),gid=$(id -g) {shlex.quote(f.name)} "
        f"{GUEST_USER_CACHE}\n"
        "\n"
        "A malicious guest can corrupt this cache for every VM using it.\n"
    )


def _windows_block(f: SharedFolder) -> str:
    """A Windows guest: no mount; the share is a network path, named as an extra store."""
    unc = f"\\\\VBOXSVR\\{f.name}"
    lines = [
        f"In the Windows guest (with the Guest Additions) the share is {unc}"
        + (" (also a drive letter: auto-mounted)." if f.automount else "."),
        "To let 0install for Windows use it, add this line to",
        f"  {WINDOWS_DIRS}",
        r"(for one user only: %AppData%\0install.net\injector\implementation-dirs):",
        f"  {unc}",
        "",
    ]
    if f.readonly is not False:
        lines += [
            "The share is read-only: what the guest installs goes to",
            "its own cache and stays there.",
        ]
    return "\n".join(lines) + "\n"


def _fstab_field(text: str) -> str:
    """A field of /etc/fstab: spaces and tabs as octal escapes."""
    return text.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
