"""A demo Zero Install setup, built from code, for trying the admin tool without a real cache.

:func:`build_demo` lays out under one root directory what 0install itself would leave on a machine:
a user store and a system store holding a dozen implementations of a few made-up programs, the
cached feeds that name them, and one app whose selections use two of them. It also plants the
problems an admin should be shown: a damaged implementation, a leftover ``tmp-`` directory, a
symlink named like a digest that points out of the store, and an implementation no feed lists.

Everything is generated (nothing is downloaded) and deterministic except the times: file contents
and modification times are fixed, so the digests are the same on every run; access times are set
relative to now so that "last used" reads like a real cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from core.digests import encode_value, format_digest
from core.feeds import escape_feed_url
from core.manifest import generate_manifest, hash_manifest

FEED_NAMESPACE = "http://zero-install.sourceforge.net/2004/injector/interface"
DEMO_SITE = "https://demo.example/"
"""``.example`` is reserved (RFC 2606): no demo URL can ever reach a real server."""

APP_NAME = "hello-editor"

_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class _Program:
    key: str  # feed file name without .xml
    name: str
    summary: str
    main: str  # path of the executable the feed's run command points at
    requires: tuple[str, ...] = ()  # keys of other programs

    @property
    def url(self) -> str:
        return f"{DEMO_SITE}{self.key}.xml"


_PROGRAMS = {
    p.key: p
    for p in (
        _Program(
            "hello-editor",
            "Hello Editor",
            "a friendly text editor",
            "bin/hello-editor",
            ("toolkit-runtime",),
        ),
        _Program(
            "gallery-viewer", "Gallery Viewer", "browse and tag your photos", "bin/gallery-viewer"
        ),
        _Program(
            "data-cruncher",
            "Data Cruncher",
            "number crunching for spreadsheets",
            "bin/crunch",
            ("toolkit-runtime",),
        ),
        _Program(
            "toolkit-runtime",
            "Toolkit Runtime",
            "the widget library the demo programs share",
            "bin/toolkit-info",
        ),
    )
}

# A program whose feed is not in the cache any more: its implementation is "unowned".
_UNOWNED = _Program(
    "legacy-helper", "Legacy Helper", "an old helper nobody remembers", "bin/legacy-helper"
)


@dataclass(frozen=True, slots=True)
class _Impl:
    program: _Program
    version: str
    algorithm: str
    store: str  # "user" or "system"
    released: str  # YYYY-MM-DD: the mtime of every file, so digests never change
    used_days_ago: float  # atime of what running it reads
    added_days_ago: float  # atime of what running it does not read (docs, icons)
    damaged: bool = False
    in_app: bool = False


def _impls() -> list[_Impl]:
    p = _PROGRAMS
    he, gv = p["hello-editor"], p["gallery-viewer"]
    dc, tr = p["data-cruncher"], p["toolkit-runtime"]
    return [
        # user store
        _Impl(he, "1.0", "sha256new", "user", "2022-03-14", 150, 700),
        _Impl(he, "1.1", "sha1new", "user", "2022-09-02", 400, 600),  # not used for over a year
        _Impl(he, "2.0", "sha256new", "user", "2024-05-20", 1, 190, in_app=True),
        _Impl(gv, "0.8", "sha256", "user", "2021-11-30", 95, 820),
        _Impl(dc, "3.2", "sha256new", "user", "2024-01-10", 1.2, 300),
        _Impl(tr, "5.0", "sha256new", "user", "2022-02-01", 150, 700),
        _Impl(tr, "5.1", "sha256new", "user", "2023-12-01", 1, 190, in_app=True),
        _Impl(_UNOWNED, "0.3", "sha256new", "user", "2020-06-01", 240, 1200),
        # system store (shared by every user of the machine)
        _Impl(gv, "0.9", "sha256new", "system", "2022-08-08", 200, 500, damaged=True),
        _Impl(gv, "1.0", "sha256new", "system", "2024-03-03", 2, 250),
        _Impl(dc, "3.1", "sha256new", "system", "2023-06-30", 60, 420),
        _Impl(tr, "5.1", "sha256new", "system", "2023-12-01", 60, 420),
    ]


# The version the planted symlink pretends to be: the feed lists it, the store "has" it.
_PLANTED_VERSION = "2.1"
_DAMAGED_FILE = "lib/gallery-viewer/decoders.bin"


# --- file contents ---------------------------------------------------------------------------


def _blob(seed: str, size: int) -> bytes:
    """``size`` pseudo-random bytes, the same for the same seed on every run and machine."""
    return hashlib.shake_256(seed.encode()).digest(size)


def _script(program: _Program, version: str) -> bytes:
    return (
        "#!/bin/sh\n"
        f"# {program.name} {version}: a made-up program from the Zero Install Admin demo.\n"
        f'echo "{program.name} {version} (demo: there is nothing to run)"\n'
    ).encode()


def _readme(program: _Program, version: str, paragraphs: int) -> bytes:
    line = (
        f"{program.name} {version} - {program.summary}. This file is part of a generated demo "
        "cache; its only purpose is to have a size and a digest.\n"
    )
    return (f"{program.name} {version}\n{'=' * 40}\n\n" + line * paragraphs).encode()


def _svg(program: _Program, hue: int) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48">'
        f'<rect width="48" height="48" rx="8" fill="hsl({hue},60%,45%)"/>'
        '<text x="24" y="32" font-size="22" text-anchor="middle" fill="white">'
        f"{program.name[0]}</text>"
        "</svg>\n"
    ).encode()


def _csv(seed: str, rows: int) -> bytes:
    raw = _blob(seed, rows * 3)
    lines = ["day,visitors,sales"]
    for i in range(rows):
        lines.append(f"{i + 1},{raw[3 * i] * 7 + raw[3 * i + 1]},{raw[3 * i + 2] * 13}")
    return ("\n".join(lines) + "\n").encode()


# A file spec: (path, content) for a regular file, (path, "@target") for a symlink; an executable's
# path is listed in the set returned alongside.
_Files = tuple[list[tuple[str, bytes | str]], set[str]]


def _files(impl: _Impl) -> _Files:
    prog, v = impl.program, impl.version
    seed = f"{prog.key}-{v}"
    scale = float(v)  # later versions are bigger
    if prog.key == "hello-editor":
        files: list[tuple[str, bytes | str]] = [
            ("bin/hello-editor", _script(prog, v)),
            ("bin/he", "@hello-editor"),
            ("lib/hello-editor/core.bin", _blob(seed + "core", int(260_000 * scale))),
            ("lib/hello-editor/plugins/spell.bin", _blob(seed + "spell", 48_000)),
            ("share/doc/hello-editor/README", _readme(prog, v, 12)),
            ("share/icons/hello-editor.svg", _svg(prog, 210)),
        ]
        if scale >= 2:
            files.append(("lib/hello-editor/plugins/markdown.bin", _blob(seed + "md", 91_000)))
        return files, {"bin/hello-editor"}
    if prog.key == "gallery-viewer":
        files = [
            ("bin/gallery-viewer", _script(prog, v)),
            ("lib/gallery-viewer/decoders.bin", _blob(seed + "dec", int(700_000 * scale))),
            ("share/doc/gallery-viewer/README", _readme(prog, v, 30)),
            ("share/icons/gallery-viewer.svg", _svg(prog, 30)),
        ]
        for i in range(1, 4):
            files.append(
                (
                    f"share/gallery-viewer/samples/photo-{i:02}.raw",
                    _blob(f"{seed}photo{i}", 90_000 + 40_000 * i),
                )
            )
        return files, {"bin/gallery-viewer"}
    if prog.key == "data-cruncher":
        files = [
            ("bin/crunch", _script(prog, v)),
            ("bin/data-cruncher", "@crunch"),
            ("lib/crunch/engine.bin", _blob(seed + "engine", int(260_000 * scale))),
            ("lib/crunch/solvers/linear.bin", _blob(seed + "linear", 120_000)),
            ("lib/crunch/solvers/sparse.bin", _blob(seed + "sparse", 75_000)),
            ("share/crunch/examples/sales.csv", _csv(seed + "csv", 2500)),
            ("share/doc/data-cruncher/README", _readme(prog, v, 8)),
        ]
        return files, {"bin/crunch"}
    if prog.key == "toolkit-runtime":
        files = [
            ("bin/toolkit-info", _script(prog, v)),
            (f"lib/libtoolkit.so.{v}", _blob(seed + "so", int(90_000 * scale))),
            (f"lib/libtoolkit.so.{v.split('.')[0]}", f"@libtoolkit.so.{v}"),
            ("include/toolkit/toolkit.h", _readme(prog, v, 40)),
            ("share/toolkit/themes/default.theme", _blob(seed + "theme", 24_000)),
        ]
        return files, {"bin/toolkit-info"}
    # the unowned leftover: small
    return [
        ("bin/legacy-helper", _script(prog, v)),
        ("share/legacy-helper/settings.ini", b"[helper]\nverbose = no\nretries = 3\n"),
    ], {"bin/legacy-helper"}


# --- building ----------------------------------------------------------------------------------


def _epoch(date: str) -> int:
    return int(time.mktime(time.strptime(date + " 12:00", "%Y-%m-%d %H:%M")))


def _write_tree(
    root: Path, files: list[tuple[str, bytes | str]], executables: set[str], mtime: int
) -> None:
    for rel, content in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            os.symlink(content[1:], path)
            continue
        # O_EXCL: never write through something that already exists at this name.
        mode = 0o755 if rel in executables else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        os.utime(path, (mtime, mtime))


@dataclass(slots=True)
class _Built:
    impl: _Impl
    name: str  # digest directory name
    path: Path
    size: int
    manifest: bytes
    files: list[tuple[str, bytes | str]]
    executables: set[str]


def _add_implementation(store: Path, impl: _Impl, index: int) -> _Built:
    """Write the files, name the directory by their digest, keep a .manifest: as 0install does."""
    files, executables = _files(impl)
    staging = store / f"tmp-demo{index:02}"
    staging.mkdir()
    mtime = _epoch(impl.released)
    _write_tree(staging, files, executables, mtime)
    manifest = generate_manifest(staging, impl.algorithm)
    (staging / ".manifest").write_bytes(manifest)
    name = format_digest(impl.algorithm, hash_manifest(impl.algorithm, manifest))
    final = store / name
    os.rename(staging, final)
    if impl.damaged:
        # Bit rot after it was added: same size, same mtime, different bytes. The .manifest still
        # describes the original, so verification can say exactly which file changed.
        victim = final / _DAMAGED_FILE
        data = bytearray(victim.read_bytes())
        for offset in range(1000, len(data), 65_536):
            data[offset] ^= 0x5A
        victim.write_bytes(bytes(data))
        os.utime(victim, (mtime, mtime))
    size = sum(len(c) for _, c in files if isinstance(c, bytes))
    return _Built(impl, name, final, size, manifest, files, executables)


def _finish_permissions_and_times(built: _Built, now: float) -> None:
    """Make the entry read-only like 0install, and give it believable times.

    Runs after all reading (hashing updates atimes under relatime), deepest paths first, never
    listing a directory after its times are set.
    """
    impl = built.impl
    mtime = _epoch(impl.released)
    used = now - impl.used_days_ago * _DAY
    added = now - impl.added_days_ago * _DAY
    files, executables = built.files, built.executables
    run_reads = {p for p, _ in files if p.startswith(("bin/", "lib/"))}
    dirs: set[str] = set()
    for rel, content in files:
        parent = os.path.dirname(rel)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
        path = built.path / rel
        if isinstance(content, str):
            os.utime(path, (used, mtime), follow_symlinks=False)
            continue
        os.chmod(path, 0o555 if rel in executables else 0o444)
        os.utime(path, (used if rel in run_reads else added, mtime))
    manifest_file = built.path / ".manifest"
    os.chmod(manifest_file, 0o444)
    os.utime(manifest_file, (added, added))
    for rel in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        os.chmod(built.path / rel, 0o555)
        os.utime(built.path / rel, (used if rel.startswith(("bin", "lib")) else added, mtime))
    os.chmod(built.path, 0o555)
    os.utime(built.path, (used, added))


def _planted_digest() -> str:
    """A well-formed sha256new name whose contents nobody ever hashed."""
    return format_digest(
        "sha256new",
        encode_value(
            "sha256new", hashlib.sha256(b"Zero Install Admin demo: planted entry").digest()
        ),
    )


def _feed_xml(program: _Program, builts: list[_Built], planted: str) -> str:
    """A cached feed as 0install keeps it: one <group> sharing the run command, one <implementation>
    per version (each version listed once even if it is in several stores)."""
    lines = [
        '<?xml version="1.0" ?>',
        f"<interface xmlns={quoteattr(FEED_NAMESPACE)} uri={quoteattr(program.url)}>",
        f"  <name>{escape(program.name)}</name>",
        f"  <summary>{escape(program.summary)}</summary>",
        "  <description>A made-up program from the Zero Install Admin demo. Nothing here can be "
        "downloaded.</description>",
        f"  <homepage>{escape(DEMO_SITE + program.key + '/')}</homepage>",
        '  <group license="OSI Approved :: MIT License">',
    ]
    for key in program.requires:
        lines.append(f"    <requires interface={quoteattr(_PROGRAMS[key].url)}/>")
    lines.append(f'    <command name="run" path={quoteattr(program.main)}/>')
    seen: set[str] = set()
    entries = [(b.impl.version, b.impl.released, b.name, b.size) for b in builts]
    if program.key == "hello-editor":
        entries.append((_PLANTED_VERSION, "2024-11-02", planted, 912_345))
    for version, released, name, size in entries:
        if name in seen:
            continue
        seen.add(name)
        algorithm, _, value = name.partition("_" if name.startswith("sha256new_") else "=")
        archive = f"{DEMO_SITE}downloads/{program.key}-{version}.tar.bz2"
        lines += [
            f"    <implementation id={quoteattr(name)} released={quoteattr(released)} "
            f"version={quoteattr(version)}>",
            f"      <manifest-digest {algorithm}={quoteattr(value)}/>",
            f'      <archive href={quoteattr(archive)} size="{size}"/>',
            "    </implementation>",
        ]
    lines += ["  </group>", "</interface>", ""]
    return "\n".join(lines)


def _selections_xml(builts: list[_Built]) -> str:
    """The selections of the demo app, in the format ``0install select --xml`` writes."""
    root = _PROGRAMS[APP_NAME]
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "",
        f'<selections command="run" interface={quoteattr(root.url)} source="false" '
        f"xmlns={quoteattr(FEED_NAMESPACE)}>",
    ]
    for b in builts:
        prog = b.impl.program
        algorithm, _, value = b.name.partition("_" if b.name.startswith("sha256new_") else "=")
        # from-feed is optional when it equals interface; written because readers must accept it.
        lines.append(
            f"  <selection from-feed={quoteattr(prog.url)} id={quoteattr(b.name)} "
            f'interface={quoteattr(prog.url)} license="OSI Approved :: MIT License" '
            f"released={quoteattr(b.impl.released)} version={quoteattr(b.impl.version)}>"
        )
        if prog is root:
            lines.append(f'    <command name="run" path={quoteattr(prog.main)}/>')
        for key in prog.requires:
            lines.append(f"    <requires interface={quoteattr(_PROGRAMS[key].url)}/>")
        lines += [f"    <manifest-digest {algorithm}={quoteattr(value)}/>", "  </selection>"]
    lines.append("</selections>")
    return "\n".join(lines)


def build_demo(root: str | os.PathLike[str]) -> dict[str, str]:
    """Build the demo under ``root`` (which must be new or empty) and return its environment.

    The mapping holds only the variables that point 0install (and this tool) at the demo: HOME and
    the XDG base directories, all inside ``root``. Merge it over ``os.environ`` to run programs.
    Raises ``FileExistsError`` when ``root`` is not empty rather than mix with what is there.
    """
    top = Path(root).absolute()
    top.mkdir(parents=True, exist_ok=True)
    if any(top.iterdir()):
        raise FileExistsError(
            f"The demo directory '{top}' is not empty: choose a new or empty directory for the demo"
        )
    env = _demo_env(top)
    stores = {
        "user": Path(env["XDG_CACHE_HOME"]) / "0install.net" / "implementations",
        "system": Path(env["XDG_CACHE_DIRS"]) / "0install.net" / "implementations",
    }
    for store in stores.values():
        store.mkdir(parents=True)
    for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CONFIG_DIRS", "XDG_DATA_DIRS"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)

    now = time.time()
    builts = [_add_implementation(stores[impl.store], impl, i) for i, impl in enumerate(_impls())]
    planted = _planted_digest()
    _add_problems(top, stores["user"], planted, now)
    # Cached feeds (not the unowned program's: its feed is gone).
    feeds = Path(env["XDG_CACHE_HOME"]) / "0install.net" / "interfaces"
    feeds.mkdir(parents=True)
    for program in _PROGRAMS.values():
        mine = [b for b in builts if b.impl.program is program]
        (feeds / escape_feed_url(program.url)).write_text(
            _feed_xml(program, mine, planted), encoding="utf-8"
        )
    _add_app(Path(env["XDG_CONFIG_HOME"]), [b for b in builts if b.impl.in_app], now)
    for built in builts:
        _finish_permissions_and_times(built, now)
    return env


def _demo_env(top: Path) -> dict[str, str]:
    """HOME and the XDG base directories, all inside ``top``."""
    home = top / "home"
    return {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_DIRS": str(top / "var" / "cache"),
        "XDG_CONFIG_DIRS": str(top / "etc" / "xdg"),
        "XDG_DATA_DIRS": str(top / "usr" / "share"),
    }


def _add_problems(top: Path, store: Path, planted: str, now: float) -> None:
    """Problems an admin should be shown: an entry named by a digest that is a symlink out of
    the store, and a temporary directory a download left behind weeks ago."""
    evil = top / "elsewhere" / "evil"
    _write_tree(
        evil,
        [("bin/hello-editor", b"#!/bin/sh\necho 'This is not Hello Editor.'\n")],
        {"bin/hello-editor"},
        int(now - 3 * _DAY),
    )
    os.symlink(evil, store / planted)
    leftover = store / "tmp-k3v9qz"
    _write_tree(
        leftover,
        [
            ("gallery-viewer-1.1/bin/gallery-viewer", _script(_PROGRAMS["gallery-viewer"], "1.1")),
            ("gallery-viewer-1.1/lib/gallery-viewer/decoders.bin", _blob("partial", 310_000)),
        ],
        {"gallery-viewer-1.1/bin/gallery-viewer"},
        _epoch("2024-09-15"),
    )
    os.utime(leftover, (now - 35 * _DAY, now - 35 * _DAY))


def _add_app(config_home: Path, chosen: list[_Built], now: float) -> None:
    """One app, as "0install add hello-editor URL" leaves it: dated selections hard-linked as
    selections.xml, the requirements it was solved for, and the time of the last update check."""
    app = config_home / "0install.net" / "apps" / APP_NAME
    app.mkdir(parents=True)
    dated = app / f"selections-{time.strftime('%Y-%m-%d', time.localtime(now - _DAY))}.xml"
    dated.write_text(_selections_xml(chosen), encoding="utf-8")
    os.link(dated, app / "selections.xml")
    (app / "requirements.json").write_text(
        json.dumps(
            {"interface_uri": _PROGRAMS[APP_NAME].url, "command": "run"}, separators=(",", ":")
        ),
        encoding="utf-8",
    )
    checked = app / "last-checked"  # 0install keeps the time of its last update check as the mtime
    checked.touch(0o600)
    os.utime(checked, (now - _DAY, now - _DAY))
