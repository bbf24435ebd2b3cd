"""Every child process a command starts ends with it on Ctrl-C (SIGINT) and SIGTERM: pkexec (and
the privileged helper it becomes), the pool's workers. Waits on events (a FIFO the child opens, the
command's exit), never on time."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import write_tree
from tests.test_cli import REPO
from tests.test_verify import open_dir  # noqa: F401 - fixture

NOBODY = 65534

# Run as root up to the point where it becomes nobody: the interpreter and this checkout may not
# be readable by nobody (a clone in /root), so everything the command imports is imported first.
CHILD = """
import json, os, sys
sys.path.insert(0, {repo!r})
import importlib, pkgutil
# Every module the command may import later, while this process can still read the checkout:
# after setuid it cannot when the checkout is in root's home (a fresh machine's /root).
for info in pkgutil.iter_modules([os.path.join({repo!r}, "core")]):
    importlib.import_module("core." + info.name)
for module in ("humanize", "psutil", "subprocess", "signal", "ctypes"):
    try:
        importlib.import_module(module)
    except ImportError:
        pass
from core import cli, elevate, root_helper
cli.build_parser()  # imports every command module
config = json.loads(sys.argv[1])
elevate.find_pkexec = lambda: config["pkexec"]
root_helper.INSTALLED_PATH = config["helper"]
from core.lifetime import exit_now
os.setgroups([])
os.setgid({uid})
os.setuid({uid})
exit_now(cli.main(config["argv"]))
"""


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: the entry must be one only root may remove"
)
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_pkexec_ends_with_the_command(
    open_dir: Path,  # noqa: F811 - the fixture imported above
    signum: int,
    code: int,
) -> None:
    """delete as an ordinary user, of an entry only root may remove, goes through pkexec; a pkexec
    that hangs (asking for a password nobody types) is ended with the command."""
    store = open_dir / "store"
    entry = write_tree(store / ("sha256new_" + "A" * 52), {"f": "x"})
    for path in (store, entry):
        path.chmod(0o755)  # root's: nobody may read it, not remove it
    fifo = open_dir / "started"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    pkexec = open_dir / "pkexec"
    pkexec.write_text(f'#!/bin/sh\necho $$ > "{fifo}"\nexec sleep 600\n')
    pkexec.chmod(0o755)
    helper = open_dir / "helper"
    helper.write_text("")
    home = open_dir / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_DATA_HOME": str(home / "data"),
        "LC_ALL": "C.UTF-8",
    }
    config = {
        "pkexec": str(pkexec),
        "helper": str(helper),
        "argv": ["delete", "--yes", "--store", str(store), entry.name],
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(repo=str(REPO), uid=NOBODY), json.dumps(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd="/",
    )
    started = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    ended = os.pidfd_open(proc.pid)  # readable once the command has ended
    try:
        # Until the fake pkexec writes its pid, or the command ends first.
        ready, _, _ = select.select([started, ended], [], [], 300)
        assert started in ready, proc.communicate() if ended in ready else "no answer"
        pid = int(os.read(started, 100).strip())
        fake = psutil.Process(pid)
        assert fake.is_running() and fake.status() != psutil.STATUS_ZOMBIE
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        os.close(started)
        os.close(ended)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert b"Traceback" not in err, err
    word = b"terminated" if signum == signal.SIGTERM else b"interrupted"
    assert err.strip().endswith(word), err
    # The command waited for it: it is not left running (nor a zombie for init to reap).
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert entry.exists()


def test_workers_end_with_the_command_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM while the workers hash: exit 143, one line, no worker left behind."""
    store = tmp_path / "store"
    impl = store / ("sha256new_" + "B" * 52)
    impl.mkdir(parents=True)
    with open(impl / "huge", "wb") as f:
        f.truncate(64 << 30)  # sparse: hashing it would take minutes
    env = dict(os.environ, LC_ALL="C.UTF-8", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "verify", "--jobs", "2", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    command = psutil.Process(proc.pid)
    kids: list[psutil.Process] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the file is being hashed, here or in a worker
        kids = command.children()
        if kids and sum(p.cpu_times().user for p in [command, *kids]) > 1.0:
            break
        assert proc.poll() is None
        time.sleep(0.05)
    assert kids, "no worker was started"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.decode().strip().endswith("terminated") and b"Traceback" not in err
    assert all(not k.is_running() or k.status() == psutil.STATUS_ZOMBIE for k in kids)
