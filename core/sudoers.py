"""What sudo would do for an ordinary user asking to run 0store-secure-add as zeroinst, read from
the sudoers files themselves (on the real system or a fake root).

sudo reads ``/etc/sudoers`` and, where it says so, other files: ``@include FILE`` / ``#include
FILE`` (a relative name is relative to the including file's directory) and ``@includedir DIR`` /
``#includedir DIR`` (every file of DIR in lexical order, skipping names that end in ``~`` or
contain a ``.``). Among the rules that match, the last one wins; Defaults apply generic first, then
``@host``, ``:user``, ``>runas`` and ``!command`` ones, each group in file order. This module
follows exactly that, far enough to answer one question and say which line answers it: is there a
rule, does it need a password, and does sudo clear the environment and set HOME for zeroinst
(0store-secure-add refuses to run otherwise), and why not, in words. Everything is read under a
``root`` prefix; include paths are resolved inside it, never outside. Beside the files: the errors
visudo finds, what ``sudo -l`` itself says (as root), and where else sudo reads rules.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

from core import root_helper as rh

MAX_DEPTH = rh.SUDOERS_MAX_DEPTH

NSSWITCH = "/etc/nsswitch.conf"
ORDINARY_USER = "nobody"
"""The account whose sudo rights stand for an ordinary user's in ``sudo -l -U`` (as root)."""


@dataclass(frozen=True)
class Entry:
    """One logical line of a sudoers file (continuation lines joined, comment removed)."""

    path: str
    """The file, as on the target system."""
    line: int
    """Its first physical line (1-based)."""
    text: str

    @property
    def where(self) -> str:
        return f"{self.path} (line {self.line})"


