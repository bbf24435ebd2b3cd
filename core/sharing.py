"""Sharing the system cache between users: where each step stands, what enabling would do, and a
self-test that adds a tiny implementation the way 0install does.

Unprivileged: it only reads (plus the self-test, which adds through 0store-secure-add-helper as an
ordinary user). Every reading takes a ``root`` prefix, so the same code describes a fake root. The
changes themselves are the verbs of :mod:`core.root_helper`, whose constants give the exact contents
shown here.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core import root_helper as rh
from core.units import size_text

DONE = "done"
MISSING = "missing"
ATTENTION = "needs attention"
NOT_APPLICABLE = "not applicable"
STATES = (DONE, MISSING, ATTENTION, NOT_APPLICABLE)

LOW_SPACE_BYTES = 1 << 30
"""Below this much free space on the shared cache's filesystem the space step needs attention."""
SYS_UID_MAX_DEFAULT = 999
SELF_TEST_TIMEOUT_S = 120
SPACE_WARNING = (
    "Every user can add to the shared cache, and nothing stops one user from filling the disk: "
    "a quota for zeroinst (it owns every file there) or a filesystem of its own for "
    "/var/cache/0install.net helps."
)
LIMITS = (
    "The 0install documentation calls sharing experimental: 0store-secure-add has not been "
    "audited.",
    "Implementations named by the old sha1 algorithm cannot be shared (0store-secure-add refuses "
    "them); they stay in each user's own cache.",
    SPACE_WARNING,
    "Users cannot remove what they added; the admin removes from the shared cache (Clean up page).",
    "A planted or tampered entry would not be used under its name by other users; the Cache "
    "page's verification finds it.",
)


@dataclass(frozen=True)
class Step:
    """One row of the Sharing page."""

    key: str
    title: str
    state: str
    detail: str
    """Why it is in this state and, if not done, what to do."""
    verb: str | None = None
    """The helper verb that brings it to done, when applying can fix it."""
    preview: str = ""
    """The exact command or file content applying would run or write."""
    target: str | None = None
    """The path this step concerns (as on the target system)."""

    @property
    def fixable(self) -> bool:
        return self.verb is not None and self.state in (MISSING, ATTENTION)


@dataclass(frozen=True)
class SelfTestResult:
    passed: bool
    summary: str
    """One line: what was proved, or what failed and what to do."""
    log: list[str] = field(default_factory=list)
    """Each thing the test did, in order."""
    digest: str | None = None
    user: str | None = None


# --- reading --------------------------------------------------------------------------------------


