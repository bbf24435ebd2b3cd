"""Running a verb of the privileged helper from the unprivileged app.

:func:`run_helper` decides how: in this process when it already runs as root (or on a fake root,
for tests and image builders), else ``pkexec`` with the installed helper, which asks the admin
through the desktop's polkit agent. When pkexec, the installed helper or an agent is missing (an
SSH or VNC session, a minimal desktop) the outcome says so and carries the equivalent command to
run as root.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from core import root_helper

PKEXEC_CANDIDATES = ("/usr/bin/pkexec", "/bin/pkexec")
AUTH_TIMEOUT_S = 900
"""How long pkexec may wait for the admin to authenticate and the verb to finish."""

DONE = "done"
FAILED = "failed"
"""The helper ran and reported a failure (its message says what and what to do)."""
DISMISSED = "dismissed"
"""The admin closed the authentication dialog (pkexec exit 126)."""
NOT_AUTHORISED = "not-authorised"
"""polkit refused (pkexec exit 127)."""
UNAVAILABLE = "unavailable"
"""No way to get root from here: no pkexec, no installed helper or no polkit agent."""

_NO_AGENT_HINTS = ("no authentication agent", "no session for cookie", "cannot open display",
                   "error creating textual authentication agent")  # fmt: skip
"""pkexec 122 with no agent: "Error executing command as another user: No authentication agent
found." (exit 127, with --disable-internal-agent) or, without a terminal for its own text agent,
"Error creating textual authentication agent: Error opening current controlling terminal ..."."""
_NO_DAEMON_HINTS = ("error getting authority", "error initializing authority")
"""pkexec 122 without a reachable polkit daemon: "Error getting authority: Error initializing
authority: Could not connect: No such file or directory" (exit 127)."""

NO_PKEXEC = "pkexec is not installed (Debian package 'pkexec')"
NO_DAEMON = (
    "pkexec cannot reach the polkit daemon (it says 'Error getting authority'): install the "
    "Debian package 'polkitd' or start it (systemctl start polkit)"
)
NO_AGENT = (
    "no polkit authentication agent is running in this session (an SSH or VNC session, or a "
    "desktop without one), so pkexec cannot ask for the password"
)
REFUSED = (
    "polkit does not let this user do this (pkexec: 'Not authorized'): it asks only an "
    "administrator in an active local session"
)


@dataclass(frozen=True)
class HelperOutcome:
    verb: str
    args: tuple[str, ...]
    status: str
    """One of DONE, FAILED, DISMISSED, NOT_AUTHORISED, UNAVAILABLE."""
    message: str
    """One line for the admin: what happened and, if it failed, what to do."""
    root_command: str
    """The same action as a command for a root shell (shown when it could not run from here)."""
    output: str = ""
    """The helper's own output (its summary on success, its error otherwise)."""

    @property
    def ok(self) -> bool:
        return self.status == DONE


def helper_command(verb: str, *args: str) -> list[str]:
    """The helper's command line: the installed helper, or this source tree's file when the app
    runs from a checkout."""
    if os.path.isfile(root_helper.INSTALLED_PATH):
        return [root_helper.INSTALLED_PATH, verb, *args]
    return ["python3", "-I", os.path.abspath(root_helper.__file__), verb, *args]


def root_command(verb: str, *args: str) -> str:
    """What an admin types in a root shell (or after sudo) to do the same."""
    return "sudo " + shlex.join(helper_command(verb, *args))


def find_pkexec() -> str | None:
    for path in PKEXEC_CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("pkexec")


def _helper_missing() -> str:
    return (f"the privileged helper is not installed at {root_helper.INSTALLED_PATH} (install "
            "the zeroinstall-admin package)")  # fmt: skip


def unavailable_reason() -> str | None:
    """Why changes cannot be made from this process (None when they can: root, or pkexec and the
    installed helper are there; the polkit daemon and agent are checked by :func:`readiness`)."""
    if os.geteuid() == 0:
        return None
    if find_pkexec() is None:
        return NO_PKEXEC
    if not os.path.isfile(root_helper.INSTALLED_PATH):
        return _helper_missing()
    return None


PKCHECK_TIMEOUT_S = 10
PKCHECK_DIRS = "/usr/bin:/bin"
"""Where pkcheck (Debian package polkitd) is looked for."""

AS_ROOT = "as-root"
"""This process is root: changes are made at once, nothing asks."""
ASKS = "asks"
"""pkexec will ask for an administrator's password (through the session's polkit agent)."""
ALLOWED = "allowed"
"""polkit allows it without asking (a local rule)."""