@dataclass
class Config:
    """Every entry sudo reads, in its order, and what could not be read."""

    entries: list[Entry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    """Every file read, in order (target paths)."""
    unreadable: list[str] = field(default_factory=list)
    """Files that exist but this user may not read (sudoers files are root's eyes only)."""
    problems: list[str] = field(default_factory=list)
    """Includes that name nothing, loops, too deep nesting."""
    skipped: list[str] = field(default_factory=list)
    """Files sudo skips with a warning ("FILE is owned by uid 1000, should be 0", "FILE is world
    writable"): their rules do not count."""
    real: dict[str, str] = field(default_factory=dict)
    """Each file read: where it really is (under the root, its symlinks resolved inside it)."""
    includes_dir: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Each @includedir DIR: (index in entries where its files start, the including file)."""


# --- reading ------------------------------------------------------------------------------------

_INCLUDE_RE = rh.SUDOERS_INCLUDE_RE  # the helper's own check reads includes the same way
_UID_HASH = re.compile(r"#-?\d")


def _pieces(text: str) -> Iterator[tuple[int, str, bool]]:
    """sudoers' quoting, read once for comments and lists: each character of ``text`` (a backslash
    with the character it escapes as one piece), its index, and whether it is outside double
    quotes."""
    i = 0
    outside = True
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            yield i, text[i : i + 2], outside
            i += 2
            continue
        yield i, text[i], outside
        if text[i] == '"':
            outside = not outside
        i += 1


def _strip_comment(line: str) -> str:
    """The line without its comment: '#' starts one except in '#include...' (handled before) or
    where it names a uid ('#1000') or a gid ('%#1000')."""
    out = []
    for i, piece, outside in _pieces(line):
        if piece == "#" and outside and not _UID_HASH.match(line, i):
            break
        out.append(piece)
    return "".join(out).rstrip()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    result = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
            if _INCLUDE_RE.match(raw.strip()):
                result.append((number, raw.strip()))
                continue
        line = raw if pending else raw.lstrip()
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = _strip_comment(" ".join(p.strip() for p in pending))
        pending = []
        if joined.strip():
            result.append((start, joined.strip()))
    if pending:
        joined = _strip_comment(" ".join(p.strip() for p in pending))
        if joined.strip():
            result.append((start, joined.strip()))
    return result


_hostname = rh.sudoers_hostname
in_root = rh.path_in_root
included_names = rh.sudoers_included_names


def read(root: str = "/") -> Config:
    """Every sudoers entry sudo reads on ``root``, starting at /etc/sudoers."""
    config = Config()
    host = _hostname(root)
    _read_file(root, rh.SUDOERS_MAIN, config, 0, set(), host)
    return config


_resolve = rh.sudoers_include_target


def _read_file(
    root: str, path: str, config: Config, depth: int, active: set[str], host: str
) -> None:
    if depth > MAX_DEPTH or path in active:
        config.problems.append(f"{path}: included from itself (sudo refuses such a loop)")
        return
    try:
        full = in_root(root, path)
        with open(full, encoding="utf-8", errors="replace") as f:
            st = os.fstat(f.fileno())
            text = f.read()
    except PermissionError:
        config.files.append(path)
        config.unreadable.append(path)
        return
    except (OSError, rh.HelperError) as exc:
        if depth == 0 or not isinstance(exc, FileNotFoundError):
            config.problems.append(f"{path}: cannot be read ({getattr(exc, 'strerror', exc)})")
        else:
            config.problems.append(f"{path} is included but does not exist")
        return
    config.files.append(path)
    config.real[path] = full
    skipped = rh.sudoers_file_skipped(st, root)
    if skipped:
        config.skipped.append(f"{path} is {skipped}: sudo skips it")
        return
    active = active | {path}
    for number, line in _logical_lines(text):
        m = _INCLUDE_RE.match(line)
        if m is None:
            config.entries.append(Entry(path, number, line))
            continue
        target = _resolve(m.group(2), path, host)
        if m.group(1) == "include":
            _read_file(root, target, config, depth + 1, active, host)
            continue
        config.includes_dir.setdefault(target, (len(config.entries), path))
        try:
            names = os.listdir(in_root(root, target))
        except PermissionError:
            config.unreadable.append(target + "/")
            continue
        except (OSError, rh.HelperError):
            continue  # sudo ignores a missing directory
        for name in included_names(names):
            child = os.path.join(target, name)
            try:
                if not os.path.isfile(in_root(root, child)):
                    continue
            except (OSError, rh.HelperError):
                continue
            _read_file(root, child, config, depth + 1, active, host)


# --- parsing entries ----------------------------------------------------------------------------


def _split(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside quotes and parentheses, honouring backslash escapes."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for _, piece, outside in _pieces(text):
        if outside and piece == "(":
            depth += 1
        elif outside and piece == ")":
            depth = max(0, depth - 1)
        elif outside and depth == 0 and piece == sep:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(piece)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


_ALIAS_KINDS = {"User_Alias": "user", "Runas_Alias": "runas", "Host_Alias": "host",
                "Cmnd_Alias": "cmnd", "Cmd_Alias": "cmnd"}  # fmt: skip
_TAGS = ("NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT",
         "NOLOG_INPUT", "LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW",
         "INTERCEPT", "NOINTERCEPT")  # fmt: skip
_TAG_RE = re.compile(r"^(" + "|".join(_TAGS) + r")\s*:\s*")
_OPTION_RE = re.compile(
    r"^(CWD|CHROOT|TIMEOUT|NOTBEFORE|NOTAFTER|ROLE|TYPE|APPARMOR_PROFILE|PRIVS|LIMITPRIVS)"
    r"\s*=\s*(\"(?:[^\"\\]|\\.)*\"|\S+)\s*"
)
_SETTING_RE = re.compile(r"^(!*)\s*([A-Za-z_]+)\s*(?:([+-]?=)\s*(.*))?$")
_DIGEST_RE = re.compile(r"^(sha224|sha256|sha384|sha512)\s*:\s*\S+\s+")


@dataclass(frozen=True)
class Rule:
    """One command of a user specification, with what it inherited from before it."""

    entry: Entry
    users: list[str]
    hosts: list[str]
    runas_users: list[str] | None
    """None: no runas list, so root only."""
    nopasswd: bool | None
    """The PASSWD/NOPASSWD tag in force (None: neither, the ``authenticate`` default decides)."""
    command: str


@dataclass(frozen=True)
class Default:
    entry: Entry
    kind: str
    """"" (generic), "@" host, ":" user, ">" runas, "!" command."""
    targets: list[str]
    settings: list[str]


def _parse_user_spec(entry: Entry, rules: list[Rule]) -> None:
    text = entry.text
    m = re.match(r"^(.*?[^\s,])\s+([^=]*?)\s*=\s*(.*)$", text)
    if m is None:
        return
    users = _split(m.group(1))
    segments = re.split(r"\s:\s*(?=[^=(),]+=)", m.group(2) + " = " + m.group(3))
    for segment in segments:
        hosts_text, _, spec = segment.partition("=")
        hosts = _split(hosts_text.strip())
        runas: list[str] | None = None
        nopasswd: bool | None = None
        for piece in _split(spec):
            rest = piece
            if rest.startswith("("):
                close = rest.find(")")
                inside = rest[1:close] if close > 0 else rest[1:]
                rest = rest[close + 1 :].strip() if close > 0 else ""
                user_part = inside.split(":", 1)[0].strip()
                runas = _split(user_part) if user_part else []
            while True:
                om = _OPTION_RE.match(rest)
                if om:
                    rest = rest[om.end() :]
                    continue
                tm = _TAG_RE.match(rest)
                if tm:
                    if tm.group(1) in ("NOPASSWD", "PASSWD"):
                        nopasswd = tm.group(1) == "NOPASSWD"
                    rest = rest[tm.end() :]
                    continue
                break
            if rest:
                rules.append(Rule(entry, users, hosts, runas, nopasswd, rest.strip()))


def parse(config: Config) -> tuple[list[Rule], list[Default], dict[tuple[str, str], list[str]]]:
    """The rules, Defaults and aliases of ``config``, in sudo's order."""
    rules: list[Rule] = []
    defaults: list[Default] = []
    aliases: dict[tuple[str, str], list[str]] = {}
    for entry in config.entries:
        text = entry.text
        word = text.split(None, 1)[0]
        if word in _ALIAS_KINDS:
            kind = _ALIAS_KINDS[word]
            for definition in re.split(r"\s:\s*(?=[A-Z][A-Z0-9_]*\s*=)", text[len(word) :]):
                name, _, members = definition.partition("=")
                aliases[(kind, name.strip())] = _split(members)
            continue
        if word.startswith("Defaults"):
            dm = re.match(r"^Defaults(?:([:>@!])((?:[^\s\\]|\\.)+(?:\s*,\s*(?:[^\s\\]|\\.)+)*))?"
                          r"\s+(.*)$", text)  # fmt: skip
            if dm:
                kind = dm.group(1) or ""
                defaults.append(Default(entry, kind, _split(dm.group(2) or ""),
                                        _split(dm.group(3))))  # fmt: skip
            continue
        _parse_user_spec(entry, rules)
    return rules, defaults, aliases


