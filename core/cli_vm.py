"""The command line's ``vm list|share|unshare`` and ``snippet``: sharing the cache with virtual
machines. ``vm`` drives VirtualBox through ``core.vbox``; ``snippet`` needs no VirtualBox."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import IO, Any

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
    from core import vbox
    from core.cli import CommandError

    manager = vbox.VBoxManage.find()
    if manager is None:
        problem = vbox.env_problem()
        raise CommandError(
            "VBoxManage not found: install VirtualBox, or set $VBOX_MANAGE to its VBoxManage"
            + (f" ({problem})" if problem else "")
        )
    return manager


def _fail(result) -> str:
    """VBoxManage's error line, and on the next line what it means."""
    plain = result.explanation
    return f"{result.error_text}\n  {plain}" if plain else result.error_text


# --- vm list --------------------------------------------------------------------------------------


def cmd_vm_list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import vbox
    from core.cli import CommandError

    manager = _vbox()
    try:
        vms = vbox.list_vms(manager)
    except vbox.VBoxError as exc:
        raise CommandError(_fail(exc.result)) from None
    stores = _store_paths()
    if args.json:
        data = []
        for vm in vms:
            item = vm.to_json()
            for folder, raw in zip(vm.folders, item["shared_folders"]):
                raw["zeroinstall_cache"] = vbox.is_cache_path(folder.host_path, stores)
            data.append(item)
        json.dump(data, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    if not vms:
        out.write("No VirtualBox VMs are registered for this user.\n")
        return 0
    for vm in vms:
        ga = vm.ga_version or "unknown"
        if vm.ga_old:
            ga += " (older than 4.2.0: symlinks in shared folders break)"
        out.write(f"{vm.name}  [{vm.state_text}]  {vm.os_type or '?'}  Guest Additions {ga}\n")
        out.write(f"  uuid {vm.uuid}\n")
        if vm.error:
            out.write(f"  problem: {vm.error}\n")
        if not vm.folders:
            out.write("  no shared folders\n")
        for f in vm.folders:
            flags = [f.kind, f.access]
            if f.automount:
                flags.append("auto-mount" + (f" at {f.mount_point}" if f.mount_point else ""))
            flags.append("symlinks on" if f.symlinks else "symlinks off")
            cache = "  * Zero Install cache" if vbox.is_cache_path(f.host_path, stores) else ""
            out.write(f"  {f.name} -> {f.host_path} ({', '.join(flags)}){cache}\n")
    return 0


def _store_paths() -> list[str]:
    from core import stores

    try:
        return [s.path for s in stores.discover_stores()]
    except OSError:
        return []


# --- vm share / unshare ---------------------------------------------------------------------------


def _read(manager, ref: str):
    """The VM named ``ref`` (name or UUID), or raise CommandError with VBoxManage's error."""
    from core import vbox
    from core.cli import CommandError

    vm = vbox.read_vm(manager, ref, "")  # named by its UUID from then on
    if vm.error and not vm.state:
        raise CommandError(f"{ref}: {vm.error}")
    return vm


def _run_all(manager, vm, commands, out: IO[str], err: IO[str]) -> bool:
    from core import vbox

    ok = True
    for args in commands:
        out.write("$ " + vbox.command_line(args) + "\n")
        out.flush()
        result = manager.run(args, vm=vm.ref)
        if not result.ok:
            err.write(f"{vm.name}: {_fail(result)}\n")
            ok = False
            break
    return ok


def cmd_vm_share(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    import os

    from core import vbox
    from core.cli import CommandError, UsageError

    host_path = os.path.abspath(args.host_path) if args.host_path else vbox.default_host_path()[0]
    request = vbox.ShareRequest(
        host_path=host_path,
        name=vbox.DEFAULT_SHARE_NAME if args.name is None else args.name,
        readonly=not args.writable,
        automount=args.automount,
        mount_point=args.mount_point,
        transient=True if args.transient else None,
        symlinks=args.symlinks,
    )
    problem = request.check()
    if problem.startswith(("the share name", "the mount point")):
        raise UsageError(problem)
    if problem:
        raise CommandError(problem)
    manager = _vbox()
    for warning in vbox.general_warnings(request):
        err.write(f"warning: {warning}\n")
    failed = 0
    for ref in dict.fromkeys(args.vms):  # each VM once, in the order given
        try:
            vm = _read(manager, ref)
        except CommandError as exc:
            err.write(f"zeroinstall-admin: {exc}\n")
            failed += 1
            continue
        for warning in vbox.share_warnings(vm, request):
            err.write(f"warning: {warning}\n")
        transient = request.transient_for(vm)
        how = "for this session only (transient)" if transient else "permanently"
        out.write(
            f"{vm.name}: sharing {request.host_path} as '{request.name}' {how}, "
            f"{'read-only' if request.readonly else 'writable'}\n"
        )
        if _run_all(manager, vm, vbox.share_commands(vm, request), out, err):
            if transient and not args.transient:
                out.write(
                    f"  The share ends when '{vm.name}' stops; run this again after it "
                    "stops to make it permanent.\n"
                )
        else:
            failed += 1
    if failed == 0:
        out.write("\nIn each guest:\n")
        for line in vbox.guest_instructions(request.name, request.readonly).splitlines():
            out.write(f"  {line}\n" if line else "\n")
    return 1 if failed else 0


def cmd_vm_unshare(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import vbox
    from core.cli import CommandError

    manager = _vbox()
    vm = _read(manager, args.vm)
    if vm.folder(args.name) is None:
        names = ", ".join(sorted({f.name for f in vm.folders})) or "none"
        raise CommandError(f"{vm.name} has no shared folder named '{args.name}' (it has: {names})")
    ok = True
    for transient in sorted({f.transient for f in vm.folders if f.name == args.name}, reverse=True):
        ok = _run_all(manager, vm, vbox.unshare_commands(vm, args.name, transient), out, err) and ok
    if ok:
        out.write(f"{vm.name}: '{args.name}' is no longer shared\n")
    return 0 if ok else 1


# --- snippet --------------------------------------------------------------------------------------


def cmd_snippet(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    import os

    from core import snippets
    from core.cli import UsageError

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
