"""Shared fixtures. Qt runs offscreen; the real 0install is the reference and builds real stores."""

from __future__ import annotations

import os

# Before anything can import Qt: tests never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The stand-in VBoxManage's fixtures (``cache``, ``fake``) for the VM tests.
pytest_plugins = ["tests.vbox_fixtures"]

ZEROINSTALL = shutil.which("0install")
REPO = Path(__file__).resolve().parent.parent
"""The checkout under test."""


@pytest.fixture(autouse=True, scope="session")
def _records_never_in_var_lib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Verification records (core.records) of every test go to a temporary directory: a test
    verifying as root must never write the real /var/lib/zeroinstall-admin."""
    where = tmp_path_factory.mktemp("verification-records")
    before = os.environ.get("ZEROINSTALL_ADMIN_RECORDS_DIR")
    os.environ["ZEROINSTALL_ADMIN_RECORDS_DIR"] = str(where)
    yield
    if before is None:
        os.environ.pop("ZEROINSTALL_ADMIN_RECORDS_DIR", None)
    else:
        os.environ["ZEROINSTALL_ADMIN_RECORDS_DIR"] = before


@pytest.fixture(autouse=True, scope="session")
def _root_locks_never_in_var_lib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Root's store locks (core.root_helper.STORE_LOCK_DIR) of every test go to a temporary
    directory, never the real /var/lib/zeroinstall-admin/locks."""
    from core import root_helper

    where = tmp_path_factory.mktemp("root-locks") / "locks"
    before = os.environ.get(root_helper.STORE_LOCK_DIR_ENV)
    os.environ[root_helper.STORE_LOCK_DIR_ENV] = str(where)
    yield
    if before is None:
        os.environ.pop(root_helper.STORE_LOCK_DIR_ENV, None)
    else:
        os.environ[root_helper.STORE_LOCK_DIR_ENV] = before


@pytest.fixture
def no_real_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The privileged helper (core.root_helper) refuses to act on the machine's real ``/`` in this
    test: every step raises instead, so a test that forgot its fake root cannot touch this
    machine's /etc or store. A module that calls the helper in-process opts in with
    ``pytestmark = pytest.mark.usefixtures("no_real_root")``."""
    from core import root_helper

    monkeypatch.setattr(root_helper, "_ALLOW_REAL_ROOT", False)


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    **kwargs: Any,
) -> subprocess.CompletedProcess:
    """Run this checkout's command line (``python -m core.cli ARGS``) in a process of its own, as
    a user would, and return what it did without raising on a non-zero exit.

    ``env`` replaces the environment (default: this one); PYTHONPATH always points at this
    checkout. Output is captured (bytes; pass ``text=True`` for str) and standard input is empty
    unless ``input`` or ``stdin`` is given, so a command that asks for confirmation never waits on
    the terminal. Other keyword arguments go to :func:`subprocess.run`."""
    run_env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    kwargs.setdefault("capture_output", True)
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        env=run_env,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def run_0install(*args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """Run the real 0install and return its standard output; fail the test with its stderr
    otherwise."""
    assert ZEROINSTALL, (
        "the real 0install is needed: the README's test command installs 0install-core"
    )
    proc = subprocess.run([ZEROINSTALL, *args], capture_output=True, env=env, cwd=cwd, timeout=300)
    assert proc.returncode == 0, (
        f"0install {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}"
    )
    return proc.stdout.decode("utf-8", "surrogateescape")


def write_tree(root: Path, files: dict[str, bytes | str], mtime: int = 1_600_000_000) -> Path:
    """Create files under ``root`` (names ending in ``/`` are directories; ``@target`` makes a
    symlink; a leading ``!`` in the content makes the file executable)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
            continue
        if isinstance(content, str) and content.startswith("@"):
            path.symlink_to(content[1:])
            continue
        data = content.encode() if isinstance(content, str) else content
        executable = data.startswith(b"!")
        path.write_bytes(data[1:] if executable else data)
        if executable:
            path.chmod(0o755)
        os.utime(path, (mtime, mtime))
    return root


@dataclass
class RealStore:
    """A user store filled by the real ``0install store add``, in an isolated XDG environment."""

    home: Path
    env: dict[str, str]
    user_path: Path
    system_path: Path
    digests: dict[str, str] = field(default_factory=dict)  # label -> digest directory name

    @property
    def path(self) -> Path:
        """Where ``0install store add`` puts things: the system store when it can write there (as
        root, which CI is), else the user store."""
        return (
            self.system_path
            if os.access(self.system_path.parent.parent, os.W_OK)
            else self.user_path
        )

    def add(self, label: str, files: dict[str, bytes | str], algorithm: str = "sha256new") -> Path:
        src = write_tree(self.home / "src" / label, files)
        digest = run_0install("digest", f"--algorithm={algorithm}", str(src), env=self.env).strip()
        run_0install("store", "add", digest, str(src), env=self.env)
        self.digests[label] = digest
        return self.path / digest


@pytest.fixture
def zi_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose XDG dirs all live under tmp_path, so nothing touches the real caches."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CACHE_DIRS=str(tmp_path / "var-cache"),
        XDG_CONFIG_DIRS=str(tmp_path / "etc-xdg"),
        XDG_DATA_DIRS=str(tmp_path / "usr-share"),
    )
    return env


@pytest.fixture
def real_store(tmp_path: Path, zi_env: dict[str, str]) -> RealStore:
    """An empty user store; call ``.add(label, files)`` to add implementations with the real
    0install."""
    user = Path(zi_env["XDG_CACHE_HOME"]) / "0install.net" / "implementations"
    system = Path(zi_env["XDG_CACHE_DIRS"]) / "0install.net" / "implementations"
    system.parent.parent.mkdir(parents=True)
    return RealStore(Path(zi_env["HOME"]), zi_env, user, system)


@dataclass(frozen=True)
class OtherUserCode:
    """The project's ``core`` package and the third-party packages it imports, copied where any
    user can read them, and a Python any user can run: a clone in ``/root`` (mode 0700) and a
    virtualenv inside it are out of reach of ``nobody`` or a throwaway user."""

    python: str
    path: Path

    def prelude(self) -> str:
        """Code that makes the copy importable (``python -I`` ignores PYTHONPATH)."""
        return f"import sys; sys.path.insert(0, {str(self.path)!r})\n"


def _python_for_everyone() -> str:
    """/usr/bin/python3 when it is this interpreter's version (the copied compiled modules fit
    it); else this interpreter, which then must live somewhere everyone can reach."""
    import sys

    system = "/usr/bin/python3"
    if os.path.exists(system):
        version = subprocess.run(
            [system, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if version == str(tuple(sys.version_info[:2])):
            return system
    return sys.executable


@pytest.fixture(scope="session")
def code_for_other_users() -> Iterator[OtherUserCode]:
    import importlib.util
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="zia-code-", dir="/tmp"))
    try:
        repo = Path(__file__).resolve().parent.parent
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(repo / "core", base / "core", ignore=ignore)
        for name in ("humanize", "psutil"):
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.submodule_search_locations, name
            source = Path(list(spec.submodule_search_locations)[0])
            shutil.copytree(source, base / name, ignore=ignore)
        for dirpath, _dirs, files in os.walk(base):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        yield OtherUserCode(_python_for_everyone(), base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def private_settings(tmp_path: Path) -> Path:
    """Every QSettings of the process goes to a temporary directory, never the user's config.
    GUI test modules use it on every test (``pytestmark``); Qt is imported only then."""
    from PySide6.QtCore import QSettings

    where = tmp_path / "settings"
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(where))
    return where