# --- matching -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What is asked: an ordinary user running ``program`` (with arguments) as ``runas``."""

    program: str
    runas: str
    runas_uid: int | None
    runas_groups: frozenset[str]
    host: str


def _list_match(items: list[str], one, aliases, kind: str, depth: int = 0) -> bool | None:
    """sudo's list rule: the last item that matches decides (a '!' item says no)."""
    result = None
    for raw in items:
        item = raw.strip()
        negated = False
        while item.startswith("!"):
            negated = not negated
            item = item[1:].strip()
        if (kind, item) in aliases and depth < 32:
            matched = _list_match(aliases[(kind, item)], one, aliases, kind, depth + 1)
        else:
            matched = one(item)
        if matched:
            result = not negated
    return result


def _user_match(item: str) -> bool:
    return item == "ALL"


def _host_match(target: Target):
    def one(item: str) -> bool:
        if item == "ALL":
            return True
        short = target.host.split(".")[0]
        return bool(target.host) and item in (target.host, short)

    return one


def _runas_match(target: Target):
    def one(item: str) -> bool:
        if item == "ALL" or item == target.runas:
            return True
        if item.startswith("#") and target.runas_uid is not None:
            return item[1:] == str(target.runas_uid)
        if item.startswith("%"):
            return item[1:] in target.runas_groups
        return False

    return one


