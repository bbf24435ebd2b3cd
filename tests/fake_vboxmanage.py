"""A stand-in for ``VBoxManage`` that behaves as ``shared/reference/virtualbox.md`` describes.

VirtualBox cannot be installed on the project's machines, so the tests run this program instead,
as a real executable found through ``$VBOX_MANAGE`` or PATH (see ``install`` below). Its machines
live in a JSON file named by ``$FAKE_VBOX_STATE``::

    {"version": "7.0.10r158379",
     "hang": false,                      # true, or a list of subcommands that hang ("showvminfo")
     "delay": 0,                         # seconds every call takes (a slow VBoxSVC), e.g. 1.5
     "gate": {"showvminfo": 3},          # such calls wait until 3 of them run at the same time
     "vms": [{"name": "web server", "uuid": "...", "state": "running",
              "ostype": "Ubuntu (64-bit)",
              "ga_version": "7.0.10 r158379",    # showvminfo's GuestAdditionsVersion (running only)
              "ga_property": "7.0.10",           # /VirtualBox/GuestAdd/Version, or null
              "folders": [{"name": "ZeroInstall", "path": "/var/cache/...", "transient": false,
                           "readonly": true, "automount": false, "mount_point": ""}],
              "extradata": {"VBoxInternal2/...": "1"}}]}

Every call is appended to ``$FAKE_VBOX_STATE.log`` as one JSON list (its arguments), so tests can
check exactly what was run; ``$FAKE_VBOX_STATE.events`` gets ``["start"|"end", pid, args]`` lines,
to check which calls overlapped. A hanging, slow or gated call holds no lock on the state while
it waits, as VBoxManage holds none on another VM. Exit codes and error lines are VBoxManage's:
0 success, 1 runtime error (``VBoxManage: error: ...`` with ``Details:`` and ``Context:`` lines),
2 syntax error.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import sys
import time

PROG = "VBoxManage"
RUNNING = ("running", "paused", "teleporting", "livesnapshotting")
"""The states ``list runningvms`` shows; transient folders need one of them."""

CODES = {
    "VBOX_E_OBJECT_NOT_FOUND": "0x80bb0001",
    "VBOX_E_INVALID_VM_STATE": "0x80bb0002",
    "VBOX_E_INVALID_OBJECT_STATE": "0x80bb0007",
    "VBOX_E_OBJECT_IN_USE": "0x80bb000c",
    "NS_ERROR_INVALID_ARG": "0x80070057",
}


class Failure(Exception):
    def __init__(self, message: str, code: str | None = None, context: str = "", exit: int = 1):
        super().__init__(message)
        self.message = message
        self.code = code
        self.context = context
        self.exit = exit


def syntax(message: str) -> Failure:
    return Failure(message, exit=2)


# --- state ----------------------------------------------------------------------------------------


def load(handle) -> dict:
    handle.seek(0)
    text = handle.read()
    return json.loads(text) if text.strip() else {"vms": []}


def save(handle, state: dict) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(state, indent=1, ensure_ascii=False))
    handle.flush()


def find_vm(state: dict, ref: str) -> dict:
    for vm in state["vms"]:
        if vm["name"] == ref or vm["uuid"] == ref:
            return vm
    raise Failure(
        f"Could not find a registered machine named '{ref}'",
        "VBOX_E_OBJECT_NOT_FOUND",
        "FindMachine(Bstr(VMNameOrUuid).raw(), machine.asOutParam())",
    )


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- commands -------------------------------------------------------------------------------------


def cmd_list(state: dict, args: list[str], out: list[str]) -> None:
    if not args or args[0] not in ("vms", "runningvms"):
        raise syntax(f"Unknown subcommand '{' '.join(args)}'")
    for vm in state["vms"]:
        if args[0] == "runningvms" and vm["state"] not in RUNNING:
            continue
        name = "<inaccessible>" if vm.get("inaccessible") else vm["name"]
        out.append(f'"{name}" {{{vm["uuid"]}}}')


def _ga_running(vm: dict) -> str | None:
    return vm.get("ga_version") if vm["state"] in RUNNING else None


def cmd_showvminfo(state: dict, args: list[str], out: list[str]) -> None:
    machine = "--machinereadable" in args
    rest = [a for a in args if a not in ("--machinereadable", "--details")]
    if len(rest) != 1:
        raise syntax("Incorrect number of parameters")
    vm = find_vm(state, rest[0])
    permanent = [f for f in vm.get("folders", []) if not f.get("transient")]
    transient = [f for f in vm.get("folders", []) if f.get("transient")]
    if machine:
        out += [
            f"name={quote(vm['name'])}",
            "Encryption:     disabled",
            'groups="/"',
            f"ostype={quote(vm.get('ostype', 'Other/Unknown'))}",
            f'UUID="{vm["uuid"]}"',
            "memory=2048",
            "cpus=2",
            '"SATA-0-0"="/home/u/VirtualBox VMs/disk.vdi"',
            f'VMState="{vm["state"]}"',
            'VMStateChangeTime="2022-12-17T09:55:20.000000000"',
            "VRDEClients==0",
            'VideoMode="1024,768,32"@0,0 1',
            " rec_screen0",
        ]
        for i, f in enumerate(permanent, 1):
            out.append(f"SharedFolderNameMachineMapping{i}={quote(f['name'])}")
            out.append(f"SharedFolderPathMachineMapping{i}={quote(f['path'])}")
        if vm["state"] in RUNNING:
            for i, f in enumerate(transient, 1):
                out.append(f"SharedFolderNameTransientMapping{i}={quote(f['name'])}")
                out.append(f"SharedFolderPathTransientMapping{i}={quote(f['path'])}")
        ga = _ga_running(vm)
        if ga is not None:
            out.append("GuestAdditionsRunLevel=2")
            out.append(f"GuestAdditionsVersion={quote(ga)}")
            out.append("GuestAdditionsFacility_VirtualBox Base Driver=50,1671300000000")
        return
    since = "(since 2022-12-17T09:55:20.000000000)"
    out += [
        "Name:".ljust(28) + vm["name"],
        "Encryption:".ljust(28) + "disabled",
        "Groups:".ljust(28) + "/",
        "Guest OS:".ljust(28) + vm.get("ostype", "Other/Unknown"),
        "UUID:".ljust(28) + vm["uuid"],
        "Memory size:".ljust(28) + "2048MB",
        "State:".ljust(28) + f"{vm['state'].replace('poweroff', 'powered off')} {since}",
    ]
    shown = permanent + (transient if vm["state"] in RUNNING else [])
    if not shown:
        out.append("Shared folders:".ljust(28) + "<none>")
    else:
        out.append("Shared folders:".ljust(28))
        out.append("")
        for f in shown:
            kind = "transient mapping" if f.get("transient") else "machine mapping"
            line = f"Name: '{f['name']}', Host path: '{f['path']}' ({kind}), "
            line += "readonly" if f.get("readonly") else "writable"
            if f.get("automount"):
                line += ", auto-mount"
            if f.get("mount_point"):
                line += f", mount-point: '{f['mount_point']}'"
            out.append(line)
        out.append("")
    ga = _ga_running(vm)
    if ga is not None:
        out.append("Additions run level:".ljust(28) + "2")
        out.append("Additions version".ljust(28) + ga)
    out.append("Guest Facilities:".ljust(28) + "")


def _options(args: list[str], flags: set[str], valued: set[str]) -> dict[str, str | bool]:
    found: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        key, _, inline = arg.partition("=")
        if key in ("--hostpath", "--name", "--auto-mount-point") and key in valued:
            if inline:
                found[key] = inline
            elif i + 1 < len(args):
                found[key] = args[i + 1]
                i += 1
            else:
                raise syntax(f"Option '{key}' requires an argument")
        elif arg in flags:
            found[arg] = True
        elif arg == "-automount":
            found["--automount"] = True
        else:
            raise syntax(f"Invalid parameter '{arg}'")
        i += 1
    return found


def _check_name(name: str) -> None:
    for ch, what in ((" ", "space"), ("\t", "tab"), ("\n", "newline")):
        if ch in name:
            raise syntax(f"Invalid shared folder name '{name}': contains {what}")


def _lock_for_permanent(vm: dict) -> None:
    if vm["state"] in RUNNING:
        raise Failure(
            f"The machine '{vm['name']}' is already locked for a session (or being unlocked)",
            "VBOX_E_INVALID_OBJECT_STATE",
            "LockMachine(a->session, LockType_Write)",
        )
    if vm["state"] in ("saved", "aborted-saved"):
        raise Failure(
            "The machine is not mutable or running (state is Saved)",
            "VBOX_E_INVALID_VM_STATE",
            "CreateSharedFolder(Bstr(name).raw(), Bstr(hostpath).raw(), fWritable, fAutoMount, "
            "Bstr(mountpoint).raw())",
        )


def cmd_sharedfolder(state: dict, args: list[str], out: list[str]) -> bool:
    if len(args) < 2 or args[0] not in ("add", "remove"):
        raise syntax("Invalid parameter")
    verb, ref, rest = args[0], args[1], args[2:]
    if verb == "add":
        opts = _options(
            rest,
            {"--readonly", "--transient", "--automount"},
            {"--name", "--hostpath", "--auto-mount-point"},
        )
    else:
        opts = _options(rest, {"--transient"}, {"--name"})
    name = opts.get("--name")
    if not isinstance(name, str) or not name:
        raise syntax("No shared folder name (--name) was given")
    _check_name(name)
    hostpath = opts.get("--hostpath")
    if verb == "add" and (not isinstance(hostpath, str) or not hostpath):
        raise syntax("No host path (--hostpath) was given")
    vm = find_vm(state, ref)
    transient = bool(opts.get("--transient"))
    if transient:
        if vm["state"] not in RUNNING:
            raise Failure(f"Machine '{vm['name']}' is not currently running.")
    else:
        _lock_for_permanent(vm)
    folders = vm.setdefault("folders", [])
    same = [f for f in folders if f["name"] == name and bool(f.get("transient")) == transient]
    if verb == "remove":
        if not same:
            raise Failure(
                f"Could not find a shared folder named '{name}'",
                "VBOX_E_OBJECT_NOT_FOUND",
                "RemoveSharedFolder(Bstr(name).raw())",
            )
        folders.remove(same[0])
        return True
    if same:
        raise Failure(
            f"Shared folder named '{name}' already exists",
            "VBOX_E_OBJECT_IN_USE",
            "CreateSharedFolder(Bstr(name).raw(), Bstr(hostpath).raw(), fWritable, fAutoMount, "
            "Bstr(mountpoint).raw())",
        )
    assert isinstance(hostpath, str)
    path = os.path.abspath(hostpath)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise Failure(
            f"RTPathQueryInfo failed on shared folder path '{path}': VERR_FILE_NOT_FOUND",
            "NS_ERROR_INVALID_ARG",
            "CreateSharedFolder(...)",
        ) from None
    if not stat.S_ISDIR(mode):
        raise Failure(
            f"Shared folder path '{path}' is not a directory",
            "NS_ERROR_INVALID_ARG",
            "CreateSharedFolder(...)",
        )
    mount_point = opts.get("--auto-mount-point", "")
    folders.append(
        {
            "name": name,
            "path": path,
            "transient": transient,
            "readonly": bool(opts.get("--readonly")),
            "automount": bool(opts.get("--automount")),
            "mount_point": mount_point if isinstance(mount_point, str) else "",
        }
    )
    return True


def _extradata(state: dict, ref: str) -> dict:
    if ref == "global":
        return state.setdefault("global_extradata", {})
    return find_vm(state, ref).setdefault("extradata", {})


def cmd_setextradata(state: dict, args: list[str], out: list[str]) -> bool:
    if len(args) not in (2, 3):
        raise syntax("Incorrect number of parameters")
    data = _extradata(state, args[0])
    if len(args) == 2 or args[2] == "":
        data.pop(args[1], None)
    else:
        data[args[1]] = args[2]
    return True


def cmd_getextradata(state: dict, args: list[str], out: list[str]) -> None:
    if len(args) != 2:
        raise syntax("Incorrect number of parameters")
    data = _extradata(state, args[0])
    if args[1] == "enumerate":
        out += [f"Key: {k}, Value: {v}" for k, v in data.items()]
    elif args[1] in data:
        out.append(f"Value: {data[args[1]]}")
    else:
        out.append("No value set!")


def cmd_guestproperty(state: dict, args: list[str], out: list[str]) -> None:
    if len(args) != 3 or args[0] != "get":
        raise syntax("Incorrect parameters")
    vm = find_vm(state, args[1])
    value = vm.get("ga_property") if args[2] == "/VirtualBox/GuestAdd/Version" else None
    out.append(f"Value: {value}" if value else "No value set!")


COMMANDS = {
    "list": cmd_list,
    "showvminfo": cmd_showvminfo,
    "sharedfolder": cmd_sharedfolder,
    "setextradata": cmd_setextradata,
    "getextradata": cmd_getextradata,
    "guestproperty": cmd_guestproperty,
}


def main(argv: list[str]) -> int:
    path = os.environ.get("FAKE_VBOX_STATE")
    if not path:
        sys.stderr.write(f"{PROG}: error: FAKE_VBOX_STATE is not set\n")
        return 1
    with open(path + ".log", "a", encoding="utf-8") as log:
        log.write(json.dumps(argv, ensure_ascii=False) + "\n")
    _event(path, "start", argv)
    try:
        return _answer(path, argv)
    finally:
        _event(path, "end", argv)


def _event(path: str, what: str, argv: list[str]) -> None:
    with open(path + ".events", "a", encoding="utf-8") as events:
        events.write(json.dumps([what, os.getpid(), argv], ensure_ascii=False) + "\n")


def _wait_modes(path: str, state: dict, argv: list[str]) -> None:
    """Hang, take ``delay`` seconds, or wait at the gate, holding no lock."""
    command = argv[0] if argv else ""
    hang = state.get("hang")
    if hang is True or (isinstance(hang, list) and command in hang):
        while True:  # as a VBoxManage stuck on a dead VBoxSVC does
            time.sleep(3600)
    if state.get("delay"):
        time.sleep(float(state["delay"]))
    gate = state.get("gate") or {}
    if command in gate:
        # Wait until `gate[command]` such calls have arrived: they can only all arrive if they
        # run side by side. Give up after a minute, as a deadlocked caller would never end.
        folder = f"{path}.gate-{command}"
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(folder)) < int(gate[command]) and time.monotonic() < deadline:
            time.sleep(0.02)


def _answer(path: str, argv: list[str]) -> int:
    with open(path, encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        state = load(handle)
    _wait_modes(path, state, argv)
    with open(path, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        state = load(handle)
        if argv == ["--version"]:
            print(state.get("version", "7.0.10r158379"))
            return 0
        if not argv or argv[0] not in COMMANDS:
            sys.stderr.write(
                f"{PROG}: error: Invalid command '{argv[0] if argv else ''}'\nUsage:\n"
                "VBoxManage [<general option>] <command>\n"
            )
            return 2
        out: list[str] = []
        try:
            changed = COMMANDS[argv[0]](state, argv[1:], out)
        except Failure as failure:
            lines = [f"{PROG}: error: {failure.message}"]
            if failure.code:
                lines.append(
                    f"{PROG}: error: Details: code {failure.code} ({CODES[failure.code]}), "
                    "component MachineWrap, interface IMachine, callee nsISupports"
                )
                lines.append(
                    f'{PROG}: error: Context: "{failure.context}" at line 1234 of file '
                    "VBoxManageMisc.cpp"
                )
            if failure.exit == 2:
                lines.append(f"Usage:\n{PROG} {argv[0]} ...")
            sys.stderr.write("\n".join(lines) + "\n")
            return failure.exit
        if changed:
            save(handle, state)
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    return 0


def install(directory: str, state_file: str, python: str | None = None) -> str:
    """Write an executable ``VBoxManage`` running this file into ``directory``; return its path."""
    exe = os.path.join(directory, "VBoxManage")
    with open(exe, "w", encoding="utf-8") as f:
        f.write(f"#!{python or sys.executable}\n")
        with open(__file__, encoding="utf-8") as source:
            f.write(source.read())
    os.chmod(exe, 0o755)
    if not os.path.exists(state_file):
        with open(state_file, "w", encoding="utf-8") as f:
            json.dump({"version": "7.0.10r158379", "vms": []}, f)
    return exe


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
