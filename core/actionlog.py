"""The action log: one JSON line per removal, quarantine or optimisation, kept for the admin.

Where it lives: ``$XDG_STATE_HOME/zeroinstall-admin/actions.jsonl`` (``~/.local/state/...`` when
unset) for a user; running as root in the real environment without ``XDG_STATE_HOME`` set
(``sudo`` clears it),
``/var/log/zeroinstall-admin/actions.jsonl``, and every record also goes to the system log
(``syslog``, which the journal collects) so that a removal from the shared store is on record
outside a file root could edit. A record that cannot be written is reported to the caller, never
raised: the removal has happened and must still be reported.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from core.display import display_text, json_name

APP_DIR = "zeroinstall-admin"
ROOT_LOG_DIR = "/var/log/zeroinstall-admin"
ROOT_STATE_DIR = "/var/lib/zeroinstall-admin"
LOG_NAME = "actions.jsonl"
_MAX_READ = 8 << 20  # the page shows the newest records; a huge log is read from its end


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def state_dir(env: Mapping[str, str] | None = None) -> str:
    """This app's state directory: ``$XDG_STATE_HOME/zeroinstall-admin`` (default
    ``~/.local/state/zeroinstall-admin``); as root with no ``XDG_STATE_HOME``,
    ``/var/lib/zeroinstall-admin``."""
    real = env is None  # a given environment (the demo, tests) never means the machine's dirs
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME")
    if base:
        return os.path.join(base, APP_DIR)
    if real and _is_root():
        return ROOT_STATE_DIR
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "state", APP_DIR)


def log_path(env: Mapping[str, str] | None = None) -> str:
    """The action log's file (see the module docstring)."""
    if env is None and not os.environ.get("XDG_STATE_HOME") and _is_root():
        return os.path.join(ROOT_LOG_DIR, LOG_NAME)
    return os.path.join(state_dir(env), LOG_NAME)


def current_user() -> str:
    """Who is acting: the login name, and the real user behind sudo or pkexec when known."""
    try:
        import pwd

        me = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        me = os.environ.get("USER", "?")
    behind = os.environ.get("SUDO_USER")
    if not behind and os.environ.get("PKEXEC_UID"):
        try:
            import pwd

            behind = pwd.getpwuid(int(os.environ["PKEXEC_UID"])).pw_name
        except (ImportError, KeyError, ValueError):
            behind = os.environ["PKEXEC_UID"]
    return f"{me} (via {behind})" if behind and behind != me else me


@dataclass
class Record:
    """One action on one entry."""

    action: str  # "removing"/"quarantining" (the intent, first), "removed", "quarantined",
    # "failed", "skipped", "optimised"
    store: str
    entry: str
    program: str = ""
    version: str = ""
    size: int = 0  # bytes that came back (disk use), 0 when nothing did
    reasons: list[str] = field(default_factory=list)
    detail: str = ""  # the error for "failed"/"skipped", where it went for "quarantined"
    time: str = ""  # UTC, ISO 8601; filled in when written
    user: str = ""  # filled in when written

    def describe(self) -> str:
        """One line for a log view (names escaped: control characters, bytes that are not
        UTF-8)."""
        entry = display_text(self.entry)
        what = display_text(f"{self.program} {self.version}".strip()) or entry
        extra = f": {display_text(self.detail)}" if self.detail else ""
        where = f"({entry}) in {display_text(self.store)}"
        return f"{self.time}  {self.user}  {self.action} {what} {where}{extra}"

    def to_json(self) -> dict:
        """The record as strict-UTF-8 JSON: ``store`` and ``entry`` in the lossless name form
        (:func:`core.display.json_name`: a string, or ``{"base64", "text"}`` for a name that is
        not UTF-8); other text with such bytes escaped."""
        raw = asdict(self)
        for key, value in raw.items():
            if key in ("store", "entry"):
                raw[key] = json_name(value)
            elif isinstance(value, str):
                raw[key] = _text(value)
            elif isinstance(value, list):
                raw[key] = [_text(v) if isinstance(v, str) else v for v in value]
        return raw

    @classmethod
    def from_json(cls, raw: dict) -> Record:
        """A record read back from :meth:`to_json` (names in either form)."""
        names = cls.__dataclass_fields__
        fields = {k: v for k, v in raw.items() if k in names}
        for key in ("store", "entry"):
            fields[key] = _name_from_json(fields.get(key, ""))
        return cls(**fields)


def _text(value: str) -> str:
    """``value`` with what cannot be UTF-8 (names' undecodable bytes) escaped as ``\\xNN``."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _name_from_json(value: object) -> str:
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        import base64

        try:
            return os.fsdecode(base64.b64decode(value["base64"], validate=True))
        except ValueError:
            return str(value.get("text", ""))
    return value if isinstance(value, str) else str(value)


def _syslog(record: Record) -> None:
    try:
        import syslog

        syslog.openlog("zeroinstall-admin", 0, syslog.LOG_USER)
        message = (
            f"{record.action} {record.store}/{record.entry} ({record.program} {record.version}, "
            f"{record.size} bytes) by {record.user}: {'; '.join(record.reasons) or record.detail}"
        )
        # Names need not be UTF-8, and a newline must not start a forged line: escaped.
        syslog.syslog(syslog.LOG_NOTICE, display_text(message))
    except (ImportError, OSError, ValueError):
        pass


def record(
    records: Sequence[Record], path: str | None = None, *, to_syslog: bool | None = None
) -> str | None:
    """Append records to the log (made 0700/0600 when new). Returns None, or why it failed."""
    if not records:
        return None
    path = path or log_path()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    user = current_user()
    lines = []
    for rec in records:
        rec.time = rec.time or stamp
        rec.user = rec.user or user
        lines.append(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
    if to_syslog is None:
        to_syslog = _is_root() and path.startswith(ROOT_LOG_DIR + "/")
    if to_syslog:
        for rec in records:
            _syslog(rec)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(
            path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "ab") as f:
            f.write("".join(lines).encode("utf-8"))
    except OSError as exc:
        return f"the action log {path} could not be written: {exc.strerror or exc}"
    return None


def read(path: str | None = None, limit: int = 500) -> list[Record]:
    """The newest ``limit`` records, oldest first; lines that are not records are skipped."""
    path = path or log_path()
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _MAX_READ))
            data = f.read()
    except OSError:
        return []
    out: list[Record] = []
    for line in data.decode("utf-8", "replace").splitlines()[-limit:]:
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if isinstance(raw, dict) and "action" in raw and "entry" in raw:
            try:
                out.append(Record.from_json(raw))
            except TypeError:
                continue
    return out


def find(path: str, store: str, entry: str, actions: Sequence[str]) -> Record | None:
    """The newest record of ``entry`` in ``store`` whose action is one of ``actions``."""
    for rec in reversed(read(path, limit=5000)):
        if rec.entry == entry and rec.store == store and rec.action in actions:
            return rec
    return None