def _command_match(target: Target):
    program = target.program

    def one(item: str) -> bool:
        item = _DIGEST_RE.sub("", item.strip())
        if item == "ALL":
            return True
        path, _, args = item.partition(" ")
        args = args.strip()
        if args == '""':
            return False  # no arguments allowed: 0install passes the digest
        if path.startswith("^") and path.endswith("$"):
            try:
                matched = re.match(path, program) is not None
            except re.error:
                return False
        elif path.endswith("/"):
            matched = os.path.dirname(program) + "/" == path
        elif any(c in path for c in "*?["):
            matched = fnmatch.fnmatchcase(program, path)
        else:
            matched = path == program
        if not matched:
            return False
        return not args or "*" in args

    return one


@dataclass(frozen=True)
class Verdict:
    """What sudo does for an ordinary user running the program as zeroinst."""

    allowed: bool
    nopasswd: bool
    rule: Rule | None
    """The last matching rule (it decides)."""
    env_reset: bool
    home_set: bool
    requiretty: bool
    settings: list[Entry]
    """The Defaults lines that set what matters here (env_reset, always_set_home, ...)."""
    others: list[Rule]
    """NOPASSWD rules that grant it to some named users or groups only."""
    blocking: list[Entry]
    """Lines that make it fail: the deciding rule when it needs a password or denies, Defaults
    that turn env_reset off or requiretty on."""

    @property
    def works(self) -> bool:
        return (
            self.allowed
            and self.nopasswd
            and self.env_reset
            and self.home_set
            and not (self.requiretty)
        )


_SETTINGS = {"env_reset": True, "always_set_home": False, "authenticate": True,
             "requiretty": False, "keep_home": False}  # fmt: skip
"""The settings that matter here, as sudo has them without Defaults (keep_home: HOME is in
env_keep)."""
_DEFAULTS_ORDER = {"": 0, "@": 1, ":": 2, ">": 3, "!": 4}


def _defaults_apply(d: Default, target: Target, aliases) -> bool:
    """Whether a Defaults line is in force for ``target`` (a generic one always is)."""
    if d.kind == "@":
        return bool(_list_match(d.targets, _host_match(target), aliases, "host"))
    if d.kind == ":":
        return bool(_list_match(d.targets, _user_match, aliases, "user"))
    if d.kind == ">":
        return bool(_list_match(d.targets, _runas_match(target), aliases, "runas"))
    if d.kind == "!":
        return bool(_list_match(d.targets, _command_match(target), aliases, "cmnd"))
    return True


def _settings_in_force(
    defaults: list[Default], target: Target, aliases
) -> dict[str, tuple[bool, Entry | None]]:
    """Each setting of :data:`_SETTINGS` for ``target``, with the Defaults line that set it last
    (None: sudo's own default). Generic Defaults apply first, then @host, :user, >runas and
    !command ones, each group in file order."""
    settings: dict[str, tuple[bool, Entry | None]] = {
        name: (value, None) for name, value in _SETTINGS.items()
    }
    applicable = [d for d in defaults if _defaults_apply(d, target, aliases)]
    applicable.sort(key=lambda d: _DEFAULTS_ORDER[d.kind])  # stable: file order within each kind
    for d in applicable:
        for setting in d.settings:
            sm = _SETTING_RE.match(setting)
            if sm is None:
                continue
            bangs, name, op, value = sm.groups()
            negated = len(bangs) % 2 == 1
            if name in ("env_reset", "always_set_home", "authenticate", "requiretty"):
                settings[name] = (not negated, d.entry)
            elif name == "env_keep":
                words = value.strip('"').split()
                if negated or (op == "-=" and "HOME" in words):
                    settings["keep_home"] = (False, d.entry)
                elif op in ("+=", "=") and "HOME" in words:
                    settings["keep_home"] = (True, d.entry)
                elif op == "=":
                    settings["keep_home"] = (False, d.entry)
    return settings