@dataclass(frozen=True)
class Readiness:
    """What running a helper verb from here will involve, checked before anything runs."""

    state: str
    """AS_ROOT, ASKS, ALLOWED, UNAVAILABLE or NOT_AUTHORISED."""
    reason: str = ""
    """For UNAVAILABLE and NOT_AUTHORISED: what is missing (pkexec, the polkit daemon, the
    installed helper or policy) or what polkit said."""

    @property
    def possible(self) -> bool:
        return self.state in (AS_ROOT, ASKS, ALLOWED)


def readiness(verb: str = "enable") -> Readiness:
    """Whether ``verb`` can run from here and whether it will ask for a password: root; pkexec
    and the installed helper; then ``pkcheck`` (from polkitd, like the daemon) asks polkit
    without any dialog: 0 allowed, 2 needs authentication, 1 refused, "Error getting authority"
    when no daemon answers. Whether an agent will show the dialog is only known when pkexec
    runs (see :func:`interpret`)."""
    if os.geteuid() == 0:
        return Readiness(AS_ROOT)
    if find_pkexec() is None:
        return Readiness(UNAVAILABLE, NO_PKEXEC)
    if not os.path.isfile(root_helper.INSTALLED_PATH):
        return Readiness(UNAVAILABLE, _helper_missing())
    pkcheck = shutil.which("pkcheck", path=PKCHECK_DIRS)
    if pkcheck is None:
        return Readiness(UNAVAILABLE, "the polkit daemon is not installed (Debian package "
                                      "'polkitd')")  # fmt: skip
    action = root_helper.polkit_action(verb)
    try:
        proc = subprocess.run(
            [pkcheck, "--action-id", action, "--process", str(os.getpid())],
            capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
            timeout=PKCHECK_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return Readiness(UNAVAILABLE, NO_DAEMON)
    said = proc.stderr.lower()
    if any(hint in said for hint in _NO_DAEMON_HINTS) or "could not connect" in said:
        return Readiness(UNAVAILABLE, NO_DAEMON)
    if proc.returncode == 0:
        return Readiness(ALLOWED)
    if proc.returncode == 2:
        return Readiness(ASKS)
    if proc.returncode == 1:
        return Readiness(NOT_AUTHORISED, REFUSED)
    if "not registered" in said:
        return Readiness(UNAVAILABLE, f"the polkit policy for {action} is not installed "
                                      "(install the zeroinstall-admin package)")  # fmt: skip
    first = proc.stderr.strip().splitlines()[:1]
    return Readiness(UNAVAILABLE, "polkit could not be asked" + (f": {first[0]}" if first else ""))


def _in_process(verb: str, args: tuple[str, ...], root: str) -> HelperOutcome:
    command = root_command(verb, *args)
    try:
        summary = root_helper.one_line(root_helper.run_verb(verb, args, root=root))
    except root_helper.HelperError as exc:
        message = root_helper.one_line(str(exc))
        return HelperOutcome(verb, args, FAILED, message, command, message)
    return HelperOutcome(verb, args, DONE, summary, command, summary)


def run_helper(
    verb: str, *args: str, root: str | None = None, terminal: bool = False
) -> HelperOutcome:
    """Run one helper verb with root's rights; never raises for an expected failure.

    ``root`` is a fake root prefix: the steps then run in this process on files under it (for
    tests, image builders and ``--root``). ``terminal``: pkexec may ask for the password on this
    process's terminal (the command line) instead of only through a desktop agent. Unknown verbs
    raise ``ValueError`` (a programming error).
    """
    if verb not in root_helper.VERBS:
        raise ValueError(f"unknown helper verb '{verb}'")
    argv = tuple(args)
    command = root_command(verb, *argv)
    if root is not None:
        return _in_process(verb, argv, root)
    if os.geteuid() == 0:
        return _in_process(verb, argv, "/")
    pkexec = find_pkexec()
    if pkexec is None:
        return HelperOutcome(
            verb, argv, UNAVAILABLE, f"{NO_PKEXEC}: run this as root instead: {command}", command,
        )  # fmt: skip
    if not os.path.isfile(root_helper.INSTALLED_PATH):
        return HelperOutcome(
            verb, argv, UNAVAILABLE,
            f"the privileged helper is not installed at {root_helper.INSTALLED_PATH} (install the "
            "zeroinstall-admin package): run this as root instead: " + command, command,
        )  # fmt: skip
    # Without a terminal (the window), no text agent: a missing desktop agent then fails at once
    # instead of prompting on a terminal nobody watches.
    options = [] if terminal else ["--disable-internal-agent"]
    proc = None
    try:
        with _signals_held():  # a Ctrl-C while it starts is taken once proc is known
            try:
                proc = subprocess.Popen(
                    [pkexec, *options, root_helper.INSTALLED_PATH, verb, *argv],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    stdin=None if terminal else subprocess.DEVNULL,
                )  # fmt: skip
            except OSError as exc:
                message = f"pkexec could not start: {exc}"
                return HelperOutcome(verb, argv, UNAVAILABLE, message, command)
        stdout, stderr = proc.communicate(timeout=AUTH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        assert proc is not None
        _stop(proc)
        return HelperOutcome(
            verb, argv, FAILED,
            f"no answer within {AUTH_TIMEOUT_S // 60} minutes; nothing was confirmed", command,
        )  # fmt: skip
    except BaseException:  # Ctrl-C, SIGTERM (core.cli), a cancelled window: pkexec goes too
        if proc is not None:
            _stop(proc)
        raise
    return interpret(
        verb, argv, proc.returncode,
        stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
    )  # fmt: skip


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block and take them after it: one arriving while
    ``Popen`` starts pkexec would otherwise end the command with pkexec running and nobody
    knowing its process. Only the main thread runs signal handlers; elsewhere nothing is held."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    # (A handler set from C, which getsignal gives as None, could not be put back: left alone.)
    held = [n for n in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(n) is not None]
    previous = {signum: signal.signal(signum, lambda n, _f: arrived.append(n)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for first in arrived[:1]:
            signal.raise_signal(first)  # the usual handler, now: KeyboardInterrupt, exit...


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End pkexec (still asking for the password) and wait for it. Once it has started the
    helper, that process is root's and cannot be signalled from here: it ends when this process
    does (the helper asks the kernel for that), so it is not waited for."""
    try:
        proc.kill()
    except PermissionError:
        return
    except OSError:
        pass
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def interpret(
    verb: str, args: tuple[str, ...], returncode: int, stdout: str, stderr: str
) -> HelperOutcome:
    """Turn pkexec's and the helper's exit code and output into an outcome."""
    command = root_command(verb, *args)
    err_lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = err_lines[-1] if err_lines else ""
    if returncode == 0:
        # The helper prints its summary as one line; an older one printed a name's newline as
        # it was: then every line is the message, never only the last.
        summary = root_helper.one_line(stdout.strip()) or "done"
        return HelperOutcome(verb, args, DONE, summary, command, stdout.strip())
    lowered = stderr.lower()
    pkexec_said = (returncode in (126, 127)) and not last.startswith("zeroinstall-admin-helper:")
    if pkexec_said and any(hint in lowered for hint in _NO_DAEMON_HINTS):
        return HelperOutcome(
            verb, args, UNAVAILABLE, f"{NO_DAEMON}; or run this as root instead: {command}",
            command, stderr.strip(),
        )  # fmt: skip
    if pkexec_said and any(hint in lowered for hint in _NO_AGENT_HINTS):
        return HelperOutcome(
            verb, args, UNAVAILABLE, f"{NO_AGENT}: run this as root instead: {command}", command,
            stderr.strip(),
        )  # fmt: skip
    if returncode == 126:
        return HelperOutcome(
            verb, args, DISMISSED, "authentication was dismissed: nothing was changed", command,
            stderr.strip(),
        )  # fmt: skip
    if returncode == 127 and "not authorized" in lowered:
        return HelperOutcome(
            verb, args, NOT_AUTHORISED, f"{REFUSED}: run this as root instead: {command}",
            command, stderr.strip(),
        )  # fmt: skip
    if returncode == 127:
        return HelperOutcome(
            verb, args, UNAVAILABLE,
            f"pkexec failed ({last or 'exit 127'}): run this as root instead: {command}", command,
            stderr.strip(),
        )  # fmt: skip
    return HelperOutcome(verb, args, FAILED, _helper_error(stderr, returncode), command,
                         stderr.strip())  # fmt: skip


def _helper_error(stderr: str, returncode: int) -> str:
    """The helper's error from its stderr, as one line: from its last line that starts with the
    helper's name to the end (pkexec's own lines come before; a newline inside a name, from an
    older helper, does not cut the message), else the last line."""
    prefix = "zeroinstall-admin-helper: "
    lines = stderr.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    if starts:
        message = "\n".join(lines[starts[-1] :])[len(prefix) :]
    else:
        kept = [line.strip() for line in lines if line.strip()]
        message = kept[-1] if kept else f"exit {returncode}"
    return root_helper.one_line(message)
