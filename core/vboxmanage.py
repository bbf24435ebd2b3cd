"""Finding and running ``VBoxManage``: every call with the resolved executable, an argument list,
no shell and a timeout, and a :class:`VBoxResult` (with a plain explanation of its error) instead
of an exception.

A VBoxManage stuck on a dead VBoxSVC is killed with its process group; calls about one VM are made
one at a time (a lock per VM, shared by every thread of the process), because VirtualBox itself
refuses a second session lock on a machine; calls still running when this process ends are killed.
How VBoxManage fails is written down in ``shared/reference/virtualbox.md``;
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

DEFAULT_TIMEOUT = 30.0
"""Seconds any one VBoxManage call may take before it is killed."""


_ERROR = re.compile(r"^VBoxManage(?:\.exe)?: error: (.*)$")
_CODE = re.compile(r"code (\w+) \((0x[0-9a-fA-F]+)\)")


UNIX_LOCATIONS = [
    "/usr/bin/VBoxManage",  # Linux packages (a link into /usr/lib/virtualbox or /opt/VirtualBox)
    "/usr/local/bin/VBoxManage",
    "/usr/lib/virtualbox/VBoxManage",
    "/opt/VirtualBox/VBoxManage",
    "/Applications/VirtualBox.app/Contents/MacOS/VBoxManage",  # macOS
]
"""Where VirtualBox installs VBoxManage on Linux and macOS, when it is not on PATH."""


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


class VBoxError(Exception):
    """A VBoxManage call that failed where nothing sensible can go on; carries its result."""

    def __init__(self, result: VBoxResult) -> None:
        super().__init__(result.summary)
        self.result = result