def _deciding_rule(
    rules: list[Rule], target: Target, aliases
) -> tuple[Rule | None, bool, list[Rule]]:
    """(the last rule for every user that matches ``target``: it decides, whether it allows,
    the NOPASSWD rules that grant it to some named users or groups only)."""
    host_one, runas_one, cmnd_one = (
        _host_match(target),
        _runas_match(target),
        _command_match(target),
    )
    deciding: Rule | None = None
    allowed = False
    others: list[Rule] = []
    for rule in rules:
        if not _list_match(rule.hosts, host_one, aliases, "host"):
            continue
        runas = rule.runas_users if rule.runas_users is not None else ["root"]
        if not _list_match(runas, runas_one, aliases, "runas"):
            continue
        cmd = _list_match([rule.command], cmnd_one, aliases, "cmnd")
        if cmd is None:
            continue
        if _list_match(rule.users, _user_match, aliases, "user"):
            deciding, allowed = rule, bool(cmd)
        elif cmd and rule.nopasswd:
            others.append(rule)
    return deciding, allowed, others


def evaluate(config: Config, target: Target) -> Verdict:
    """What sudo does for ``target``: the rule that decides and the Defaults in force."""
    rules, defaults, aliases = parse(config)
    settings = _settings_in_force(defaults, target, aliases)
    deciding, allowed, others = _deciding_rule(rules, target, aliases)
    authenticate = settings["authenticate"][0]
    if deciding is not None and deciding.nopasswd is not None:
        nopasswd = deciding.nopasswd
    else:
        nopasswd = not authenticate
    env_reset = settings["env_reset"][0]
    home_set = settings["always_set_home"][0] or (env_reset and not settings["keep_home"][0])
    requiretty = settings["requiretty"][0]
    used = [e for _, e in settings.values() if e is not None]
    blocking: list[Entry] = []
    if deciding is not None and (not allowed or not nopasswd):
        blocking.append(deciding.entry)
    for name, bad in (("env_reset", False), ("requiretty", True)):
        value, entry = settings[name]
        if value == bad and entry is not None:
            blocking.append(entry)
    if not home_set:
        for name in ("always_set_home", "keep_home"):
            entry = settings[name][1]
            if entry is not None:
                blocking.append(entry)
    return Verdict(allowed, allowed and nopasswd, deciding, env_reset, home_set, requiretty,
                   sorted(set(used), key=used.index), others, blocking)  # fmt: skip


def why_not(verdict: Verdict, program: str) -> str:
    """Why an ordinary user cannot run ``program`` as zeroinst the way 0install does."""
    reasons = []
    if verdict.rule is None:
        reasons.append(f"no sudoers rule lets every user run {program} as {rh.SYSTEM_USER}")
    elif not verdict.allowed:
        reasons.append(f"the last matching rule, {verdict.rule.entry.where}, forbids it: "
                       f"{verdict.rule.entry.text}")  # fmt: skip
    elif not verdict.nopasswd:
        reasons.append(f"the last matching rule, {verdict.rule.entry.where}, asks for a password "
                       f"(the last match wins): {verdict.rule.entry.text}")  # fmt: skip
    if not verdict.env_reset:
        reasons.append("env_reset is off for zeroinst (0store-secure-add then refuses: "
                       "'Environment not cleared')")  # fmt: skip
    elif not verdict.home_set:
        reasons.append("sudo keeps the user's HOME (0store-secure-add then refuses: "
                       "'$HOME not set'); always_set_home is needed")  # fmt: skip
    if verdict.requiretty:
        reasons.append("requiretty is on (0install runs the helper without a terminal)")
    if verdict.others:
        reasons.append("only some users may: " + "; ".join(
            f"{r.entry.where}: {r.entry.text}" for r in verdict.others))  # fmt: skip
    settings = [e for e in verdict.blocking if verdict.rule is None or e != verdict.rule.entry]
    text = "; ".join(reasons)
    if settings:
        text += " (" + "; ".join(f"{e.where}: {e.text}" for e in settings) + ")"
    return text


