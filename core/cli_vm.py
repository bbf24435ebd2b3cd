"""The command line's ``vm list|share|unshare`` and ``snippet``: sharing the cache with virtual
machines. ``vm`` drives VirtualBox through ``core.vboxmanage``; ``snippet`` needs no VirtualBox."""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Callable
from typing import IO, Any

from core.cli_common import CommandError, UsageError
from core.display import display_path, display_text, safe_text

SNIPPET_KINDS = ("vagrant", "vagrant-v1", "microvm", "libvirt", "fstab")


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""
    vm = sub.add_parser("vm", help="share the cache with VirtualBox VMs (list, share, unshare)")
    vm_sub = vm.add_subparsers(dest="vm_command", metavar="ACTION", parser_class=type(vm))
    vm.set_defaults(func=_no_action(vm))

    p = vm_sub.add_parser("list", help="every VM: state, OS, Guest Additions, shared folders")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_vm_list)

    p = vm_sub.add_parser(
        "share",
        help="share the cache with one or more VMs (read-only on the host by default)",
        description="Share a host folder (by default the Zero Install cache) with each VM: "
        "permanent for a stopped VM, transient (until it stops) for a running one.",
    )
    p.add_argument("vms", nargs="+", metavar="VM", help="VM names or UUIDs")
    p.add_argument("--name", default=None, help="share name the guest mounts (default ZeroInstall)")
    p.add_argument(
        "--host-path",
        metavar="DIR",
        help="host folder to share (default: the shared system store if it exists, else yours)",
    )
    access = p.add_mutually_exclusive_group()
    access.add_argument(
        "--readonly", dest="writable", action="store_false", help="read-only on the host (default)"
    )
    access.add_argument(
        "--writable", dest="writable", action="store_true", help="let the guest write to it"
    )
    p.add_argument(
        "--transient",
        action="store_true",
        help="only until the VM stops (needs a running VM; the default for running VMs)",
    )
    p.add_argument("--automount", action="store_true", help="let the Guest Additions mount it")
    p.add_argument("--mount-point", metavar="P", default="", help="where auto-mount puts it")
    p.add_argument(
        "--symlinks",
        action="store_true",
        help="let the guest create symlinks in the share (a security risk: see the warning)",
    )
    p.set_defaults(func=cmd_vm_share, writable=False)

    p = vm_sub.add_parser("unshare", help="remove a shared folder from a VM")
    p.add_argument("vm", metavar="VM", help="VM name or UUID")
    p.add_argument("--name", required=True, help="the shared folder's name")
    p.set_defaults(func=cmd_vm_unshare)

    p = sub.add_parser(
        "snippet",
        help="print configuration sharing the cache with a guest (Vagrant, microvm.nix, ...)",
    )
    p.add_argument("kind", choices=SNIPPET_KINDS, metavar="KIND", help=", ".join(SNIPPET_KINDS))
    p.add_argument("--name", help="share name or tag (default ZeroInstall)")
    p.add_argument(
        "--host-path",
        metavar="P",
        help="host folder (default /var/cache/0install.net/implementations)",
    )
    p.add_argument(
        "--guest-path",
        metavar="P",
        help="mount point in the guest (default /var/cache/0install.net/implementations)",
    )
    p.add_argument("--writable", action="store_true", help="let the guest write (not read-only)")
    p.add_argument(
        "--guest-cache",
        metavar="DIR",
        help="Vagrant: host folder for a second cache shared between guests, writable by them",
    )
    p.add_argument(
        "--proto", choices=("virtiofs", "9p"), help="microvm.nix: virtiofs (default) or 9p"
    )
    p.add_argument(
        "--libvirt-version",
        metavar="X.Y",
        help="libvirt: the host's libvirt version (default: asked of virsh, if installed)",
    )
    p.set_defaults(func=cmd_snippet)


