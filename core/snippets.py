"""Configuration that shares the cache with a guest: Vagrant, microvm.nix, libvirt, fstab.

Plain text generators that need no virtualisation software. The facts behind each one are in
``shared/reference/vm-configs.md``; every snippet explains its choices in comments, so that the
file an admin saves still says why it is written that way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from xml.sax.saxutils import quoteattr

from core.stores import SHARED_SYSTEM_STORE

GUEST_CACHE = "/var/cache/0install.net/implementations"
DEFAULT_NAME = "ZeroInstall"
GUEST_CACHE_NAME = "shared-guest-cache"
LIBVIRT_READONLY_SINCE = (11, 0)
"""libvirt 11.0 (2025-01) accepts ``<readonly/>`` on a virtiofs filesystem; older ones ignore or
reject it."""

KINDS = ("vagrant", "vagrant-v1", "microvm", "libvirt", "fstab")
TITLES = {
    "vagrant": "Vagrant",
    "vagrant-v1": "Vagrant 1.0",
    "microvm": "microvm.nix",
    "libvirt": "libvirt",
    "fstab": "fstab",
}
FILE_NAMES = {
    "vagrant": "Vagrantfile",
    "vagrant-v1": "Vagrantfile",
    "microvm": "zeroinstall-share.nix",
    "libvirt": "zeroinstall-share.xml",
    "fstab": "fstab-zeroinstall",
}


@dataclass(frozen=True)
class SnippetOptions:
    name: str = DEFAULT_NAME  # the share's name: VirtualBox share name, virtiofs/9p tag
    host_path: str = SHARED_SYSTEM_STORE
    guest_path: str = GUEST_CACHE
    writable: bool = False
    guest_cache: str = ""
    """Host folder of an optional cache shared between guests and writable by them (Vagrant)."""
    guest_cache_guest_path: str = "/home/vagrant/.cache/0install.net/implementations"
    proto: str = "virtiofs"  # microvm.nix: "virtiofs" or "9p"
    libvirt_version: tuple[int, ...] | None = None  # None: not known

    def check(self) -> str:
        """Why these options cannot make a working snippet, in one line, or ""."""
        if not self.name:
            return "the share name is empty"
        if any(c.isspace() for c in self.name):
            return f"the share name '{self.name}' contains a space: VirtualBox and tags refuse that"
        if len(self.name.encode()) > 36:
            return f"the share name '{self.name}' is longer than 36 bytes (the virtiofs tag limit)"
        for label, path in (("host path", self.host_path), ("guest path", self.guest_path)):
            if not path.startswith("/"):
                return f"the {label} '{path}' is not absolute"
            if "\n" in path or "\0" in path:
                return f"the {label} contains a newline"
        if self.guest_cache and not self.guest_cache.startswith("/"):
            return f"the guest cache folder '{self.guest_cache}' is not absolute"
        if self.proto not in ("virtiofs", "9p"):
            return f"unknown protocol '{self.proto}': use virtiofs or 9p"
        return ""


def parse_libvirt_version(text: str) -> tuple[int, ...] | None:
    """``11.0.0`` or the output of ``virsh --version`` -> (11, 0, 0)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(p) for p in match.groups() if p is not None) if match else None


def libvirt_accepts_readonly(version: tuple[int, ...] | None) -> bool:
    return version is not None and version[:2] >= LIBVIRT_READONLY_SINCE


