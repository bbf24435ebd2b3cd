"""The Debian package, the wheel and the sdist, built by installers/build-deb.sh as a user would,
then inspected (dpkg-deb -c/-I), validated (desktop-file-validate, appstreamcli), installed into a
throwaway root with ``dpkg --root``, run from there, and removed again.

Installing on a fresh machine with apt (dependencies resolved from the Debian mirror, pkaction,
purge), and building there from a clone in /root, take a debootstrap: installers/test-deb-fresh.sh,
which the two ``slow`` tests at the end run (``-m "not slow"`` leaves them out).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
APP_ID = "net.zeroinstall.Admin"
APP = "/usr/lib/zeroinstall-admin"
HELPER = "/usr/libexec/zeroinstall-admin/zeroinstall-admin-helper"
POLICY = f"/usr/share/polkit-1/actions/{APP_ID}.policy"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def run(*cmd: str | Path, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], check=False, capture_output=True, text=True, timeout=timeout, **kw
    )


@dataclass
class Built:
    deb: Path
    wheel: Path
    sdist: Path


@dataclass
class Entry:
    mode: str
    owner: str
    path: str
    target: str | None


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    proc = run(REPO / "installers" / "build-deb.sh", "--outdir", out, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    deb = Path(proc.stdout.strip().splitlines()[-1])
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert deb.is_file() and deb.suffix == ".deb" and deb.parent == out
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return Built(deb, wheels[0], sdists[0])


@pytest.fixture(scope="module")
def contents(built: Built) -> dict[str, Entry]:
    proc = run("dpkg-deb", "-c", built.deb)
    assert proc.returncode == 0, proc.stderr
    entries = {}
    for line in proc.stdout.splitlines():
        mode, owner, _size, _date, _time, rest = line.split(None, 5)
        path, _, target = rest.partition(" -> ")
        path = path.removeprefix(".").rstrip("/") or "/"
        entries[path] = Entry(mode, owner, path, target or None)
    return entries


def control(deb: Path) -> dict[str, str]:
    proc = run("dpkg-deb", "-f", deb)
    assert proc.returncode == 0, proc.stderr
    fields: dict[str, str] = {}
    key = ""
    for line in proc.stdout.splitlines():
        if line.startswith(" ") and key:
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


@pytest.mark.slow  # builds the package
def test_build_prints_the_deb_last_and_makes_a_wheel_and_sdist(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    assert {"core/cli.py", "gui/app.py", f"gui/resources/icons/{APP_ID}.svg"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(built.wheel).read(entry_points).decode()
    assert "zeroinstall-admin = gui.launch:run" in text
    with tarfile.open(built.sdist) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "core/cli.py", f"resources/{APP_ID}.desktop"} <= members
    assert not any(m.startswith((".venv/", "build/", "dist/")) for m in members)


@pytest.mark.slow  # builds the package
def test_control_declares_the_dependencies(built: Built) -> None:
    fields = control(built.deb)
    assert fields["Package"] == "zeroinstall-admin"
    assert fields["Architecture"] == run("dpkg", "--print-architecture").stdout.strip()
    assert int(fields["Installed-Size"]) > 10_000  # KiB: the venv with Qt is in there
    depends = [d.strip() for d in fields["Depends"].split(",")]
    names = {re.split(r"[ (]", d)[0] for d in depends}
    qt_libs = {"libegl1", "libgl1", "libfontconfig1", "libxkbcommon0", "libxcb-cursor0",
               "libxkbcommon-x11-0", "libdbus-1-3", "fonts-dejavu-core",
               "libwayland-cursor0"}  # fmt: skip
    assert {"python3", "python3-venv", "0install-core", "sudo", "pkexec"} | qt_libs <= names
    # The venv's bytecode and compiled modules are for one Python minor version.
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"python3 (>= {minor})" in depends
    assert any(d.startswith("python3 (<< ") for d in depends)
    # PySide6's wheels are manylinux_2_34: built against glibc 2.34.
    assert "libc6 (>= 2.34)" in depends


@pytest.mark.slow  # builds the package
def test_files_owners_and_modes(contents: dict[str, Entry]) -> None:
    for entry in contents.values():
        assert entry.owner == "root/root", entry
        if not entry.mode.startswith("l"):
            # No setuid or setgid bit, nothing anyone may write to.
            assert entry.mode[3] in "x-" and entry.mode[6] in "x-" and entry.mode[8] == "-", entry
    launcher = contents["/usr/bin/zeroinstall-admin"]
    assert (
        launcher.mode.startswith("l")
        and launcher.target == "../lib/zeroinstall-admin/bin/zeroinstall-admin"
    )
    assert contents[f"{APP}/bin/zeroinstall-admin"].mode == "-rwxr-xr-x"
    assert contents[f"{APP}/bin/python3"].target == "/usr/bin/python3"
    for path in (
        f"/usr/share/applications/{APP_ID}.desktop",
        f"/usr/share/metainfo/{APP_ID}.metainfo.xml",
        f"/usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg",
        *(f"/usr/share/icons/hicolor/{s}x{s}/apps/{APP_ID}.png" for s in ICON_SIZES),
        "/usr/share/doc/zeroinstall-admin/copyright",
    ):
        assert contents[path].mode == "-rw-r--r--", path
    # The helper and the policy are installed exactly when the checkout has them.
    has_helper = (REPO / "core" / "root_helper.py").is_file()
    assert (HELPER in contents) == has_helper
    if has_helper:
        assert contents[HELPER].mode == "-rwxr-xr-x"
        assert contents["/usr/libexec/zeroinstall-admin"].mode == "drwxr-xr-x"
    assert (POLICY in contents) == (REPO / "resources" / f"{APP_ID}.policy").is_file()
    if POLICY in contents:
        assert contents[POLICY].mode == "-rw-r--r--"


@pytest.mark.slow  # builds the package
def test_the_app_is_only_in_its_own_environment(contents: dict[str, Entry]) -> None:
    for package in ("core", "gui"):
        inits = [p for p in contents if p.endswith(f"/{package}/__init__.py")]
        site = f"{APP}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
        assert inits == [f"{site}/{package}/__init__.py"]
    allowed = (APP, "/usr/bin/zeroinstall-admin", "/usr/libexec/zeroinstall-admin", "/usr/share/")
    for path, entry in contents.items():
        parent = entry.mode.startswith("d") and any(
            a.startswith(path.rstrip("/") + "/") for a in allowed
        )
        assert path.startswith(allowed) or parent, path
    # Every module comes with its bytecode, so running the app writes nothing under /usr.
    modules = [p for p in contents if p.endswith(".py") and p.startswith(APP)]
    assert len(modules) > 50
    for module in modules:
        folder, name = module.rsplit("/", 1)
        tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
        assert f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc" in contents, module
    # PySide6 is trimmed to what the app can load.
    assert not any(
        p.endswith(("/libQt6Quick.so.6", "/libQt6Qml.so.6", "/designer")) for p in contents
    )
    assert any(p.endswith("/platforms/libqxcb.so") for p in contents)
    assert any(p.endswith("/platforms/libqwayland.so") for p in contents)


@pytest.mark.slow  # builds the package
def test_desktop_file_and_metainfo_validate(tmp_path: Path, built: Built) -> None:
    proc = run("dpkg-deb", "-x", built.deb, tmp_path)
    assert proc.returncode == 0, proc.stderr
    desktop = tmp_path / f"usr/share/applications/{APP_ID}.desktop"
    proc = run("desktop-file-validate", desktop)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    assert "Exec=zeroinstall-admin" in desktop.read_text()
    metainfo = tmp_path / f"usr/share/metainfo/{APP_ID}.metainfo.xml"
    proc = run("appstreamcli", "validate", "--no-net", "--explain", metainfo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = metainfo.read_text()
    for page in ("cache", "clean", "sharing", "vms"):
        # The screenshots the metainfo names are the ones in the checkout (made by --screenshot).
        assert f"resources/screenshots/{page}.png</image>" in text
        assert (REPO / "resources" / "screenshots" / f"{page}.png").is_file() or page != "cache"


def test_a_broken_desktop_file_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / f"{APP_ID}.desktop"
    bad.write_text("[Desktop Entry]\nType=Application\nExec=zeroinstall-admin\n")
    assert run("desktop-file-validate", bad).returncode != 0


@pytest.mark.slow  # builds the package
def test_policy_runs_the_installed_helper(built: Built) -> None:
    source = REPO / "resources" / f"{APP_ID}.policy"
    if not source.is_file():
        assert POLICY not in run("dpkg-deb", "-c", built.deb).stdout
        return
    proc = run("xmllint", "--noout", "--dtdvalid", "/usr/share/polkit-1/policyconfig-1.dtd", source)
    assert proc.returncode == 0, proc.stderr
    paths = set(
        re.findall(r'key="org\.freedesktop\.policykit\.exec\.path">([^<]+)<', source.read_text())
    )
    assert paths == {HELPER}


@pytest.mark.slow  # builds the package
def test_installed_into_a_throwaway_root_runs_and_goes_away(tmp_path: Path, built: Built) -> None:
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").touch()
    (admin / "available").touch()
    dpkg = ("dpkg", f"--root={root}", "--force-depends", "--log=/dev/null")
    proc = run(*dpkg, "-i", built.deb, timeout=300)
    assert proc.returncode == 0, proc.stderr
    python = root / APP.lstrip("/") / "bin/python3"
    launcher = root / APP.lstrip("/") / "bin/zeroinstall-admin"
    assert launcher.read_text().splitlines()[0] == f"#!{APP}/bin/python3 -IB"
    marker = tmp_path / "marker"
    marker.touch()

    # The installed app runs from its own environment, unaffected by the caller's PYTHONPATH or
    # current directory: a planted `core` package next to it is not imported.
    planted = tmp_path / "planted"
    (planted / "core").mkdir(parents=True)
    (planted / "core" / "__init__.py").write_text("raise SystemExit('planted core imported')\n")
    env = {**os.environ, "PYTHONPATH": str(planted), "HOME": str(tmp_path)}
    store = tmp_path / "implementations"
    store.mkdir()
    cmd = (python, "-IB", "-c", "import sys; from gui.launch import main; sys.exit(main())")
    proc = run(*cmd, "list", "--store", store, cwd=planted, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "No entries" in proc.stdout
    png = tmp_path / "cache.png"
    proc = run(*cmd, "--demo", "--page", "cache", "--screenshot", png, cwd=planted, env=env,
               timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run(*cmd, "--demo", "--page", "nowhere", "--screenshot", png, env=env, timeout=300)
    assert proc.returncode == 2 and "choose one of: cache" in proc.stderr, proc.stderr
    written = [
        p
        for p in root.rglob("*")
        if p.stat(follow_symlinks=False).st_mtime > marker.stat().st_mtime
    ]
    assert written == [], written[:5]

    proc = run(*dpkg, "-r", "zeroinstall-admin", timeout=300)
    assert proc.returncode == 0, proc.stderr
    proc = run(*dpkg, "--purge", "zeroinstall-admin", timeout=300)
    assert proc.returncode == 0, proc.stderr
    ancestors = {root / "var", root / "var/lib"}
    left = [p for p in root.rglob("*") if not p.is_relative_to(admin) and p not in ancestors]
    assert left == []
    assert not list(admin.glob("info/zeroinstall-admin.*"))
    assert "zeroinstall-admin" not in (admin / "status").read_text()


@pytest.mark.slow  # builds the package
def test_qt_plugins_find_every_library(tmp_path: Path, built: Built) -> None:
    """The trimmed PySide6 still has every Qt library its kept plugins load (and this machine, which
    has the packages the .deb depends on, every system library)."""
    proc = run("dpkg-deb", "-x", built.deb, tmp_path)
    assert proc.returncode == 0, proc.stderr
    plugins = list(
        tmp_path.glob(f"{APP.lstrip('/')}/lib/python3*/site-packages/PySide6/Qt/plugins/*/*.so")
    )
    kinds = {p.parent.name for p in plugins}
    assert {"platforms", "imageformats", "iconengines", "xcbglintegrations"} <= kinds
    missing = []
    for plugin in plugins:
        if plugin.parent.name == "platformthemes":
            continue  # GTK's and the portal's: loaded only on desktops that have those libraries
        out = run("ldd", plugin).stdout
        missing += [
            f"{plugin.name}: {line.strip()}" for line in out.splitlines() if "not found" in line
        ]
    assert missing == []


# The debootstrapped tree and the downloaded .debs, kept between runs (made again after a week).
FRESH_CACHE = {"ZIA_DEBOOTSTRAP_CACHE": os.environ.get(
    "ZIA_DEBOOTSTRAP_CACHE", "/var/tmp/zeroinstall-admin-test-chroots/fresh")}  # fmt: skip


@pytest.mark.slow  # builds the package
def test_installs_with_apt_on_a_fresh_debian(built: Built) -> None:
    """installers/test-deb-fresh.sh: a debootstrap of this Debian release, apt-get install of the
    .deb (dependencies from the mirror), the app run by a new user, pkaction, dpkg -r and --purge.
    About two minutes; needs root and the Debian mirror, as the README's test command has."""
    proc = run(REPO / "installers" / "test-deb-fresh.sh", built.deb, timeout=1800,
               env={**os.environ, **FRESH_CACHE})  # fmt: skip
    assert proc.returncode == 0 and "PASSED" in proc.stderr, proc.stderr[-4000:]