def with_dropin(config: Config, path: str, text: str) -> Config | None:
    """``config`` as it would be with ``text`` at ``path`` (a file of an included directory, which
    takes its place in that directory's order); None when no @includedir reads its directory."""
    directory, name = os.path.split(path)
    if directory not in config.includes_dir:
        return None
    start, _ = config.includes_dir[directory]
    entries = [e for e in config.entries if e.path != path]
    new = [Entry(path, n, line) for n, line in _logical_lines(text)]
    # The directory's files come right after its @includedir line, in name order.
    position = start
    while (
        position < len(entries)
        and os.path.dirname(entries[position].path) == directory
        and os.path.basename(entries[position].path) < name
    ):
        position += 1
    merged = entries[:position] + new + entries[position:]
    return Config(merged, config.files, config.unreadable, config.problems, config.skipped,
                  config.real, config.includes_dir)  # fmt: skip


def target_for(root: str, program: str) -> Target:
    account = rh.read_account(rh.SYSTEM_USER, root)
    groups = {rh.SYSTEM_USER}
    try:
        with open(rh.under(root, "/etc/group"), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 4 and (
                    rh.SYSTEM_USER in fields[3].split(",")
                    or (account is not None and fields[2] == str(account.gid))
                ):
                    groups.add(fields[0])
    except (OSError, rh.HelperError):
        pass
    return Target(program, rh.SYSTEM_USER, account.uid if account else None, frozenset(groups),
                  _hostname(root))  # fmt: skip


# --- beyond reading the files: what visudo and sudo say, other rule sources ---------------------


def broken_files(root: str, config: Config) -> list[str]:
    """Readable sudoers files (other than /etc/sudoers) that visudo finds errors in: "FILE: why".
    sudo 1.9 skips the bad line and warns every user who runs it."""
    problems: list[str] = []
    for path in config.files:
        if path == rh.SUDOERS_MAIN or path in config.unreadable:
            continue
        full = config.real.get(path, rh.under(root, path))
        try:
            message = rh.visudo_check(full)
        except rh.HelperError:
            return problems
        if message:
            problems.append(f"{path}: {message.replace(full, path)}")
    return problems


def sudo_lists(root: str, program: str) -> bool | None:
    """As root on the real system, what sudo itself says: may an ordinary user run ``program``
    as zeroinst (``sudo -n -l -U nobody -u zeroinst PROGRAM``, exit 0)? None elsewhere (a fake
    root, an ordinary user, no sudo): the files are all there is."""
    if os.path.realpath(root) != "/" or os.geteuid() != 0:
        return None
    sudo = shutil.which("sudo", path="/usr/bin:/bin")
    if sudo is None or rh.read_account(ORDINARY_USER) is None:
        return None
    try:
        proc = subprocess.run(
            [sudo, "-n", "-l", "-U", ORDINARY_USER, "-u", rh.SYSTEM_USER, program],
            capture_output=True, text=True, timeout=30, check=False, stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.returncode == 0


def other_sources(root: str) -> list[str]:
    """Where sudo reads rules besides the files ("sss", "ldap"), from its nsswitch.conf line."""
    try:
        with open(rh.under(root, NSSWITCH), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    m = re.search(r"^\s*sudoers\s*:\s*(.*)$", text, re.MULTILINE)
    if m is None:
        return []
    sources = re.sub(r"\[[^]]*\]", " ", m.group(1).split("#", 1)[0]).split()
    return [s for s in sources if s != "files"]
