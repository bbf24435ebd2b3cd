"""VirtualBox from the host: find ``VBoxManage``, run it, read its output, share the cache.

Every call goes through :func:`run`: the resolved executable, an argument list, no shell, a
timeout (a VBoxManage stuck on a dead VBoxSVC is killed, with its process group), and a
:class:`VBoxResult` instead of an exception. Calls about one VM are made one at a time (a lock per
VM, shared by every thread of the process), because VirtualBox itself refuses a second session
lock on a machine.

What VBoxManage prints, and how it fails, is written down in ``shared/reference/virtualbox.md``;
``tests/fake_vboxmanage.py`` is a stand-in that behaves that way.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

DEFAULT_TIMEOUT = 30.0
"""Seconds any one VBoxManage call may take before it is killed."""

DEFAULT_SHARE_NAME = "ZeroInstall"
GUEST_CACHE = "/var/cache/0install.net/implementations"
"""Where a guest mounts the share: the shared system store's path, whatever the host path."""
SYMLINK_KEY = "VBoxInternal2/SharedFoldersEnableSymlinksCreate/"
GA_PROPERTY = "/VirtualBox/GuestAdd/Version"
OLD_GA = (4, 2, 0)
"""Guest Additions older than this break symlinks in shared folders (0install docs)."""
OLD_GA_WARNING = (
    "Guest Additions {version} are older than 4.2.0: they have problems with symlinks in shared "
    'folders, and a guest that writes to a shared cache may fail with "Incorrect manifest -- '
    'archive is corrupted" although the archive is fine. Update the Guest Additions in this VM.'
)
SYMLINK_WARNING = (
    "Symlink creation lets the guest plant symlinks in the share; in a writable share they can "
    "point anywhere on the host that a program following them may reach. Turn it on only for a "
    "guest-writable cache that you trust the guests with, never for the host's own cache."
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

_LIST_LINE = re.compile(r'^"(.*)" \{([0-9a-fA-F-]+)\}$')
_ERROR = re.compile(r"^VBoxManage(?:\.exe)?: error: (.*)$")
_CODE = re.compile(r"code (\w+) \((0x[0-9a-fA-F]+)\)")
_HUMAN_FOLDER = re.compile(
    r"^Name: '(?P<name>.*?)', Host path: '(?P<path>.*)' \((?P<kind>machine|transient|global) "
    r"mapping\), (?P<access>writable|readonly)(?P<rest>.*)$"
)
_MOUNT_POINT = re.compile(r", mount-point: '(.*)'(?:, symlink-policy: [^,]*)?$")


UNIX_LOCATIONS = [
    "/usr/bin/VBoxManage",  # Linux packages (a link into /usr/lib/virtualbox or /opt/VirtualBox)
    "/usr/local/bin/VBoxManage",
    "/usr/lib/virtualbox/VBoxManage",
    "/opt/VirtualBox/VBoxManage",
    "/Applications/VirtualBox.app/Contents/MacOS/VBoxManage",  # macOS
]
"""Where VirtualBox installs VBoxManage on Linux and macOS, when it is not on PATH."""

# --- finding and running VBoxManage -------------------------------------------------------------


def candidate_paths(env: Mapping[str, str] | None = None, platform: str | None = None) -> list[str]:
    """Where VBoxManage may be, most specific first: ``$VBOX_MANAGE``, PATH, the usual places."""
    env = os.environ if env is None else env
    platform = platform or sys.platform
    found: list[str] = []
    if env.get("VBOX_MANAGE"):
        found.append(env["VBOX_MANAGE"])
    if platform.startswith("win"):
        names = ["VBoxManage.exe"]
        for var in ("VBOX_MSI_INSTALL_PATH", "VBOX_INSTALL_PATH"):
            for folder in env.get(var, "").split(";"):
                if folder.strip():
                    found.append(os.path.join(folder.strip(), "VBoxManage.exe"))
        program_files = env.get("ProgramFiles", r"C:\Program Files")
        found.append(os.path.join(program_files, "Oracle", "VirtualBox", "VBoxManage.exe"))
    else:
        names = ["VBoxManage", "vboxmanage"]
        found += UNIX_LOCATIONS
    on_path = [shutil.which(n, path=env.get("PATH", os.defpath)) for n in names]
    first = found[:1] if env.get("VBOX_MANAGE") else []
    rest = found[1:] if env.get("VBOX_MANAGE") else found
    return first + [p for p in on_path if p] + rest


def find_vboxmanage(env: Mapping[str, str] | None = None) -> str | None:
    """The VBoxManage executable to use, or None when VirtualBox is not installed.

    ``$VBOX_MANAGE`` wins when it names an executable file; otherwise PATH, then the usual
    install locations on Linux, macOS and Windows.
    """
    for path in candidate_paths(env):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    return None


def env_problem(env: Mapping[str, str] | None = None) -> str:
    """Why ``$VBOX_MANAGE`` was not used, in one line, or "" (unset, or an executable)."""
    env = os.environ if env is None else env
    path = env.get("VBOX_MANAGE", "")
    if not path:
        return ""
    if not os.path.exists(path):
        return f"$VBOX_MANAGE names '{path}', which does not exist"
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        return f"$VBOX_MANAGE names '{path}', which is not an executable file"
    return ""


@dataclass(frozen=True)
class VBoxResult:
    """One VBoxManage call: what ran and how it ended. Never raised, always returned."""

    args: tuple[str, ...]  # the arguments after the executable
    returncode: int | None  # None when it did not run or was killed after the timeout
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    failure: str = ""  # why it could not run at all (OSError), else ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.failure

    @property
    def error_line(self) -> str:
        """VBoxManage's own first ``error:`` message (without its prefix), or a one-line reason."""
        if self.failure:
            return self.failure
        if self.timed_out:
            return "VBoxManage did not answer in time and was stopped"
        for line in self.stderr.splitlines():
            match = _ERROR.match(line.strip())
            if match and not match.group(1).startswith(("Details:", "Context:")):
                return match.group(1)
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        if lines:
            return lines[0]
        return "" if self.ok else f"VBoxManage exited with code {self.returncode}"

    @property
    def error_text(self) -> str:
        """The error as shown: ``VBoxManage: error: <its line>`` when VBoxManage said it, else
        why there is no such line (it could not run, timed out, was cancelled)."""
        if self.ok:
            return ""
        if self.failure or self.timed_out:
            return self.error_line
        return f"VBoxManage: error: {self.error_line}"

    @property
    def code(self) -> str:
        """The COM error name from the ``Details:`` line (``VBOX_E_OBJECT_NOT_FOUND``), or ""."""
        match = _CODE.search(self.stderr)
        return match.group(1) if match else ""

    @property
    def explanation(self) -> str:
        """What the error means for the admin, in plain words ("" on success)."""
        return explain(self) if not self.ok else ""

    @property
    def command(self) -> str:
        """The call as a shell command line, for showing (never run through a shell)."""
        return command_line(self.args)

    @property
    def summary(self) -> str:
        """One line: the error and its explanation, or "done"."""
        if self.ok:
            return "done"
        plain = self.explanation
        return f"{self.error_line} ({plain})" if plain else self.error_line


def command_line(args: Sequence[str], exe: str = "VBoxManage") -> str:
    """``VBoxManage`` and the arguments, quoted for a POSIX shell so that it can be pasted."""
    import shlex

    return " ".join([exe, *(shlex.quote(a) for a in args)])


def explain(result: VBoxResult) -> str:
    """A plain explanation of a failed call, from VBoxManage's message and error code."""
    if result.failure.startswith("cancelled"):
        return ""
    if result.failure:
        return "check that VirtualBox is installed and VBoxManage can be run"
    if result.timed_out:
        return (
            "VirtualBox's service may be stuck; try again, or restart VirtualBox "
            "(VBoxSVC) if it keeps happening"
        )
    message = result.error_line
    code = result.code
    if "already locked" in message or "locked by a session" in message:
        return (
            "the VM is running, or another program (the VirtualBox Manager's settings, "
            "another VBoxManage) holds its lock: permanent shares change only while the VM is "
            "stopped; a running VM takes a transient share (until it stops)"
        )
    if "not mutable or running" in message:
        return (
            "the VM is saved (suspended): permanent folders cannot change until it is "
            "started, or its saved state discarded"
        )
    if "is not currently running" in message:
        return "a transient (this session only) share needs the VM to be running"
    if "already exists" in message:
        return (
            "the VM already has a shared folder with this name: pick another name or remove "
            "it first"
        )
    if "Could not find a registered machine" in message:
        return (
            "there is no VM by that name or UUID (it may have been renamed or deleted); "
            "refresh the list"
        )
    if "Could not find a shared folder" in message:
        return "the VM has no shared folder by that name (already removed?); refresh the list"
    if "VERR_FILE_NOT_FOUND" in message or "VERR_PATH_NOT_FOUND" in message:
        return "the host path does not exist: create it or choose another folder"
    if "is not a directory" in message:
        return "the host path is a file, not a folder: share the folder itself"
    if "Invalid shared folder name" in message or "No shared folder name" in message:
        return "a share name must be non-empty and contain no spaces, tabs or newlines"
    if result.returncode == 2:
        return "VBoxManage did not accept the arguments (a different VirtualBox version?)"
    if code == "E_ACCESSDENIED" or "VERR_ACCESS_DENIED" in message:
        return "permission denied: VirtualBox runs as you and cannot read that path"
    return ""


class VBoxManage:
    """A located VBoxManage, with a lock per VM so calls about one VM never overlap."""

    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _locks_guard = threading.Lock()

    def __init__(
        self,
        exe: str,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.exe = exe
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.env = None if env is None else dict(env)
        self.cancel = cancel
        """Once set, running calls are killed and new ones fail at once (the window closed)."""

    @classmethod
    def find(
        cls,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cancel: threading.Event | None = None,
    ) -> VBoxManage | None:
        exe = find_vboxmanage(env)
        return None if exe is None else cls(exe, timeout, env, cancel)

    def with_cancel(self, cancel: threading.Event | None) -> VBoxManage:
        """The same VBoxManage, its calls stopped by ``cancel`` (one job's Cancel)."""
        return VBoxManage(self.exe, self.timeout, self.env, cancel)

    @classmethod
    def _lock(cls, vm: str) -> threading.Lock:
        with cls._locks_guard:
            return cls._locks.setdefault(vm, threading.Lock())

    def run(
        self, args: Sequence[str], vm: str | None = None, timeout: float | None = None
    ) -> VBoxResult:
        """Run VBoxManage with ``args``; with ``vm``, after any other call about that VM ended."""
        limit = self.timeout if timeout is None else timeout
        if vm is None:
            return run(self.exe, args, limit, self.env, self.cancel)
        with self._lock(vm):
            return run(self.exe, args, limit, self.env, self.cancel)


# VBoxManage runs in a session of its own (so a kill reaches its children too), which also means
# it would outlive this process: whatever is still running when this process exits is killed.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()
_exiting = False  # set at exit: a call that starts VBoxManage after that kills it at once


def _kill_running() -> None:
    global _exiting
    with _running_lock:
        _exiting = True
        left = list(_running)
    for proc in left:
        _kill(proc)


atexit.register(_kill_running)


def kill_calls_on_terminate() -> None:
    """Make SIGTERM and SIGHUP kill the running VBoxManage calls before this process ends.

    VBoxManage runs in a session of its own, so a signal to this process alone never reaches it,
    and these signals end Python without its exit handlers. Ctrl-C needs nothing more: it raises
    KeyboardInterrupt, which kills the call being waited for (see :func:`run`). Only from the
    main thread, and only where the signal still has its default action.
    """
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, _terminated)


def _terminated(signum: int, _frame: object) -> None:
    _kill_running()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # end as the signal would have: exit status 128 + signum


def run(
    exe: str,
    args: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> VBoxResult:
    """Run ``exe args`` without a shell; kill it (and its process group) after ``timeout`` s, or
    as soon as ``cancel`` is set (checked ten times a second)."""
    argv = tuple(str(a) for a in args)
    if cancel is not None and cancel.is_set():
        return VBoxResult(argv, None, failure="cancelled before VBoxManage ran")
    child_env = dict(os.environ if env is None else env)
    # Messages in English, so that the explanations recognise them.
    child_env["LC_ALL"] = "C.UTF-8"
    child_env.pop("LANGUAGE", None)
    try:
        proc = subprocess.Popen(
            [exe, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            start_new_session=os.name == "posix",
        )
    except OSError as exc:
        return VBoxResult(argv, None, failure=f"cannot run {exe}: {exc.strerror or exc}")
    with _running_lock:
        _running.add(proc)
        exiting = _exiting
    if exiting:
        _kill(proc)  # this process is exiting: never leave VBoxManage behind
    try:
        return _wait(proc, argv, timeout, cancel)
    except BaseException:
        _kill(proc)  # Ctrl-C (KeyboardInterrupt) while waiting: VBoxManage goes too
        raise
    finally:
        with _running_lock:
            _running.discard(proc)


def _wait(
    proc: subprocess.Popen, argv: tuple[str, ...], timeout: float, cancel: threading.Event | None
) -> VBoxResult:
    """Collect ``proc``'s output, killing it at the deadline or on ``cancel``."""
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0.0, deadline - time.monotonic())
        if cancel is not None:
            wait = min(wait, 0.1)
        try:
            out, err = proc.communicate(timeout=wait)
            return VBoxResult(argv, proc.returncode, _text(out), _text(err))
        except subprocess.TimeoutExpired:
            cancelled = cancel is not None and cancel.is_set()
            if not cancelled and time.monotonic() < deadline:
                continue  # retrying communicate() loses no output
            _kill(proc)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a grandchild holds the pipes open: give up
                out, err = b"", b""
            if cancelled:
                return VBoxResult(argv, None, _text(out), _text(err), failure="cancelled")
            return VBoxResult(argv, None, _text(out), _text(err), timed_out=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", "replace")


# --- parsing ------------------------------------------------------------------------------------


def parse_list(text: str) -> list[tuple[str, str]]:
    """``list vms`` / ``list runningvms``: (name, uuid) pairs; names are not escaped there."""
    found = []
    for line in text.splitlines():
        match = _LIST_LINE.match(line.rstrip("\r"))
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def _unquote(text: str) -> str | None:
    """The value of a ``"..."`` with backslash escapes, or None if ``text`` is not exactly that."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return None
    body = text[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
            continue
        if ch == '"':
            return None  # an unescaped quote inside: not a value we understand
        out.append(ch)
        i += 1
    return "".join(out)


def parse_machinereadable(text: str) -> dict[str, str]:
    """``showvminfo --machinereadable``: key -> value, skipping every line it does not understand.

    Values are ``"..."`` with ``\\"`` and ``\\\\`` escaped, or bare numbers; keys containing ``=``
    are quoted themselves. Lines like ``Encryption:     disabled``, `` rec_screen0``,
    ``VRDEClients==0`` and ``VideoMode="1024,768,32"@0,0 1`` are skipped.
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line or line[0].isspace():
            continue
        if line.startswith('"'):
            # A quoted key: find its closing quote (keys escape like values).
            i = 1
            while i < len(line):
                if line[i] == "\\":
                    i += 2
                    continue
                if line[i] == '"':
                    break
                i += 1
            key = _unquote(line[: i + 1])
            rest = line[i + 1 :]
            if key is None or not rest.startswith("="):
                continue
            value_text = rest[1:]
        else:
            key, sep, value_text = line.partition("=")
            if not sep or not key:
                continue
        if value_text.startswith('"'):
            value = _unquote(value_text)
            if value is None:
                continue
        elif re.fullmatch(r"-?[0-9]+", value_text):
            value = value_text
        else:
            continue
        values[key] = value
    return values


@dataclass(frozen=True)
class SharedFolder:
    name: str
    host_path: str
    transient: bool = False
    readonly: bool | None = None  # None: not known (the human-readable listing did not say)
    automount: bool | None = None
    mount_point: str = ""
    symlinks: bool = False  # SharedFoldersEnableSymlinksCreate/<name> is set to 1

    @property
    def kind(self) -> str:
        return "transient" if self.transient else "permanent"

    @property
    def access(self) -> str:
        return {True: "read-only", False: "writable", None: "?"}[self.readonly]


def parse_human_folders(text: str) -> list[SharedFolder]:
    """The shared folders of the human-readable ``showvminfo``, the only place that says
    read-only, auto-mount and mount point.

    Every ``Name: '...', Host path: '...' (... mapping), ...`` line counts wherever it stands:
    versions differ in how they head and separate the machine and transient groups.
    """
    folders: list[SharedFolder] = []
    for line in text.splitlines():
        match = _HUMAN_FOLDER.match(line.strip("\r"))
        if match is None or match.group("kind") == "global":
            continue
        rest = match.group("rest")
        mount = _MOUNT_POINT.search(rest)
        folders.append(
            SharedFolder(
                name=match.group("name"),
                host_path=match.group("path"),
                transient=match.group("kind") == "transient",
                readonly=match.group("access") == "readonly",
                automount=", auto-mount" in rest,
                mount_point=mount.group(1) if mount else "",
            )
        )
    return folders


def machine_folders(info: Mapping[str, str]) -> list[SharedFolder]:
    """Shared folders (name and host path only) from the machine-readable form."""
    found = []
    for kind, transient in (("Machine", False), ("Transient", True)):
        n = 1
        while f"SharedFolderName{kind}Mapping{n}" in info:
            found.append(
                SharedFolder(
                    name=info[f"SharedFolderName{kind}Mapping{n}"],
                    host_path=info.get(f"SharedFolderPath{kind}Mapping{n}", ""),
                    transient=transient,
                )
            )
            n += 1
    return found


def parse_value(text: str) -> str | None:
    """``Value: x`` from getextradata / guestproperty get; None for ``No value set!``."""
    for line in text.splitlines():
        if line.startswith("Value: "):
            return line[len("Value: ") :].rstrip("\r")
    return None


def parse_extradata_enumerate(text: str) -> dict[str, str]:
    """``getextradata VM enumerate``: ``Key: k, Value: v`` lines."""
    found = {}
    for line in text.splitlines():
        if line.startswith("Key: ") and ", Value: " in line:
            key, _, value = line[len("Key: ") :].partition(", Value: ")
            found[key] = value.rstrip("\r")
    return found


def parse_ga_version(text: str | None) -> tuple[int, ...] | None:
    """``7.0.10 r158379``, ``7.0.10``, ``4.1.2_ubuntu`` -> (7, 0, 10) ...; None if not a version."""
    if not text:
        return None
    head = text.strip().split()[0].split("_")[0] if text.strip() else ""
    match = re.match(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?", head)
    if not match:
        return None
    return tuple(int(p) for p in match.groups() if p is not None)


def ga_is_old(version: str | None) -> bool:
    parsed = parse_ga_version(version)
    return parsed is not None and parsed < OLD_GA


# --- the machines -------------------------------------------------------------------------------


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


class VBoxError(Exception):
    """A VBoxManage call that failed where nothing sensible can go on; carries its result."""

    def __init__(self, result: VBoxResult) -> None:
        super().__init__(result.summary)
        self.result = result


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
