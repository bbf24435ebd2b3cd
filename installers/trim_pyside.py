"""Removes from a virtual environment the parts of PySide6 the app can never load.

    python3 trim_pyside.py VENV SOURCE_TREE

PySide6-Essentials ships Qt Quick, QML, Designer and developer tools (about 230 MB unpacked); the
app uses Widgets. Kept: the Python modules that core/ and gui/ in SOURCE_TREE import (plus QtSvg,
which draws the icons), every plugin except developer and server ones, and exactly the Qt libraries
those need (their DT_NEEDED closure, read with objdump). Whatever else imports a removed module
fails loudly at start-up, and the package tests start every page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ALWAYS = {"QtCore", "QtGui", "QtWidgets", "QtSvg"}
# Developer tools, headers, stubs and data for code generators: never used at run time.
TOOLS = [
    "assistant", "designer", "linguist", "lrelease", "lupdate", "qmlformat", "qmllint", "qmlls",
    "svgtoqml", "balsam", "balsamui", "include", "typesystems", "glue", "doc", "scripts",
    "Qt/libexec", "Qt/metatypes", "Qt/qml",
]  # fmt: skip
# Plugins for Designer and QML tooling, Wayland compositors (the server side), Lottie animations,
# a VNC server and TUIO touch over the network: each would pull Qt Quick, QML or Network in for
# nothing. The virtual keyboard and PDF image plugins need libraries that PySide6-Essentials does
# not even ship, and so does EGLFS (full-screen on embedded devices, with no window system).
PLUGINS = [
    "designer", "qmllint", "qmltooling", "wayland-graphics-integration-server",
    "vectorimageformats", "platforminputcontexts/libqtvirtualkeyboardplugin.so",
    "platforms/libqvnc.so", "generic/libqtuiotouchplugin.so", "imageformats/libqpdf.so",
    "egldeviceintegrations", "platforms/libqeglfs.so",
]  # fmt: skip
# Plugins that only serve a Python module the app does not import.
PLUGINS_OF = {
    "QtSql": ["sqldrivers"],
    "QtNetwork": ["tls", "networkinformation"],
    "QtPrintSupport": ["printsupport"],
}


def imported_modules(source: Path) -> set[str]:
    found = set(ALWAYS)
    for package in ("core", "gui"):
        for path in (source / package).rglob("*.py"):
            found.update(re.findall(r"PySide6\.(Qt\w+)", path.read_text(encoding="utf-8")))
    return found


def needed(elf: Path) -> list[str]:
    out = subprocess.run(
        ["objdump", "-p", str(elf)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return re.findall(r"^\s*NEEDED\s+(\S+)", out, re.MULTILINE)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def trim(venv: Path, source: Path) -> None:
    (pyside,) = venv.glob("lib/python3*/site-packages/PySide6")
    shiboken = pyside.parent / "shiboken6"
    keep = imported_modules(source)
    for module in pyside.glob("Qt*.abi3.so"):
        if module.name.split(".")[0] not in keep:
            module.unlink()
    for stub in [*pyside.glob("*.pyi"), *shiboken.glob("*.pyi")]:
        stub.unlink()
    for name in TOOLS:
        remove(pyside / name)
    remove(shiboken / "include")
    if "QtQml" not in keep:
        for lib in pyside.glob("libpyside6qml*"):
            lib.unlink()
    plugins = pyside / "Qt" / "plugins"
    for name in PLUGINS:
        remove(plugins / name)
    for module, names in PLUGINS_OF.items():
        if module not in keep:
            for name in names:
                remove(plugins / name)

    libdir = pyside / "Qt" / "lib"
    local = {p.name: p for p in libdir.iterdir()}
    roots = [
        *pyside.glob("*.so*"),
        *shiboken.glob("*.so*"),
        *(p for p in plugins.rglob("*.so") if p.is_file()),
    ]
    wanted: set[str] = set()
    todo = list(roots)
    while todo:
        for name in needed(todo.pop()):
            if name in local and name not in wanted:
                wanted.add(name)
                todo.append(local[name])
    for name, path in local.items():
        if name not in wanted:
            remove(path)


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: trim_pyside.py VENV SOURCE_TREE", file=sys.stderr)
        return 2
    venv, source = Path(argv[0]), Path(argv[1])
    before = size(venv)
    trim(venv, source)
    print(f"trim_pyside: {before / 1e6:.0f} MB -> {size(venv) / 1e6:.0f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