@pytest.mark.slow  # debootstraps, then builds the package there
def test_builds_on_a_fresh_debian() -> None:
    """installers/test-deb-fresh.sh --build: the checkout copied into /root of a fresh Debian,
    ./installers/build-deb.sh run there as root (it installs what its own steps need: python3,
    Qt's libraries for rendering the icons...), then the .deb it printed installed with apt and
    checked like any other. Several minutes (PySide6 comes from PyPI)."""
    proc = run(REPO / "installers" / "test-deb-fresh.sh", "--build", timeout=3600,
               env={**os.environ, **FRESH_CACHE})  # fmt: skip
    assert proc.returncode == 0 and "PASSED" in proc.stderr, proc.stderr[-4000:]
    assert "built /root/zeroinstall-admin/dist/zeroinstall-admin_" in proc.stderr


def test_page_option_chooses_any_page_by_its_id(qtbot, capsys) -> None:
    from PySide6.QtWidgets import QWidget

    from gui.app import show_page
    from gui.main_window import MainWindow

    class Page(QWidget):
        icon_name = "cache"

        def __init__(self, page_id: str, parent: QWidget) -> None:
            super().__init__(parent)
            self.page_id = page_id
            self.title = page_id.title()

        def menu_actions(self) -> list:
            return []

        def shutdown(self, timeout: float = 5.0) -> None:
            pass

    window = MainWindow("test")
    qtbot.addWidget(window)
    first, second = Page("first", window), Page("second", window)
    window.add_page(first)
    window.add_page(second)
    assert window.current_page is first
    assert show_page(window, None) and window.current_page is first
    assert show_page(window, "second") and window.current_page is second
    assert not show_page(window, "third")
    assert "there is no page 'third'; choose one of: first, second" in capsys.readouterr().err
    assert window.current_page is second


def test_screenshot_of_a_page_waits_for_that_page_s_own_work(qtbot, tmp_path, monkeypatch) -> None:
    """--page clean --screenshot: the Clean up page surveys the stores once shown; the picture is
    taken when its candidates are in, not while it still says "Looking for entries..."."""
    from core.demo import build_demo
    from gui import app

    env = build_demo(str(tmp_path / "demo"))
    built = {}
    build_window = app._build_window

    def keep(*args):
        window, page = build_window(*args)
        built["window"] = window
        grab = window.grab

        def grab_and_look():
            shown = window.current_page
            built["busy"], built["rows"] = shown.busy, shown.model.rowCount()
            return grab()

        monkeypatch.setattr(window, "grab", grab_and_look)
        return window, page

    monkeypatch.setattr(app, "_build_window", keep)
    picture = tmp_path / "clean.png"
    assert app._screenshot(app._application(True), None, env, str(picture), False, "clean") == 0
    assert picture.stat().st_size > 0
    assert built["busy"] is False and built["rows"] > 0
