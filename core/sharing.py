"""Sharing the system cache between users: where each step stands and what enabling would do
(the self-test that proves it is :mod:`core.self_test`).

Unprivileged: it only reads. Every reading takes a ``root`` prefix, so the same code describes a
fake root. The changes themselves are the verbs of :mod:`core.root_helper`, whose constants give
the exact contents shown here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from core import root_helper as rh
from core import sudoers
from core.units import size_text

DONE = "done"
MISSING = "missing"
ATTENTION = "needs attention"
NOT_APPLICABLE = "not applicable"
UNKNOWN = "unknown"
"""Could not be read from here (root's eyes only); the self-test finds out."""
STATES = (DONE, MISSING, ATTENTION, NOT_APPLICABLE, UNKNOWN)
STATE_WORDS = {
    DONE: "Done",
    MISSING: "Missing",
    ATTENTION: "Needs attention",
    NOT_APPLICABLE: "Not applicable",
    UNKNOWN: "Not checked",
}
"""Each state in words for people (the window's badges, the command line, the review list)."""

ALL_STEPS_COMMAND = "zeroinstall-admin sharing script | sudo sh"
"""Every enable step at once in a root shell (``sharing script`` prints them as POSIX sh)."""
LOW_SPACE_BYTES = 1 << 30
"""Below this much free space on the shared cache's filesystem the space step needs attention."""
SYS_UID_MAX_DEFAULT = 999
SPACE_WARNING = (
    "Every user can add to the shared cache, and nothing stops one user from filling the disk: "
    "a quota for zeroinst (it owns every file there) or a filesystem of its own for "
    "/var/cache/0install.net helps."
)
HOW_IT_WORKS = (
    "When a user runs a program, 0install hands the unpacked download to "
    "0store-secure-add-helper, which runs 0store-secure-add as the zeroinst user through sudo. "
    "0store-secure-add copies it into /var/cache/0install.net/implementations, hashes the copy "
    "and names it by its digest; other users then find it there instead of downloading it again."
)
PROTECTS = (
    "What sharing protects: users cannot write the shared cache directly (it belongs to "
    "zeroinst); the only way in is 0store-secure-add, which hashes each addition and names it by "
    "its digest."
)
VERIFICATION = (
    "What it does not protect: 0store-secure-add 2.18 trusts the entry names listed in the "
    ".manifest it is given, so a user with a crafted .manifest can leave other entries in the "
    "shared cache, and 0install uses an entry whose directory merely exists without checking it "
    "again. Verifying the shared cache (Cache page, Verify all) is how planted or tampered "
    "entries are found: each entry must be a real directory whose contents match its name."
)
LIMITS = (
    (
        "The 0install documentation calls sharing experimental: 0store-secure-add has not been "
        "audited."
    ),
    VERIFICATION,
    (
        "Implementations named by the old sha1 algorithm cannot be shared (0store-secure-add "
        "refuses them); they stay in each user's own cache."
    ),
    SPACE_WARNING,
    "Users cannot remove what they added; the admin removes from the shared cache (Clean up page).",
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
        return self.verb is not None and self.state in (MISSING, ATTENTION, UNKNOWN)


@dataclass(frozen=True)
class SelfTestResult:
    """What :func:`core.self_test.run_self_test` found; the steps read it (row 7, proof)."""

    passed: bool
    summary: str
    """One line: what was proved, or what failed and what to do."""
    log: list[str] = field(default_factory=list)
    """Each thing the test did, in order."""
    digest: str | None = None
    user: str | None = None
    fingerprint: tuple[object, ...] | None = None
    """The configuration it tested (:func:`fingerprint`): a result for another one is stale."""
    when: float = 0.0
    """When it finished (time.time())."""


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
    # An ordinary user's own PATH is one of the users' PATHs; root's (sudo's secure_path, a
    # service's, a chroot's) says nothing about what other users get.
    if env is not None and "PATH" in env and os.geteuid() != 0:
        sources.append(("your PATH", env["PATH"]))
    for where, value in sources:
        if "/usr/local/bin" not in value.split(":"):
            return (
                f"{where} ({value}) lacks /usr/local/bin: 0install looks the helper up on "
                "PATH and silently falls back to each user's own cache without it."
            )
    return None


_SHELLS = ("sh", "dash", "bash", "ash", "ksh", "mksh", "zsh", "posh", "yash")
_SUDO_PATHS = ("sudo", "/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo")


def helper_program(text: str) -> tuple[str | None, str]:
    """What a helper script executes, judged as the shell would (comments, blank lines, spacing
    and quoting make no difference): (the program it runs as zeroinst through sudo, "") or
    (None, what it does instead)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#!"):
        return None, "it has no '#!/bin/sh' first line, so it cannot be run as a program"
    interpreter = lines[0][2:].split()
    name = os.path.basename(interpreter[0]) if interpreter else ""
    if name == "env" and len(interpreter) > 1:
        name = os.path.basename(interpreter[1])
    if name not in _SHELLS:
        return None, f"its first line runs '{lines[0][2:].strip()}', not a shell"
    commands = []
    for line in lines[1:]:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            return None, f"a line does not parse: {line.strip()}"
        if tokens:
            commands.append((line.strip(), tokens))
    if not commands:
        return None, "it runs nothing"
    if len(commands) > 1:
        return None, "it runs more than the one sudo line: " + " | ".join(c[0] for c in commands)
    line, tokens = commands[0]
    redirect: list[str] = []
    words: list[str] = []
    i = 0
    while i < len(tokens):  # '< /dev/null', '</dev/null', '0</dev/null'
        token = tokens[i]
        if token in ("<", "0<") and i + 1 < len(tokens):
            redirect.append(tokens[i + 1])
            i += 2
            continue
        if token.startswith(("<", "0<")) and token.lstrip("0<"):
            redirect.append(token.lstrip("0<"))
            i += 1
            continue
        words.append(token)
        i += 1
    if redirect and redirect != ["/dev/null"]:
        return None, f"its input comes from {redirect[-1]}, not /dev/null: {line}"
    if words and words[0] == "exec":
        words = words[1:]
    if not words or words[0] not in _SUDO_PATHS:
        return None, f"it does not run sudo: {line}"
    user = None
    i = 1
    while i < len(words) and words[i].startswith("-"):
        option = words[i]
        if option in ("-u", "--user") and i + 1 < len(words):
            user = words[i + 1]
            i += 2
            continue
        if option.startswith("--user="):
            user = option.split("=", 1)[1]
        elif option.startswith("-u") and len(option) > 2:
            user = option[2:]
        elif option not in ("-S", "--stdin", "-n", "--non-interactive", "-H", "--set-home"):
            return None, f"it gives sudo the option {option}: {line}"
        i += 1
    if user != rh.SYSTEM_USER:
        return None, f"it runs sudo as {user or 'root'}, not as {rh.SYSTEM_USER}: {line}"
    rest = words[i:]
    if len(rest) != 2 or rest[1] != "$@":
        return None, f'it does not pass its arguments ("$@") and nothing else: {line}'
    return rest[0], ""


DEFAULT_USER_PATH = "/usr/local/bin:/usr/bin:/bin"


def _helper_on_path(root: str, env: Mapping[str, str] | None) -> str:
    """The 0store-secure-add-helper 0install would run (the first on the users' PATH, as it
    looks it up there), or our path when there is none."""
    value = env.get("PATH", DEFAULT_USER_PATH) if env is not None else DEFAULT_USER_PATH
    for directory in value.split(":"):
        if not directory.startswith("/"):
            continue
        candidate = os.path.join(os.path.normpath(directory), "0store-secure-add-helper")
        try:
            if os.path.lexists(rh.under(root, candidate)):
                return candidate
        except rh.HelperError:
            continue
    return rh.HELPER_SCRIPT_PATH


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
    path = _helper_on_path(root, env)
    full = rh.under(root, path)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return Step("helper", title, MISSING,
                    f"{rh.HELPER_SCRIPT_PATH} does not exist: 0install silently keeps each "
                    "user's downloads in their own cache.", "install-secure-add-helper", preview,
                    rh.HELPER_SCRIPT_PATH)  # fmt: skip
    issues = []
    who = ""
    if not stat.S_ISREG(st.st_mode):
        issues.append("it is not a regular file")
    else:
        text = _read(root, path)
        runs, why = helper_program(text) if text is not None else (None, "it cannot be read")
        if runs is None:
            issues.append(why)
        elif runs != program:
            issues.append(f"it runs {runs}, not {program}")
        mine = rh.ours(full, [rh.helper_script_content(p) for p in rh.SECURE_ADD_CANDIDATES])
        who = "written by this app" if mine else "written by hand"
    if stat.S_IMODE(st.st_mode) & 0o555 != 0o555:
        issues.append(f"mode {stat.S_IMODE(st.st_mode):04o} is not executable by everyone")
    if st.st_uid != 0 or st.st_mode & 0o022:
        issues.append("it is not root's alone (anyone who can write it runs code as any user)")
    if issues:
        action = ("Apply replaces it with the two lines below." if path == rh.HELPER_SCRIPT_PATH
                  else f"Apply writes {rh.HELPER_SCRIPT_PATH} with the two lines below; remove "
                  f"{path} or put /usr/local/bin before its directory on PATH.")  # fmt: skip
        return Step("helper", title, ATTENTION,
                    f"{path} ({who or 'not a file'}): " + "; ".join(issues) + ". " + action,
                    "install-secure-add-helper", preview, rh.HELPER_SCRIPT_PATH)  # fmt: skip
    path_problem = _login_path_problem(root, env)
    if path_problem:
        return Step("helper", title, ATTENTION, path_problem + " Add /usr/local/bin to it.",
                    None, preview, rh.HELPER_SCRIPT_PATH)  # fmt: skip
    return Step("helper", title, DONE,
                f"Present: {path} ({who}) runs {program} as "
                f"{rh.SYSTEM_USER} through sudo.", None, preview,
                rh.HELPER_SCRIPT_PATH)  # fmt: skip


_SUDOERS_TITLE = "sudoers rule"


def _sudoers_who(root: str, path: str, program: str) -> str:
    if path != rh.SUDOERS_DROPIN:
        return "written by hand"
    mine = rh.ours(rh.under(root, path), [rh.sudoers_content(p) for p in rh.SECURE_ADD_CANDIDATES])
    return "written by this app" if mine else "written by this app, edited by hand"


def _sudoers_unreadable(root: str, config: sudoers.Config, target: str, preview: str,
                        ) -> Step:  # fmt: skip
    """The sudoers step when this user may not read the configuration (sudoers files are
    root:root 0440): the self-test, fed in by :func:`detect`, decides."""
    full = rh.under(root, target)
    try:
        st = os.lstat(full)
    except OSError:
        st = None
    unreadable = ", ".join(config.unreadable)
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022:
        return Step("sudoers", _SUDOERS_TITLE, DONE,
                    f"Present: {target}. It and {unreadable} are readable by root only, so the "
                    "rules were not read here: the self-test proves that sudo lets users add.",
                    None, preview, target)  # fmt: skip
    return Step("sudoers", _SUDOERS_TITLE, UNKNOWN,
                f"Not checked: {unreadable} can be read by root only, so whether a rule there "
                f"already lets users run 0store-secure-add as {rh.SYSTEM_USER} is unknown. The "
                f"self-test finds out. Apply adds {target}, which does no harm next to a rule "
                "written by hand.", "install-sudoers", preview, target)  # fmt: skip


def step_sudoers(root: str = "/") -> Step:
    """Judged by its effect: what sudo does for an ordinary user running 0store-secure-add as
    zeroinst, wherever the rule is (our drop-in, /etc/sudoers, another drop-in)."""
    program = rh.find_secure_add(root) or rh.SECURE_ADD_CANDIDATES[0]
    content = rh.sudoers_content(program)
    preview = (
        f"{rh.SUDOERS_DROPIN} (mode 0440, root:root), checked with 'visudo -c -O -P -f' "
        f"before it is put in place:\n{content}"
    )
    target = rh.SUDOERS_DROPIN
    if shutil.which("visudo", path="/usr/sbin:/sbin:/usr/bin") is None:
        return Step("sudoers", _SUDOERS_TITLE, ATTENTION,
                    "visudo is missing: install the 'sudo' package.", None, preview,
                    target)  # fmt: skip
    config = sudoers.read(root)
    if config.unreadable:
        return _sudoers_unreadable(root, config, target, preview)
    asked = sudoers.target_for(root, program)
    verdict = sudoers.evaluate(config, asked)
    listed = sudoers.sudo_lists(root, program)
    if listed and not verdict.allowed:
        return Step("sudoers", _SUDOERS_TITLE, UNKNOWN,
                    f"Not checked: 'sudo -l -U {sudoers.ORDINARY_USER}' says it may run "
                    f"{program} as {rh.SYSTEM_USER}, but no rule in the sudoers files says so "
                    "(rules from elsewhere, such as sss or ldap?). The self-test finds out "
                    "whether it needs a password.", "install-sudoers", preview,
                    target)  # fmt: skip
    tail = _sudoers_notes(root, config, verdict, listed, program)
    if verdict.works:
        return _sudoers_working(root, verdict, listed, program, preview, tail)
    return _sudoers_not_working(root, config, verdict, asked, content, preview, tail)


def _sudoers_notes(root: str, config: sudoers.Config, verdict: sudoers.Verdict,
                   listed: bool | None, program: str) -> str:  # fmt: skip
    """What else the admin should know, whatever the verdict: sudo disagreeing with the files,
    files visudo or sudo find fault with. "" or a text starting with a space."""
    notes = []
    if listed is False and verdict.allowed:
        notes.append(f"'sudo -l -U {sudoers.ORDINARY_USER}' says it may not run {program} as "
                     f"{rh.SYSTEM_USER}, although the files seem to allow it.")  # fmt: skip
    broken = sudoers.broken_files(root, config)
    if broken:
        notes.append("visudo finds errors that sudo warns every user about: " + "; ".join(broken)
                     + ". Fix them with visudo.")  # fmt: skip
    if config.skipped:
        notes.append("; ".join(config.skipped) + ".")
    if config.problems:
        notes.append("; ".join(config.problems) + ".")
    return (" " + " ".join(notes)) if notes else ""


def _sudoers_working(root: str, verdict: sudoers.Verdict, listed: bool | None, program: str,
                     preview: str, tail: str) -> Step:  # fmt: skip
    """The sudoers step when the files let every user run ``program`` as 0install does: where."""
    assert verdict.rule is not None
    entry = verdict.rule.entry
    settings = [e for e in verdict.settings if e.text.split(None, 1)[0] != "Defaults"
                or ">" in e.text or ":" in e.text.split(None, 1)[0]]  # fmt: skip
    where_defaults = (" Defaults: " + "; ".join(f"{e.where}: {e.text}" for e in settings)
                      + ".") if settings else ""  # fmt: skip
    agrees = f" ('sudo -l -U {sudoers.ORDINARY_USER}' agrees.)" if listed else ""
    return Step("sudoers", _SUDOERS_TITLE, ATTENTION if listed is False else DONE,
                f"Present in {entry.where}, {_sudoers_who(root, entry.path, program)}: "
                f"{entry.text}. Every user may run {program} as {rh.SYSTEM_USER} without a "
                f"password, with a cleared environment and HOME set.{where_defaults}{agrees}"
                f"{tail}", None, preview, rh.SUDOERS_DROPIN)  # fmt: skip


def _sudoers_not_working(root: str, config: sudoers.Config, verdict: sudoers.Verdict,
                         asked: sudoers.Target, content: str, preview: str,
                         tail: str) -> Step:  # fmt: skip
    """The sudoers step when the files do not let every user run it: why, and whether writing
    our drop-in would fix that."""
    target = rh.SUDOERS_DROPIN
    why = sudoers.why_not(verdict, asked.program)
    elsewhere = sudoers.other_sources(root)
    if elsewhere and verdict.rule is None:
        return Step("sudoers", _SUDOERS_TITLE, UNKNOWN,
                    f"Not checked: the sudoers files have no rule for it, but sudo also reads "
                    f"rules from {', '.join(elsewhere)} ({sudoers.NSSWITCH}), which this app "
                    f"cannot read. The self-test finds out. Apply adds {target}, which does no "
                    f"harm next to a rule kept there.{tail}", "install-sudoers", preview,
                    target)  # fmt: skip
    fixed = sudoers.with_dropin(config, target, content)
    if fixed is None:
        return Step("sudoers", _SUDOERS_TITLE, ATTENTION,
                    f"Not working: {why}. {rh.SUDOERS_MAIN} does not read {rh.SUDOERS_DIR}, so "
                    f"a drop-in would not help: add '@includedir {rh.SUDOERS_DIR}' at its end "
                    f"with visudo, or the docs' two lines.{tail}", None, preview,
                    target)  # fmt: skip
    if not sudoers.evaluate(fixed, asked).works:
        return Step("sudoers", _SUDOERS_TITLE, ATTENTION,
                    f"Not working: {why}. Writing {target} would not change that (a rule or "
                    "Defaults read after it decides; the docs say the NOPASSWD line must go at "
                    "the end): give 0store-secure-add NOPASSWD there, keep env_reset and "
                    f"always_set_home for {rh.SYSTEM_USER}, or move that line before the "
                    f"drop-ins, with visudo.{tail}", None, preview, target)  # fmt: skip
    exists = os.path.lexists(rh.under(root, target))
    state = ATTENTION if exists or verdict.rule is not None else MISSING
    action = f"Apply rewrites {target}" if exists else f"Apply adds {target}"
    return Step("sudoers", _SUDOERS_TITLE, state,
                f"{why[0].upper()}{why[1:]}: sudo would ask users for a password or refuse, and "
                f"0install silently falls back to their own caches. {action}.{tail}",
                "install-sudoers", preview, target)  # fmt: skip


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
    note = "" if mine else " (a profile not written by this app)"
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


def fingerprint(root: str = "/") -> tuple[object, ...]:
    """The identity (inode, size, change time, owner, mode) of every file the steps read: the
    accounts, the store directory (owner and mode only: adding to it changes nothing here), the
    helper script, every sudoers file and directory, the AppArmor profiles. A self-test result
    counts only while this stays the same."""
    paths = ["/etc/passwd", "/etc/group", "/etc/login.defs", "/etc/profile",
             rh.HELPER_SCRIPT_PATH, rh.SUDOERS_MAIN, rh.SUDOERS_DIR]  # fmt: skip
    paths += [rh.apparmor_profile_path(p) for p in rh.SECURE_ADD_CANDIDATES]
    with contextlib.suppress(OSError, rh.HelperError):
        paths += [os.path.join(rh.SUDOERS_DIR, n)
                  for n in sorted(os.listdir(rh.under(root, rh.SUDOERS_DIR)))]  # fmt: skip
    result: list[object] = []
    for path in paths:
        try:
            st = os.lstat(rh.under(root, path))
        except (OSError, rh.HelperError):
            result.append((path, None))
            continue
        result.append((path, st.st_ino, st.st_size, st.st_ctime_ns, st.st_uid, st.st_mode))
    try:
        st = os.lstat(rh.under(root, rh.SHARED_STORE))
        result.append((rh.SHARED_STORE, st.st_ino, st.st_uid, st.st_mode))
    except (OSError, rh.HelperError):
        result.append((rh.SHARED_STORE, None))
    return tuple(result)


def _clock(when: float) -> str:
    import time

    return time.strftime("%H:%M", time.localtime(when)) if when else "earlier"


def step_self_test(result: SelfTestResult | None, root: str = "/") -> Step:
    """``result`` must already be current (see :func:`detect`)."""
    title = "Self-test"
    if os.path.realpath(root) != "/":
        return Step("self-test", title, NOT_APPLICABLE,
                    "A fake root: the self-test runs 0install's real path (sudo, the helper, the "
                    "store) and only proves something on the real system.")  # fmt: skip
    if result is None:
        return Step("self-test", title, MISSING,
                    "Not run yet: it adds a tiny implementation as an ordinary user, as 0install "
                    "would, and checks it arrived in the shared cache.")  # fmt: skip
    return Step("self-test", title, DONE if result.passed else ATTENTION,
                f"{'Passed' if result.passed else 'Failed'} at {_clock(result.when)}: "
                f"{result.summary}")  # fmt: skip


def current_self_test(result: SelfTestResult | None, root: str = "/") -> SelfTestResult | None:
    """``result`` if the configuration is still the one it tested, else None."""
    if result is None or os.path.realpath(root) != "/":
        return None
    if result.fingerprint is not None and result.fingerprint != fingerprint(root):
        return None
    return result


def detect(
    root: str = "/",
    *,
    env: Mapping[str, str] | None = None,
    self_test: SelfTestResult | None = None,
) -> list[Step]:
    """Every step's state on ``root`` (a fake root prefix, or "/"). ``env`` is the environment of
    the user the app runs as (its PATH is checked on the real system; default os.environ).

    ``self_test`` is the last self-test's result: it counts only while the configuration is the
    one it tested (otherwise row 7 asks to run it again), and a pass proves what this user could
    not read (a sudoers rule readable by root only)."""
    if env is None and os.path.realpath(root) == "/":
        env = os.environ
    current = current_self_test(self_test, root)
    steps = [
        step_user(root),
        step_store(root),
        step_helper(root, env),
        step_sudoers(root),
        step_apparmor(root),
        step_space(root),
        step_self_test(current, root),
    ]
    if self_test is not None and current is None and os.path.realpath(root) == "/":
        steps[-1] = Step("self-test", "Self-test", MISSING,
                         f"The configuration changed since the self-test at "
                         f"{_clock(self_test.when)}: run it again.")  # fmt: skip
    return proved_by(steps, current)


def proved_by(steps: list[Step], result: SelfTestResult | None) -> list[Step]:
    """``steps`` with what a current, passed self-test proves: a step this user could not read
    (UNKNOWN, a sudoers rule readable by root only) is done."""
    if result is None or not result.passed:
        return steps
    proof = (f"Proved by the self-test at {_clock(result.when)}: {result.user or 'a user'} "
             "added through sudo without a password.")  # fmt: skip
    return [
        Step(s.key, s.title, DONE, proof, None, s.preview, s.target) if s.state == UNKNOWN else s
        for s in steps
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


ENABLED = "enabled"
"""Every enable step is done; the self-test passed or has not run."""
NOT_ENABLED = "not enabled"
UNCERTAIN = "unknown"
"""Nothing left to apply that this user can see, but a step could not be read."""
BROKEN = "broken"
"""The self-test failed for the current configuration."""


@dataclass(frozen=True)
class Overall:
    state: str
    """ENABLED, NOT_ENABLED, UNCERTAIN or BROKEN."""
    summary: str
    """One sentence, the same on the Sharing page and in ``sharing status``."""
    proven: bool = False
    """The self-test passed for the configuration as it is now."""


def overall(steps: list[Step]) -> Overall:
    """The one verdict the page's summary and ``sharing status`` show, from the steps (the
    self-test's row included, so the summary never contradicts it)."""
    enable = [s for s in steps if s.key in ENABLE_KEYS]
    test = next((s for s in steps if s.key == "self-test"), None)
    todo = [s for s in enable if s.state != UNKNOWN and s.fixable]
    hands = blockers(steps)
    unknown = [s for s in enable if s.state == UNKNOWN]
    failed = test is not None and test.state == ATTENTION
    passed = test is not None and test.state == DONE
    pending = len(todo) + len(hands)
    if failed:
        text = "Sharing does not work: the self-test failed (row 7)"
        if pending:
            text += f"; {pending} step{'' if pending == 1 else 's'} to fix"
        return Overall(BROKEN, text + ".")
    if passed and (pending or unknown):
        names = ", ".join(s.title for s in [*todo, *hands, *unknown])
        return Overall(ENABLED, f"Sharing works (the self-test passed), but {names} "
                       f"{'needs' if pending + len(unknown) == 1 else 'need'} attention for "
                       "other users or later: see below.", True)  # fmt: skip
    if not pending and not unknown:
        if passed:
            return Overall(ENABLED, "Sharing is enabled and the self-test proved it works.", True)
        if test is not None and test.state == MISSING:
            return Overall(ENABLED, "Sharing is enabled. Run the self-test to prove it works for "
                           "users.")  # fmt: skip
        return Overall(ENABLED, "Sharing is enabled.")
    if not pending:
        names = ", ".join(s.title for s in unknown)
        return Overall(UNCERTAIN, f"Sharing may already be enabled: the {names} can only be read "
                       "by root. Run the self-test to find out.")  # fmt: skip
    text = f"Sharing is not enabled: {len(todo)} step{'' if len(todo) == 1 else 's'} to apply"
    if hands:
        text += f", {len(hands)} needing your hands first"
    if unknown:
        names = ", ".join(s.title for s in unknown)
        text += f"; the {names} can only be read by root (the self-test finds out)"
    return Overall(NOT_ENABLED, text + ".", passed)


_NOW = {MISSING: "not there yet", ATTENTION: "to repair", UNKNOWN: "not checked: root only"}


def review_text(step: Step) -> str:
    """What applying does for ``step``, in words (the review list, ``sharing enable``)."""
    what = {verb: summary for verb, summary, _ in rh.ENABLE_STEPS}.get(step.verb or "", step.title)
    now = _NOW.get(step.state, STATE_WORDS.get(step.state, step.state).lower())
    return f"{what[0].upper()}{what[1:]} ({now})"


def disable_preview(root: str = "/") -> tuple[list[str], list[str]]:
    """What disabling would do: (the files it removes, the files it leaves alone because this
    app did not write them), as target paths (a symlink says so); the same decision
    :func:`core.root_helper.disable` makes."""
    remove, keep = [], []
    for path, action in rh.disable_plan(root):
        if action == rh.REMOVE:
            remove.append(path)
        elif action == rh.LEFT_ALONE_LINK:
            keep.append(f"{path} (a symlink)")
        elif action != rh.ABSENT:
            keep.append(path)
    return remove, keep
