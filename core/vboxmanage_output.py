"""Reading what ``VBoxManage`` prints: the VM list, ``showvminfo`` in both its forms (the
machine-readable one and the human one, the only one that tells read-only and auto-mount),
extra data, guest properties and Guest Additions versions.

Every parser skips what it does not understand rather than fail; the formats are written down in
``shared/reference/virtualbox.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_LIST_LINE = re.compile(r'^"(.*)" \{([0-9a-fA-F-]+)\}$')
_HUMAN_FOLDER = re.compile(
    r"^Name: '(?P<name>.*?)', Host path: '(?P<path>.*)' \((?P<kind>machine|transient|global) "
    r"mapping\), (?P<access>writable|readonly)(?P<rest>.*)$"
)
_MOUNT_POINT = re.compile(r", mount-point: '(.*)'(?:, symlink-policy: [^,]*)?$")


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