def detect_libvirt_version(timeout: float = 10.0) -> tuple[int, ...] | None:
    """This host's libvirt version as ``virsh --version`` says it; None without virsh."""
    import shutil
    import subprocess

    virsh = shutil.which("virsh")
    if virsh is None:
        return None
    try:
        proc = subprocess.run(
            [virsh, "--version"],
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_libvirt_version(proc.stdout) if proc.returncode == 0 else None


# --- quoting --------------------------------------------------------------------------------------


def _rb(text: str) -> str:
    """A Ruby double-quoted string literal (no interpolation)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return '"' + body.replace("\n", "\\n") + '"'


def _nix(text: str) -> str:
    """A Nix double-quoted string literal (no antiquotation)."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return '"' + body.replace("\n", "\\n") + '"'


def _xml_comment(text: str) -> str:
    """Text safe inside ``<!-- -->`` (no ``--``)."""
    return re.sub(r"-(?=-)", "- ", text)


def _fstab_field(text: str) -> str:
    """A field of /etc/fstab: spaces, tabs, newlines and backslashes as octal escapes."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in text)


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --- the generators -------------------------------------------------------------------------------


def vagrant(opts: SnippetOptions) -> str:
    """A Vagrantfile (configuration version 2) for the VirtualBox provider."""
    name, host, guest = _rb(opts.name), _rb(opts.host_path), _rb(opts.guest_path)
    lines = [
        "# Share the host's Zero Install cache with this VM (VirtualBox provider).",
        "# Merge into your Vagrantfile; generated by zeroinstall-admin.",
        'Vagrant.configure("2") do |config|',
        "  # The host's cache, mounted where 0install looks for it in the guest. The id is",
        "  # the name VirtualBox gives the share: the customize lines below name the same one.",
        f"  config.vm.synced_folder {host},",
        f"    {guest},",
        f"    id: {name},",
        '    type: "virtualbox",',
        "    create: false,",
    ]
    if opts.writable:
        lines += [
            "    # Writable: root in the guest can change the host's cache. Guests that add",
            "    # implementations need symlinks (Guest Additions 4.2.0 or later).",
            "    SharedFoldersEnableSymlinksCreate: true",
        ]
    else:
        lines += [
            '    mount_options: ["ro"],',
            "    # Vagrant turns symlink creation on for every share unless told not to; a",
            "    # read-only cache needs none.",
            "    SharedFoldersEnableSymlinksCreate: false",
        ]
    lines.append("")
    provider: list[str] = []
    if not opts.writable:
        provider += [
            "    # Vagrant never passes --readonly to VirtualBox, and root in the guest can undo",
            "    # its ro mount. Vagrant adds its shares before these lines run (before boot), so",
            "    # re-create this one read-only on the host.",
            f'    vb.customize ["sharedfolder", "remove", :id, "--name", {name}]',
            f'    vb.customize ["sharedfolder", "add", :id, "--name", {name},',
            f'                  "--hostpath", {host}, "--readonly"]',
        ]
    if opts.guest_cache:
        key = _rb(f"VBoxInternal2/SharedFoldersEnableSymlinksCreate/{GUEST_CACHE_NAME}")
        if provider:
            provider.append("")
        provider += [
            "    # Symlinks in the guest-writable cache below (its synced_folder has the same id).",
            f'    vb.customize ["setextradata", :id, {key}, "1"]',
        ]
    if provider:
        lines += ['  config.vm.provider "virtualbox" do |vb|', *provider, "  end", ""]
    if opts.guest_cache:
        lines += [
            "  # A second cache, shared between guests and writable by them: convenient but less",
            "  # secure (a malicious guest can corrupt it for every VM using it). Needs Guest",
            '  # Additions 4.2.0 or later, or 0install reports "Incorrect manifest -- archive is',
            '  # corrupted".',
            f"  config.vm.synced_folder {_rb(opts.guest_cache)},",
            f"    {_rb(opts.guest_cache_guest_path)},",
            f"    id: {_rb(GUEST_CACHE_NAME)},",
            '    type: "virtualbox",',
            "    create: true,",
            "    SharedFoldersEnableSymlinksCreate: true",
            "",
        ]
    if lines[-1] == "":
        lines.pop()
    lines.append("end")
    return "\n".join(lines) + "\n"


def vagrant_v1(opts: SnippetOptions) -> str:
    """The same for Vagrant 1.0 (``Vagrant::Config.run`` and ``share_folder``)."""
    name, host, guest = _rb(opts.name), _rb(opts.host_path), _rb(opts.guest_path)
    lines = [
        "# Share the host's Zero Install cache with this VM (Vagrant 1.0 configuration).",
        "# Merge into your Vagrantfile; generated by zeroinstall-admin.",
        "Vagrant::Config.run do |config|",
        f"  config.vm.share_folder {name}, {guest}, {host},",
    ]
    if opts.writable:
        lines.append("    :create => false")
    else:
        lines += [
            "    :create => false,",
            '    :extra => "ro"  # extra mount options: read-only in the guest',
            "",
            "  # Read-only on the host too (Vagrant does not pass --readonly): re-create the share",
            "  # before boot, after Vagrant added it.",
            f'  config.vm.customize ["sharedfolder", "remove", :id, "--name", {name}]',
            f'  config.vm.customize ["sharedfolder", "add", :id, "--name", {name},',
            f'                       "--hostpath", {host}, "--readonly"]',
        ]
    if opts.guest_cache:
        key = _rb(f"VBoxInternal2/SharedFoldersEnableSymlinksCreate/{GUEST_CACHE_NAME}")
        lines += [
            "",
            "  # A cache shared between guests, writable by them (less secure: a malicious guest",
            "  # can corrupt it for every VM). Symlinks on, with the same name as the share.",
            f'  config.vm.customize ["setextradata", :id, {key}, "1"]',
            f"  config.vm.share_folder {_rb(GUEST_CACHE_NAME)},",
            f"    {_rb(opts.guest_cache_guest_path)},",
            f"    {_rb(opts.guest_cache)}",
        ]
    lines.append("end")
    return "\n".join(lines) + "\n"


def microvm(opts: SnippetOptions) -> str:
    """A NixOS module fragment with one ``microvm.shares`` entry."""
    lines = ["# Share the host's Zero Install cache with this MicroVM (microvm.nix).", "#"]
    if opts.proto == "virtiofs":
        lines += [
            "# virtiofs needs virtiofsd on the host: the microvm-virtiofsd@<vm> service of",
            "# microvm.nixosModules.host starts it, or run bin/virtiofsd-run by hand. It is faster",
            "# than 9p.",
        ]
    else:
        lines += ["# 9p: guest mount options trans=virtio,version=9p2000.L,msize=65536."]
    lines += [
        "# Hypervisors: firecracker has no shares at all; cloud-hypervisor takes virtiofs only;",
        "# kvmtool takes 9p only and cannot make it read-only; crosvm cannot do read-only 9p.",
    ]
    if not opts.writable:
        lines += [
            "# readOnly is enforced on the host (virtiofsd --readonly, or readonly=on for 9p); it",
            "# needs a microvm.nix from 2025-09 or later (older ones lack the option).",
        ]
    lines += [
        "# On ZFS with virtiofs the dataset needs -o xattr=sa -o acltype=posixacl.",
        "{",
        "  microvm.shares = [ {",
        f"    proto = {_nix(opts.proto)};",
        f"    tag = {_nix(opts.name)};",
        f"    source = {_nix(opts.host_path)};",
        f"    mountPoint = {_nix(opts.guest_path)};",
    ]
    if not opts.writable:
        lines.append("    readOnly = true;")
    lines += ["  } ];", "}"]
    return "\n".join(lines) + "\n"


def libvirt(opts: SnippetOptions) -> str:
    """The domain XML a libvirt/QEMU guest needs: shared memory and a virtiofs filesystem."""
    readonly = not opts.writable and libvirt_accepts_readonly(opts.libvirt_version)
    target = opts.name
    mount = (
        f"mount -t virtiofs{'' if opts.writable else ' -o ro'} {_sh(target)} {_sh(opts.guest_path)}"
    )
    head = [
        "<!-- Share the host's Zero Install cache with a libvirt/QEMU guest over virtiofs.",
        "     Merge both parts into the domain with `virsh edit DOMAIN` (memory backing cannot",
        "     change on a running domain: it applies at the next start). Without shared memory",
        '     libvirt refuses the device ("virtiofs requires shared memory").',
    ]
    if opts.writable:
        head.append("     Writable: root in the guest can change the host's cache.")
    elif readonly:
        head.append(
            "     <readonly/> makes virtiofsd refuse writes on the host (libvirt 11.0 or later)."
        )
    else:
        version = ".".join(map(str, opts.libvirt_version)) if opts.libvirt_version else "unknown"
        head += [
            f"     No <readonly/>: this libvirt ({version}) is not known to accept it for virtiofs",
            "     (11.0 and later do). Only the guest's ro mount protects the host's cache, and",
            "     root in the guest can undo that; prefer a libvirt that enforces it on the host.",
        ]
    head.append("-->")
    xml = [
        *(_xml_comment(line) if i and i < len(head) - 1 else line for i, line in enumerate(head)),
        "<domain type='kvm'>",
        "  <memoryBacking>",
        "    <source type='memfd'/>",
        "    <access mode='shared'/>",
        "  </memoryBacking>",
        "  <devices>",
        "    <filesystem type='mount' accessmode='passthrough'>",
        "      <driver type='virtiofs' queue='1024'/>",
        f"      <source dir={quoteattr(opts.host_path)}/>",
        f"      <target dir={quoteattr(target)}/>",
    ]
    if readonly:
        xml.append("      <readonly/>")
    xml += [
        "    </filesystem>",
        "  </devices>",
        "</domain>",
        "<!-- In the guest (Linux 5.4 or later): " + _xml_comment(mount) + " -->",
    ]
    return "\n".join(xml) + "\n"


def fstab(opts: SnippetOptions) -> str:
    """Lines for the guest's /etc/fstab, one per way the share can reach it."""
    mode = "rw" if opts.writable else "ro"
    name, where = _fstab_field(opts.name), _fstab_field(opts.guest_path)
    return (
        "\n".join(
            [
                "# Zero Install cache shared by the host; keep the line for your hypervisor.",
                "# VirtualBox (Guest Additions; vboxsf has no hard links, so",
                "# `0install store optimise` cannot work on it in the guest):",
                f"{name} {where} vboxsf {mode},_netdev,nofail 0 0",
                "# libvirt/QEMU or microvm.nix over virtiofs:",
                f"{name} {where} virtiofs {mode},nofail 0 0",
                "# microvm.nix over 9p:",
                f"{name} {where} 9p {mode},trans=virtio,version=9p2000.L,msize=65536,nofail 0 0",
            ]
        )
        + "\n"
    )


GENERATORS: dict[str, Callable[[SnippetOptions], str]] = {
    "vagrant": vagrant,
    "vagrant-v1": vagrant_v1,
    "microvm": microvm,
    "libvirt": libvirt,
    "fstab": fstab,
}


def generate(kind: str, opts: SnippetOptions) -> str:
    """The snippet ``kind`` (one of :data:`KINDS`); raises ValueError for bad options."""
    problem = opts.check()
    if problem:
        raise ValueError(problem)
    if kind not in GENERATORS:
        raise ValueError(f"unknown snippet '{kind}': use one of {', '.join(KINDS)}")
    return GENERATORS[kind](opts)


def note(kind: str, opts: SnippetOptions) -> str:
    """One sentence above a snippet saying what it is, true to ``opts`` (read-only or not)."""
    writable = opts.writable
    if kind == "vagrant":
        return "Vagrantfile (version 2, VirtualBox provider). " + (
            "Writable: the guest can write to the host's cache."
            if writable
            else "Read-only on the host through the customize lines, since Vagrant never "
            "passes --readonly."
        )
    if kind == "vagrant-v1":
        return "Vagrantfile for Vagrant 1.0 (Vagrant::Config.run and share_folder). " + (
            "Writable: the guest can write to the host's cache." if writable else "Read-only."
        )
    if kind == "microvm":
        return "A NixOS module fragment for microvm.nix. " + (
            "Writable: the guest can write to the host's cache."
            if writable
            else "readOnly needs microvm.nix from 2025-09."
        )
    if kind == "libvirt":
        return "Domain XML for libvirt/QEMU over virtiofs, with the shared memory it needs. " + (
            "Writable."
            if writable
            else "Read-only on the host."
            if libvirt_accepts_readonly(opts.libvirt_version)
            else "Read-only only in the guest: this libvirt is not known to enforce it."
        )
    if kind == "fstab":
        return "Lines for the guest's /etc/fstab: VirtualBox, virtiofs or 9p, " + (
            "read-write." if writable else "read-only."
        )
    raise ValueError(f"unknown snippet kind '{kind}'")


def with_defaults(opts: SnippetOptions, **changes: Any) -> SnippetOptions:
    """``opts`` with the given fields changed, ignoring those given as None."""
    return replace(opts, **{k: v for k, v in changes.items() if v is not None})