def _no_action(
    parser: argparse.ArgumentParser,
) -> Callable[[argparse.Namespace, IO[str], IO[str]], int]:
    def handler(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
        parser.print_help(err)
        return 2

    return handler


def _vbox():
    from core import vboxmanage

    manager = vboxmanage.VBoxManage.find()
    if manager is None:
        problem = vboxmanage.env_problem()
        raise CommandError(
            "VBoxManage not found: install VirtualBox, or set $VBOX_MANAGE to its VBoxManage"
            + (f" ({problem})" if problem else "")
        )
    vboxmanage.kill_calls_on_terminate()
    return manager


def _fail(result) -> str:
    """VBoxManage's error line, and on the next line what it means (both safe to print)."""

    plain = result.explanation
    text = f"{result.error_text}\n  {plain}" if plain else result.error_text
    return safe_text(text)


def _indent(text: str, prefix: str) -> str:
    """``text`` with each line indented and made safe to print."""

    return "".join(
        f"{prefix}{safe_text(line)}\n" if line else "\n" for line in text.rstrip("\n").split("\n")
    )


# --- vm list --------------------------------------------------------------------------------------


def cmd_vm_list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Each VM as soon as it and those before it are read (up to four are read at once), so
    the first lines come at once even when one VM is slow."""

    from core import vbox_vms, vboxmanage, vm_guest, vm_share

    manager = _vbox()
    stores = _store_paths()
    ready: dict[int, vbox_vms.VM] = {}
    changed = threading.Condition()
    shown = [0]

    def arrived(index: int, vm: vbox_vms.VM) -> None:
        with changed:
            ready[index] = vm
            changed.notify()

    def show_ready() -> None:
        # Runs on the main thread only: VMs in their listed order, as far as they are read.
        while True:
            with changed:
                vm = ready.pop(shown[0], None)
            if vm is None or args.json:
                return
            _print_vm(vm, stores, out)
            out.flush()
            shown[0] += 1

    names: list[tuple[str, str]] = []
    try:
        names = vbox_vms.list_vm_names(manager)
    except vboxmanage.VBoxError as exc:
        raise CommandError(_fail(exc.result)) from None
    if not args.json and not names:
        out.write("No VirtualBox VMs are registered for this user.\n")
        return 0
    if not args.json and err.isatty() and len(names) > 1:
        err.write(
            f"Reading {len(names)} VMs: "
            + ", ".join(display_text(name) for name, _uuid in names)
            + "\n"
        )
        err.flush()
    result: list[list[vbox_vms.VM]] = []
    done: list[bool] = []

    def read() -> None:
        try:
            result.append(vbox_vms.read_vms(manager, names, arrived))
        finally:
            with changed:
                done.append(True)
                changed.notify()

    threading.Thread(target=read, name="vm-list", daemon=True).start()
    while True:
        with changed:
            changed.wait_for(lambda: shown[0] in ready or bool(done))
        show_ready()
        with changed:
            if done and shown[0] not in ready:
                break
    vms = result[0] if result else []
    if args.json:
        data = []
        for vm in vms:
            item = vm.to_json()
            for folder, raw in zip(vm.folders, item["shared_folders"], strict=False):
                raw["zeroinstall_cache"] = vm_share.is_cache_path(folder.host_path, stores)
            item["guest_instructions"] = vm_guest.guest_text(vm, stores)
            data.append(item)
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
    return 0


def _print_vm(vm, stores: list[str], out: IO[str]) -> None:
    from core import vm_guest, vm_share

    ga = vm.ga_version or "unknown"
    if vm.ga_old:
        ga += " (older than 4.2.0: symlinks in shared folders break)"
    out.write(
        f"{display_text(vm.name)}  [{vm.state_text}]  {display_text(vm.os_type) or '?'}  "
        f"Guest Additions {display_text(ga)}\n"
    )
    out.write(f"  uuid {display_text(vm.uuid)}\n")
    if vm.error:
        out.write(f"  problem: {safe_text(vm.error)}\n")
    if vm.known and not vm.folders:
        out.write("  no shared folders\n")
    for f in vm.folders:
        flags = [f.kind, f.access]
        if f.automount:
            where = f" at {display_text(f.mount_point)}" if f.mount_point else ""
            flags.append("auto-mount" + where)
        flags.append("symlinks on" if f.symlinks else "symlinks off")
        cache = "  * Zero Install cache" if vm_share.is_cache_path(f.host_path, stores) else ""
        out.write(
            f"  {display_text(f.name)} -> {display_text(f.host_path)} ({', '.join(flags)}){cache}\n"
        )
    out.write("  In the guest:\n")
    out.write(_indent(vm_guest.guest_text(vm, stores), "    "))
    out.write("\n")


def _store_paths() -> list[str]:
    from core import stores

    try:
        return [s.path for s in stores.discover_stores()]
    except OSError:
        return []


# --- vm share / unshare ---------------------------------------------------------------------------


def _read(manager, ref: str):
    """The VM named ``ref`` (name or UUID), or raise CommandError with VBoxManage's error."""
    from core import vbox_vms

    vm = vbox_vms.read_vm(manager, ref, "")  # named by its UUID from then on
    if vm.error and not vm.state:
        raise CommandError(f"{display_text(ref)}: {safe_text(vm.error)}")
    return vm


def _run_all(manager, vm, commands, out: IO[str], err: IO[str]) -> bool:
    from core import vboxmanage

    ok = True
    for args in commands:
        out.write("$ " + safe_text(vboxmanage.command_line(args)) + "\n")
        out.flush()
        result = manager.run(args, vm=vm.ref)
        if not result.ok:
            err.write(f"{display_text(vm.name)}: {_fail(result)}\n")
            ok = False
            break
    return ok


def cmd_vm_share(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:

    from core import vbox_vms, vm_guest, vm_share

    host_path = (
        os.path.abspath(args.host_path) if args.host_path else vm_share.default_host_path()[0]
    )
    request = vm_share.ShareRequest(
        host_path=host_path,
        name=vm_share.DEFAULT_SHARE_NAME if args.name is None else args.name,
        readonly=not args.writable,
        automount=args.automount,
        mount_point=args.mount_point,
        transient=True if args.transient else None,
        symlinks=args.symlinks,
    )
    problem = request.check()
    if problem.startswith(("the share name", "the mount point", "symlink creation")):
        raise UsageError(
            problem + (" (add --writable, or leave out --symlinks)" if request.symlinks else "")
        )
    if problem:
        raise CommandError(problem)
    manager = _vbox()
    for warning in vm_share.general_warnings(request):
        err.write(f"warning: {warning}\n")
    stores = _store_paths()
    failed = 0
    refs = list(dict.fromkeys(args.vms))  # each VM once, in the order given
    # Read side by side: a stuck VirtualBox costs one timeout, not one per VM.
    for ref, vm in zip(refs, vbox_vms.read_vms(manager, [(ref, "") for ref in refs]), strict=False):
        if not vm.known:
            err.write(f"zeroinstall-admin: {display_text(ref)}: {safe_text(vm.error)}\n")
            failed += 1
            continue
        refused = vm_share.share_problem(vm, request)
        if refused:
            err.write(f"zeroinstall-admin: {safe_text(refused)}; nothing was run for it\n")
            failed += 1
            continue
        for warning in vm_share.share_warnings(vm, request):
            err.write(f"warning: {safe_text(warning)}\n")
        transient = request.transient_for(vm)
        how = "for this session only (transient)" if transient else "permanently"
        name = display_text(vm.name)
        out.write(
            f"{name}: sharing {display_path(request.host_path)} as "
            f"'{display_text(request.name)}' {how}, "
            f"{'read-only' if request.readonly else 'writable'}\n"
        )
        if not _run_all(manager, vm, vm_share.share_commands(vm, request), out, err):
            failed += 1
            continue
        if transient and not args.transient:
            out.write(
                f"  The share ends when '{name}' stops; run this again after it "
                "stops to make it permanent.\n"
            )
        now = vbox_vms.read_vm(manager, vm.ref, vm.uuid)
        out.write(f"\nIn the guest of {name}:\n")
        out.write(_indent(vm_guest.guest_text(now, stores), "  "))
        out.write("\n")
    return 1 if failed else 0


def cmd_vm_unshare(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import vbox_vms, vm_share

    manager = _vbox()
    vm = _read(manager, args.vm)
    if vm.folder(args.name) is None:
        names = ", ".join(sorted({display_text(f.name) for f in vm.folders})) or "none"
        raise CommandError(
            f"{display_text(vm.name)} has no shared folder named '{display_text(args.name)}' "
            f"(it has: {names})"
        )
    for folder in [f for f in vm.folders if f.name == args.name]:
        problem = vm_share.unshare_problem(vm, folder)
        if problem:
            raise CommandError(f"{problem}; nothing was run")
    ok = True
    for transient in sorted({f.transient for f in vm.folders if f.name == args.name}, reverse=True):
        ok = (
            _run_all(manager, vm, vm_share.unshare_commands(vm, args.name, transient), out, err)
            and ok
        )
        vm = vbox_vms.read_vm(manager, vm.ref, vm.uuid)  # the symlink setting went with the first
    if ok:
        out.write(f"{display_text(vm.name)}: '{display_text(args.name)}' is no longer shared\n")
    return 0 if ok else 1


# --- snippet --------------------------------------------------------------------------------------


def cmd_snippet(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:

    from core import snippets

    version = None
    if args.libvirt_version:
        version = snippets.parse_libvirt_version(args.libvirt_version)
        if version is None:
            raise UsageError(
                f"--libvirt-version '{args.libvirt_version}' is not a version like 11.0"
            )
    elif args.kind == "libvirt":
        version = snippets.detect_libvirt_version()
    opts = snippets.with_defaults(
        snippets.SnippetOptions(),
        name=args.name,
        host_path=os.path.abspath(args.host_path) if args.host_path else None,
        guest_path=args.guest_path,
        writable=args.writable or None,
        guest_cache=os.path.abspath(args.guest_cache) if args.guest_cache else None,
        proto=args.proto,
        libvirt_version=version,
    )
    try:
        text = snippets.generate(args.kind, opts)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out.write(text)
    return 0