def _read(root: str, path: str) -> str | None:
    try:
        with open(rh.under(root, path), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _sys_uid_max(root: str) -> int:
    text = _read(root, "/etc/login.defs") or ""
    m = re.search(r"^\s*SYS_UID_MAX\s+(\d+)", text, re.MULTILINE)
    return int(m.group(1)) if m else SYS_UID_MAX_DEFAULT


def _show(root: str, full: str) -> str:
    base = os.path.realpath(root)
    return full if base == "/" else full[len(base) :] or "/"


# --- the steps ------------------------------------------------------------------------------------


def step_user(root: str = "/") -> Step:
    preview = "useradd " + shlex.join(rh.USERADD_ARGS)
    title = f"System user {rh.SYSTEM_USER}"
    account = rh.read_account(rh.SYSTEM_USER, root)
    if account is None:
        return Step("user", title, MISSING,
                    f"There is no {rh.SYSTEM_USER} user: 0store-secure-add runs as it.",
                    "create-user", preview)  # fmt: skip
    problems = []
    if account.uid > _sys_uid_max(root):
        problems.append(f"uid {account.uid} is not in the system range")
    if account.home != rh.SHARED_CACHE_DIR:
        problems.append(f"its home is {account.home or '(none)'}, not {rh.SHARED_CACHE_DIR}")
    if os.path.basename(account.shell) not in ("nologin", "false"):
        problems.append(f"its shell is {account.shell or '(none)'}, a login shell")
    if problems:
        return Step(
            "user", title, ATTENTION,
            f"{rh.SYSTEM_USER} exists but " + "; ".join(problems) + ". It is left as it is: check "
            f"who made it, then fix it with usermod (e.g. usermod --shell {rh.NOLOGIN} "
            f"--home {rh.SHARED_CACHE_DIR} {rh.SYSTEM_USER}).", None, preview,
        )  # fmt: skip
    return Step("user", title, DONE,
                f"{rh.SYSTEM_USER} exists (uid {account.uid}, home {account.home}, no login).",
                None, preview)  # fmt: skip


def step_store(root: str = "/") -> Step:
    title = "Shared cache directory"
    preview = (
        f"install -d -m 0755 {rh.SHARED_CACHE_DIR}\n"
        f"install -d -o {rh.SYSTEM_USER} -g {rh.SYSTEM_USER} -m 0755 {rh.SHARED_STORE}"
    )
    full = rh.under(root, rh.SHARED_STORE)
    account = rh.read_account(rh.SYSTEM_USER, root)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return Step("store", title, MISSING, f"{rh.SHARED_STORE} does not exist yet.",
                    "create-store", preview, rh.SHARED_STORE)  # fmt: skip
    except OSError as exc:
        return Step("store", title, ATTENTION, f"{rh.SHARED_STORE}: {exc.strerror}.", None,
                    preview, rh.SHARED_STORE)  # fmt: skip
    if not stat.S_ISDIR(st.st_mode):
        return Step("store", title, ATTENTION,
                    f"{rh.SHARED_STORE} is not a directory (a symlink or file): move it away, "
                    "then apply.", None, preview, rh.SHARED_STORE)  # fmt: skip
    mode = stat.S_IMODE(st.st_mode)
    if account is None:
        return Step("store", title, MISSING,
                    f"{rh.SHARED_STORE} exists; it will be given to {rh.SYSTEM_USER} once the "
                    "user exists.", "create-store", preview, rh.SHARED_STORE)  # fmt: skip
    if st.st_uid != account.uid or mode != 0o755:
        return Step("store", title, ATTENTION,
                    f"{rh.SHARED_STORE} is owned by uid {st.st_uid} with mode {mode:04o}: "
                    f"0store-secure-add needs it to be {rh.SYSTEM_USER}'s, 0755.",
                    "create-store", preview, rh.SHARED_STORE)  # fmt: skip
    return Step("store", title, DONE, f"{rh.SHARED_STORE} is {rh.SYSTEM_USER}'s, mode 0755.",
                None, preview, rh.SHARED_STORE)  # fmt: skip


def _login_path_problem(root: str, env: Mapping[str, str] | None) -> str | None:
    """Why users may not find /usr/local/bin on their PATH, or None."""
    sources = []
    login_defs = _read(root, "/etc/login.defs") or ""
    m = re.search(r"^\s*ENV_PATH\s+(?:PATH=)?(\S+)", login_defs, re.MULTILINE)
    if m:
        sources.append(("ENV_PATH in /etc/login.defs", m.group(1)))
    profile = _read(root, "/etc/profile") or ""
    paths = re.findall(r'^\s*PATH="?([^"\s]+)"?\s*$', profile, re.MULTILINE)
    if paths:
        sources.append(("PATH in /etc/profile", paths[-1]))
    if env is not None and "PATH" in env:
        sources.append(("your PATH", env["PATH"]))
    for where, value in sources:
        if "/usr/local/bin" not in value.split(":"):
            return (
                f"{where} ({value}) lacks /usr/local/bin: 0install looks the helper up on "
                "PATH and silently falls back to each user's own cache without it."
            )
    return None


def step_helper(root: str = "/", env: Mapping[str, str] | None = None) -> Step:
    title = "0store-secure-add-helper"
    program = rh.find_secure_add(root)
    if program is None:
        return Step(
            "helper", title, ATTENTION,
            "0store-secure-add is missing (" + " and ".join(rh.SECURE_ADD_CANDIDATES)
            + "): install the '0install-core' package.", None, "", rh.HELPER_SCRIPT_PATH,
        )  # fmt: skip
    content = rh.helper_script_content(program)
    preview = f"{rh.HELPER_SCRIPT_PATH} (mode 0755, root):\n{content}"
    problem = rh.ownership_problem(program, root)
    if problem:
        return Step("helper", title, ATTENTION, f"Refusing to name {program}: {problem}.", None,
                    preview, rh.HELPER_SCRIPT_PATH)  # fmt: skip
    full = rh.under(root, rh.HELPER_SCRIPT_PATH)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return Step("helper", title, MISSING,
                    f"{rh.HELPER_SCRIPT_PATH} does not exist: 0install silently keeps each "
                    "user's downloads in their own cache.", "install-secure-add-helper", preview,
                    rh.HELPER_SCRIPT_PATH)  # fmt: skip
    issues = []
    if not stat.S_ISREG(st.st_mode):
        issues.append("it is not a regular file")
    elif rh.ours(full, [content]) is not True:
        issues.append(f"its content is not exactly the two lines for {program}")
    if stat.S_IMODE(st.st_mode) & 0o555 != 0o555:
        issues.append(f"mode {stat.S_IMODE(st.st_mode):04o} is not executable by everyone")
    if st.st_uid != 0 or st.st_mode & 0o022:
        issues.append("it is not root's alone (anyone who can write it runs code as any user)")
    if issues:
        return Step("helper", title, ATTENTION,
                    f"{rh.HELPER_SCRIPT_PATH}: " + "; ".join(issues) + ". Apply rewrites it.",
                    "install-secure-add-helper", preview, rh.HELPER_SCRIPT_PATH)  # fmt: skip
    path_problem = _login_path_problem(root, env)
    if path_problem:
        return Step("helper", title, ATTENTION, path_problem + " Add /usr/local/bin to it.",
                    None, preview, rh.HELPER_SCRIPT_PATH)  # fmt: skip
    return Step("helper", title, DONE,
                f"{rh.HELPER_SCRIPT_PATH} calls {program} as {rh.SYSTEM_USER}.", None, preview,
                rh.HELPER_SCRIPT_PATH)  # fmt: skip


def sudoers_files_read(root: str = "/") -> list[str]:
    """The drop-ins sudo reads, in its order (no '.' in the name, not ending in '~')."""
    try:
        names = os.listdir(rh.under(root, rh.SUDOERS_DIR))
    except OSError:
        return []
    return sorted(n for n in names if "." not in n and not n.endswith("~"))


_RULE_SKIP = re.compile(r"^\s*(#|@|Defaults|Cmnd_Alias|User_Alias|Host_Alias|Runas_Alias|$)")


def later_overrides(root: str = "/") -> list[str]:
    """Rules read after our drop-in that can take NOPASSWD away again, or turn env_reset or
    always_set_home off (the last match wins): "FILE:LINE: text" for each."""
    found = []
    main = _read(root, rh.SUDOERS_MAIN) or ""
    lines = main.splitlines()
    after_include = False
    sources: list[tuple[str, list[tuple[int, str]]]] = []
    tail = []
    for number, line in enumerate(lines, 1):
        if rh.INCLUDEDIR_RE.match(line):
            after_include = True
            continue
        if after_include:
            tail.append((number, line))
    sources.append((rh.SUDOERS_MAIN, tail))
    ours_name = os.path.basename(rh.SUDOERS_DROPIN)
    for name in sudoers_files_read(root):
        if name > ours_name:
            path = os.path.join(rh.SUDOERS_DIR, name)
            text = _read(root, path) or ""
            sources.append((path, list(enumerate(text.splitlines(), 1))))
    for path, numbered in sources:
        for number, line in numbered:
            if re.match(r"^\s*Defaults", line) and re.search(r"!\s*(env_reset|always_set_home)",
                                                            line):  # fmt: skip
                found.append(f"{path}:{number}: {line.strip()}")
                continue
            if _RULE_SKIP.match(line) or "=" not in line:
                continue
            spec = line.split("=", 1)[1]
            runas = re.match(r"\s*\(([^)]*)\)", spec)
            if runas is None:
                continue  # runs as root only
            users = runas.group(1).split(":")[0]
            if "ALL" not in users and rh.SYSTEM_USER not in users:
                continue
            commands = spec[runas.end() :]
            if "NOPASSWD" in commands:
                continue
            if "0store-secure-add" in commands or re.search(r"(^|[\s:,])ALL\s*$", commands):
                found.append(f"{path}:{number}: {line.strip()}")
    return found


def broken_dropins(root: str = "/") -> list[str]:
    """Drop-ins other than ours that sudo would refuse: "FILE: why" for each."""
    problems = []
    ours_name = os.path.basename(rh.SUDOERS_DROPIN)
    for name in sudoers_files_read(root):
        if name == ours_name:
            continue
        path = os.path.join(rh.SUDOERS_DIR, name)
        full = rh.under(root, path)
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if st.st_uid != 0:
            problems.append(f"{path}: owned by uid {st.st_uid}, not root (sudo rejects it)")
            continue
        if st.st_mode & 0o022:
            problems.append(f"{path}: writable by group or others (sudo rejects it)")
            continue
        if not os.access(full, os.R_OK):
            continue  # root's eyes only: the self-test shows whether sudo still works
        try:
            message = rh.visudo_check(full)
        except rh.HelperError:
            return problems
        if message:
            problems.append(f"{path}: {message.replace(full, path)}")
    return problems


def step_sudoers(root: str = "/") -> Step:
    title = "sudoers rule"
    program = rh.find_secure_add(root) or rh.SECURE_ADD_CANDIDATES[0]
    content = rh.sudoers_content(program)
    preview = (
        f"{rh.SUDOERS_DROPIN} (mode 0440, root:root), checked with 'visudo -c -O -P -f' "
        f"before it is put in place:\n{content}"
    )
    target = rh.SUDOERS_DROPIN
    if shutil.which("visudo", path="/usr/sbin:/sbin:/usr/bin") is None:
        return Step(
            "sudoers",
            title,
            ATTENTION,
            "visudo is missing: install the 'sudo' package.",
            None,
            preview,
            target,
        )
    notes: list[str] = []
    info: list[str] = []
    includes = rh.sudoers_includes_dropins(root)
    if includes is None:
        info.append(f"{rh.SUDOERS_MAIN} is readable by root only, so its order of rules was not "
                     "checked here: the self-test proves the result.")  # fmt: skip
    elif not includes:
        return Step("sudoers", title, ATTENTION,
                    f"{rh.SUDOERS_MAIN} does not read {rh.SUDOERS_DIR}: add "
                    f"'@includedir {rh.SUDOERS_DIR}' at its end with visudo.", None, preview,
                    target)  # fmt: skip
    broken = broken_dropins(root)
    if broken:
        notes.append(
            "A broken drop-in someone else left stops sudo for everyone: "
            + "; ".join(broken)
            + ". Fix or remove it with visudo."
        )
    overrides = later_overrides(root)
    if overrides:
        notes.append(
            "A later rule can undo the drop-in (the last matching rule wins; the docs say the "
            "NOPASSWD line must go at the end): "
            + "; ".join(overrides)
            + ". Give 0store-secure-add NOPASSWD there (and keep env_reset, always_set_home), or "
            "move that rule before the drop-ins."
        )
    full = rh.under(root, target)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return Step("sudoers", title, MISSING,
                    f"{target} does not exist: sudo would ask users for a password, and 0install "
                    "silently falls back to their own caches." + (" " + " ".join(notes) if notes
                                                                   else ""),
                    "install-sudoers", preview, target)  # fmt: skip
    issues = []
    if not stat.S_ISREG(st.st_mode):
        issues.append("it is not a regular file")
    elif not os.access(full, os.R_OK):
        if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (0, 0, rh.SUDOERS_MODE):
            issues.append(f"it is not root:root 0440 (mode {stat.S_IMODE(st.st_mode):04o})")
        info.append("Its content is readable by root only: the self-test proves it works.")
    else:
        if rh.ours(full, [content]) is not True:
            issues.append("its content differs from the two lines this tool writes")
        if (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (0, 0, rh.SUDOERS_MODE):
            issues.append(f"it is not root:root 0440 (mode {stat.S_IMODE(st.st_mode):04o})")
        problem = rh.visudo_check(full)
        if problem:
            issues.append(f"visudo says: {problem.replace(full, target)}")
    if issues:
        return Step("sudoers", title, ATTENTION,
                    f"{target}: " + "; ".join(issues) + ". Apply rewrites it."
                    + (" " + " ".join(notes) if notes else ""), "install-sudoers", preview,
                    target)  # fmt: skip
    if notes:
        return Step("sudoers", title, ATTENTION, " ".join(notes + info), None, preview, target)
    return Step("sudoers", title, DONE,
                " ".join([f"{target} lets every user run {program} as {rh.SYSTEM_USER} without a "
                          "password.", *info]), None, preview, target)  # fmt: skip


def _profile_loaded(root: str) -> str | None:
    """The mode the profile is loaded in, None if not loaded, "unknown" if only root may look."""
    try:
        with open(rh.under(root, rh.APPARMOR_PROFILES_FILE), encoding="utf-8") as f:
            text = f.read()
    except PermissionError:
        return "unknown"
    except OSError:
        return None
    for line in text.splitlines():
        name, _, mode = line.rpartition(" ")
        if name == rh.APPARMOR_PROFILE_NAME:
            return mode.strip("()")
    return None


def step_apparmor(root: str = "/") -> Step:
    title = "AppArmor profile"
    program = rh.find_secure_add(root) or rh.SECURE_ADD_CANDIDATES[0]
    path = rh.apparmor_profile_path(program)
    content = rh.apparmor_content(program)
    preview = (
        f"{path} (mode 0644), checked with 'apparmor_parser -Q -K', then loaded in complain mode "
        f"with 'apparmor_parser -r':\n{content}"
    )
    if not rh.apparmor_enabled(root):
        return Step(
            "apparmor",
            title,
            NOT_APPLICABLE,
            f"AppArmor is not enabled on this system ({rh.APPARMOR_ENABLED_FILE} is not "
            "'Y'): there is nothing to load a profile into.",
            None,
            preview,
            path,
        )
    if shutil.which("apparmor_parser", path="/usr/sbin:/sbin") is None:
        return Step("apparmor", title, ATTENTION,
                    "AppArmor is on but apparmor_parser is missing: install the 'apparmor' "
                    "package.", None, preview, path)  # fmt: skip
    full = rh.under(root, path)
    mine = rh.ours(full, [content])
    if mine is None:
        return Step("apparmor", title, MISSING,
                    f"No profile confines 0store-secure-add ({path} does not exist).",
                    "install-apparmor", preview, path)  # fmt: skip
    problem = rh.apparmor_check(full, root)
    if problem:
        return Step("apparmor", title, ATTENTION,
                    f"{path} does not parse: {problem}. Apply rewrites it.", "install-apparmor",
                    preview, path)  # fmt: skip
    mode = _profile_loaded(root)
    if mode is None:
        if os.path.realpath(root) != "/":
            return Step("apparmor", title, DONE,
                        f"{path} is in place (a fake root: nothing is loaded into a kernel).",
                        None, preview, path)  # fmt: skip
        return Step("apparmor", title, ATTENTION,
                    f"{path} is in place but not loaded: apply loads it.", "install-apparmor",
                    preview, path)  # fmt: skip
    note = "" if mine else " (a profile not written by this tool)"
    if mode == "unknown":
        return Step("apparmor", title, DONE,
                    f"{path}{note} is in place and parses (whether it is loaded is visible to "
                    "root only).", None, preview, path)  # fmt: skip
    hint = (" Read the log (journalctl -k | grep 0store-secure-add) before enforcing it with "
            "aa-enforce.") if mode == "complain" else ""  # fmt: skip
    return Step("apparmor", title, DONE, f"{path}{note} is loaded in {mode} mode.{hint}", None,
                preview, path)  # fmt: skip


def _existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def step_space(root: str = "/") -> Step:

    title = "Free space"
    full = _existing(rh.under(root, rh.SHARED_STORE))
    try:
        vfs = os.statvfs(full)
        dev = os.stat(full).st_dev
        root_dev = os.stat(rh.under(root, "/")).st_dev
    except OSError as exc:
        return Step("space", title, ATTENTION, f"{_show(root, full)}: {exc.strerror}.")
    free = vfs.f_bavail * vfs.f_frsize
    total = vfs.f_blocks * vfs.f_frsize
    own = "its own filesystem" if dev != root_dev else "the same filesystem as /"
    text = (
        f"{size_text(free)} free of {size_text(total)} on {own} "
        f"({_show(root, full)}). {SPACE_WARNING}"
    )
    return Step("space", title, ATTENTION if free < LOW_SPACE_BYTES else DONE, text)


def step_self_test(result: SelfTestResult | None, root: str = "/") -> Step:
    title = "Self-test"
    if os.path.realpath(root) != "/":
        return Step("self-test", title, NOT_APPLICABLE,
                    "A fake root: the self-test runs 0install's real path (sudo, the helper, the "
                    "store) and only proves something on the real system.")  # fmt: skip
    if result is None:
        return Step("self-test", title, MISSING,
                    "Not run yet: it adds a tiny implementation as an ordinary user, as 0install "
                    "would, and checks it arrived in the shared cache.")  # fmt: skip
    return Step("self-test", title, DONE if result.passed else ATTENTION, result.summary)


def detect(
    root: str = "/",
    *,
    env: Mapping[str, str] | None = None,
    self_test: SelfTestResult | None = None,
) -> list[Step]:
    """Every step's state on ``root`` (a fake root prefix, or "/"). ``env`` is the environment of
    the user the app runs as (its PATH is checked on the real system; default os.environ)."""
    if env is None and os.path.realpath(root) == "/":
        env = os.environ
    return [
        step_user(root),
        step_store(root),
        step_helper(root, env),
        step_sudoers(root),
        step_apparmor(root),
        step_space(root),
        step_self_test(self_test, root),
    ]


ENABLE_KEYS = ("user", "store", "helper", "sudoers", "apparmor")


def is_enabled(steps: list[Step]) -> bool:
    """True when every enable step is done or not applicable."""
    return all(s.state in (DONE, NOT_APPLICABLE) for s in steps if s.key in ENABLE_KEYS)


def plan(steps: list[Step]) -> list[Step]:
    """The steps applying would change, in order (each a helper verb)."""
    return [s for s in steps if s.fixable]


def blockers(steps: list[Step]) -> list[Step]:
    """Enable steps that need the admin's own hands (applying cannot fix them)."""
    return [s for s in steps if s.key in ENABLE_KEYS and s.state == ATTENTION and not s.fixable]


def disable_preview(root: str = "/") -> list[str]:
    """What disabling would remove (existing files this tool wrote), as target paths."""
    paths = [rh.HELPER_SCRIPT_PATH, rh.SUDOERS_DROPIN]
    paths += [rh.apparmor_profile_path(p) for p in rh.SECURE_ADD_CANDIDATES]
    return [p for p in paths if os.path.lexists(rh.under(root, p))]


# --- the self-test --------------------------------------------------------------------------------


EXPLANATIONS: tuple[tuple[str, str], ...] = (
    ("a password is required",
     "sudo asked for a password: the NOPASSWD rule is missing, or a rule read after it takes it "
     "away again (the docs: the NOPASSWD line must go at the end). 0install would silently keep "
     "each user's downloads in their own cache."),
    ("a terminal is required", "sudo asked for a password (see the sudoers step): the NOPASSWD "
     "rule is missing or overridden."),
    ("is not in the sudoers file", "sudo has no rule letting users run 0store-secure-add as "
     "zeroinst: install the sudoers drop-in."),
    ("is not allowed to execute", "sudo has no rule letting this user run 0store-secure-add as "
     "zeroinst: install the sudoers drop-in, or check a rule that names this user."),
    ("not allowed to run sudo", "sudo has no rule for this user: install the sudoers drop-in."),
    ("environment not cleared", "sudo did not clear the environment (0store-secure-add: "
     "'Environment not cleared. Check your sudoers file.'): the sudoers file needs "
     "'Defaults>zeroinst env_reset,always_set_home', and no rule may turn env_reset off."),
    ("$home not set", "sudo did not set HOME for zeroinst: the sudoers file needs "
     "'always_set_home' for zeroinst (Defaults>zeroinst env_reset,always_set_home)."),
    ("does not support copying", "sha1 implementations cannot be shared: 0store-secure-add "
     "refuses them, so they stay in each user's own cache."),
    ("parse error", "a sudoers file does not parse, so sudo refuses to run at all: see the "
     "sudoers step for the file to fix."),
    ("unknown user", "sudo does not know the zeroinst user: create it (the first step)."),
    ("'.manifest' doesn't exist", "0store-secure-add could not read the implementation it was "
     "given: the directory must be readable by zeroinst."),
)  # fmt: skip


def explain(output: str) -> str | None:
    """The plain explanation for an error of sudo or 0store-secure-add, or None."""
    lowered = output.lower()
    for needle, explanation in EXPLANATIONS:
        if needle in lowered:
            return explanation
    return None


def _tiny_implementation(base: str) -> tuple[str, str]:
    """A tiny implementation in a new directory under ``base``, readable by everyone, with its
    .manifest, as 0install leaves one before calling the helper. Returns (directory, digest)."""
    from core.manifest import generate_manifest, hash_manifest

    work = tempfile.mkdtemp(prefix="zeroinstall-admin-selftest-", dir=base)
    os.chmod(work, 0o755)
    impl = os.path.join(work, "impl")
    os.mkdir(impl, 0o755)
    os.chmod(impl, 0o755)
    with open(os.path.join(impl, "README"), "w") as f:
        f.write(f"Zero Install Admin self-test {secrets.token_hex(16)}\n")
    os.chmod(os.path.join(impl, "README"), 0o644)
    manifest = generate_manifest(impl, "sha256new")
    with open(os.path.join(impl, ".manifest"), "wb") as f:
        f.write(manifest)
    os.chmod(os.path.join(impl, ".manifest"), 0o644)
    return impl, "sha256new_" + hash_manifest("sha256new", manifest)


@dataclass
class _AsUser:
    """How to run a program as the user doing the test: ourselves, or a throwaway user (as root)."""

    name: str
    uid: int
    gid: int
    env: dict[str, str]
    prefix: list[str]
    cleanup: Callable[[], None] | None = None


def _throwaway_user(log: list[str]) -> _AsUser:
    name = "zia-selftest-" + secrets.token_hex(3)
    useradd = rh.find_program("useradd")
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", rh.NOLOGIN, name],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise rh.HelperError(f"could not create a throwaway user: {proc.stderr.strip()}")
    log.append(f"created the throwaway user {name}")
    import pwd

    pw = pwd.getpwnam(name)

    def remove() -> None:
        userdel = rh.find_program("userdel")
        subprocess.run([userdel, name], capture_output=True, timeout=60, check=False)
        log.append(f"removed the throwaway user {name}")

    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "USER": name,
           "LOGNAME": name, "LANG": "C.UTF-8"}  # fmt: skip
    prefix = [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
    return _AsUser(name, pw.pw_uid, pw.pw_gid, env, prefix, remove)


def run_self_test(
    *,
    env: Mapping[str, str] | None = None,
    remove: Callable[[str, str], tuple[bool, str]] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> SelfTestResult:
    """Prove that sharing works the way 0install uses it, on the real system.

    As an ordinary user (this process's, or a throwaway system user when run as root): build a tiny
    implementation, run ``0store-secure-add-helper DIGEST`` found on that user's PATH from its
    directory with stdin from /dev/null, check the entry landed in the shared store owned by
    zeroinst and verifies, then remove it with ``remove(store, digest) -> (ok, message)``
    (default: the helper's remove-implementation verb through :mod:`core.elevate`).
    """
    log: list[str] = []

    def say(text: str) -> None:
        log.append(text)
        if on_progress:
            on_progress(text)

    if os.geteuid() == 0:
        try:
            user = _throwaway_user(log)
        except rh.HelperError as exc:
            return SelfTestResult(False, str(exc), log)
    else:
        import pwd

        me = pwd.getpwuid(os.getuid())
        user = _AsUser(me.pw_name, os.getuid(), os.getgid(), dict(env or os.environ), [])
    try:
        return _self_test_as(user, say, log, remove)
    finally:
        if user.cleanup:
            user.cleanup()


def _self_test_as(
    user: _AsUser,
    say: Callable[[str], None],
    log: list[str],
    remove: Callable[[str, str], tuple[bool, str]] | None,
) -> SelfTestResult:
    from core.manifest import ManifestError, manifest_digest

    helper = shutil.which("0store-secure-add-helper", path=user.env.get("PATH", ""))
    if helper is None:
        return SelfTestResult(
            False,
            f"0store-secure-add-helper is not on {user.name}'s PATH ({user.env.get('PATH', '')}): "
            "0install would silently keep every download in the user's own cache. Install the "
            "helper script and make sure /usr/local/bin is on the PATH users get.", log,
            user=user.name,
        )  # fmt: skip
    # In /tmp, not $TMPDIR: zeroinst must be able to reach it (a per-user runtime dir is 0700).
    work = tempfile.mkdtemp(prefix="zeroinstall-admin-selftest-",
                            dir="/tmp" if os.path.isdir("/tmp") else None)  # fmt: skip
    os.chmod(work, 0o755)
    try:
        impl, digest = _tiny_implementation(work)
        if user.uid != os.getuid():
            for dirpath, _dirs, files in os.walk(work):
                os.chown(dirpath, user.uid, user.gid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), user.uid, user.gid)
        say(f"built a tiny implementation {digest} as {user.name}")
        say(f"running {helper} {digest} from its directory, stdin /dev/null")
        # 0install plants these canaries when it calls the helper: 0store-secure-add refuses to
        # run if sudo let them through (env_reset and always_set_home missing or overridden).
        env = {**user.env, "ENV_NOT_CLEARED": "Unclean", "HOME": "Unclean"}
        try:
            proc = subprocess.run(
                [*user.prefix, helper, digest], cwd=impl, env=env,
                stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                timeout=SELF_TEST_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return SelfTestResult(
                False,
                f"{helper} did not finish in {SELF_TEST_TIMEOUT_S} s "
                "(is sudo waiting for a password?).",
                log,
                digest,
                user.name,
            )
        output = (proc.stderr + proc.stdout).strip()
        if output:
            say("it said: " + " | ".join(output.splitlines()[-4:]))
        if proc.returncode != 0:
            why = explain(output) or f"the helper failed (exit {proc.returncode})."
            first = output.splitlines()[-1] if output else ""
            return SelfTestResult(False, f"Adding failed: {why}" + (f" ({first})" if first else ""),
                                  log, digest, user.name)  # fmt: skip
        target = os.path.join(rh.SHARED_STORE, digest)
        account = rh.read_account(rh.SYSTEM_USER)
        try:
            st = os.lstat(target)
        except OSError:
            return SelfTestResult(
                False,
                f"The helper succeeded but {target} does not exist: is "
                "the shared store configured elsewhere?",
                log,
                digest,
                user.name,
            )
        if not stat.S_ISDIR(st.st_mode) or account is None or st.st_uid != account.uid:
            return SelfTestResult(
                False,
                f"{target} is not a directory owned by {rh.SYSTEM_USER} (uid {st.st_uid}).",
                log,
                digest,
                user.name,
            )
        say(f"{target} exists, owned by {rh.SYSTEM_USER}")
        try:
            actual = manifest_digest(target, "sha256new").name
        except ManifestError as exc:
            actual = f"unreadable: {exc}"
        if actual != digest:
            return SelfTestResult(False, f"{target} does not verify ({actual}).", log, digest,
                                  user.name)  # fmt: skip
        say("its contents verify against the digest")
        if remove is None:
            from core import elevate

            def remove(store: str, name: str) -> tuple[bool, str]:
                outcome = elevate.run_helper("remove-implementation", store, name)
                return outcome.ok, outcome.message

        ok, message = remove(rh.SHARED_STORE, digest)
        say(("removed it: " if ok else "could not remove it: ") + message)
        tail = "" if ok else f" The test entry is still there (harmless): {message}"
        return SelfTestResult(
            True, f"Sharing works: {user.name} added {digest[:22]}… through "
            f"0store-secure-add-helper and it arrived in the shared cache, owned by "
            f"{rh.SYSTEM_USER}, verified.{tail}", log, digest, user.name,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
