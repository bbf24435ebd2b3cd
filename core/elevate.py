"""Running a verb of the privileged helper from the unprivileged app.

:func:`run_helper` decides how: in this process when it already runs as root (or on a fake root,
for tests and image builders), else ``pkexec`` with the installed helper, which asks the admin
through the desktop's polkit agent. When pkexec, the installed helper or an agent is missing (an SSH or VNC
session, a minimal desktop) the outcome says so and carries the equivalent command to run as root.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
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

_NO_AGENT_HINTS = ("no authentication agent", "no session for cookie", "cannot open display")


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


def unavailable_reason() -> str | None:
    """Why changes cannot be made from this process (None when they can: root, or pkexec and the
    installed helper are there; a missing polkit agent only shows when pkexec runs)."""
    if os.geteuid() == 0:
        return None
    if find_pkexec() is None:
        return "pkexec is not installed (Debian package 'pkexec')"
    if not os.path.isfile(root_helper.INSTALLED_PATH):
        return (f"the privileged helper is not installed at {root_helper.INSTALLED_PATH} (install "
                "the zeroinstall-admin package)")  # fmt: skip
    return None


def _in_process(verb: str, args: tuple[str, ...], root: str) -> HelperOutcome:
    command = root_command(verb, *args)
    try:
        summary = root_helper.run_verb(verb, args, root=root)
    except root_helper.HelperError as exc:
        return HelperOutcome(verb, args, FAILED, str(exc), command, str(exc))
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
            verb, argv, UNAVAILABLE,
            "pkexec is not installed (Debian package 'pkexec'): run this as root instead: "
            + command, command,
        )  # fmt: skip
    if not os.path.isfile(root_helper.INSTALLED_PATH):
        return HelperOutcome(
            verb, argv, UNAVAILABLE,
            f"the privileged helper is not installed at {root_helper.INSTALLED_PATH} (install the "
            "zeroinstall-admin package): run this as root instead: " + command, command,
        )  # fmt: skip
    try:
        proc = subprocess.run(
            [pkexec, root_helper.INSTALLED_PATH, verb, *argv],
            capture_output=True, text=True, errors="replace",
            stdin=None if terminal else subprocess.DEVNULL,
            timeout=AUTH_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return HelperOutcome(
            verb, argv, FAILED,
            f"no answer within {AUTH_TIMEOUT_S // 60} minutes; nothing was confirmed", command,
        )  # fmt: skip
    except OSError as exc:
        return HelperOutcome(verb, argv, UNAVAILABLE, f"pkexec could not start: {exc}", command)
    return interpret(verb, argv, proc.returncode, proc.stdout, proc.stderr)


def interpret(
    verb: str, args: tuple[str, ...], returncode: int, stdout: str, stderr: str
) -> HelperOutcome:
    """Turn pkexec's and the helper's exit code and output into an outcome."""
    command = root_command(verb, *args)
    err_lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = err_lines[-1] if err_lines else ""
    if returncode == 0:
        out = stdout.strip().splitlines()
        return HelperOutcome(verb, args, DONE, out[-1] if out else "done", command, stdout.strip())
    lowered = stderr.lower()
    if any(hint in lowered for hint in _NO_AGENT_HINTS):
        return HelperOutcome(
            verb, args, UNAVAILABLE,
            "no polkit authentication agent in this session (SSH, VNC or a minimal desktop): "
            "run this as root instead: " + command, command, stderr.strip(),
        )  # fmt: skip
    if returncode == 126:
        return HelperOutcome(
            verb, args, DISMISSED, "authentication was dismissed: nothing was changed", command,
            stderr.strip(),
        )  # fmt: skip
    if returncode == 127:
        return HelperOutcome(
            verb, args, NOT_AUTHORISED,
            "not authorised: this needs an administrator's password (or run this as root: "
            + command + ")", command, stderr.strip(),
        )  # fmt: skip
    prefix = "zeroinstall-admin-helper: "
    message = last[len(prefix) :] if last.startswith(prefix) else (last or f"exit {returncode}")
    return HelperOutcome(verb, args, FAILED, message, command, stderr.strip())
