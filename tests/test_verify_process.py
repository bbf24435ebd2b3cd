"""Verification in a child process gives exactly what the in-process engine gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.verify import Progress, verify_paths
from core.verify_process import VerifyProcessError, verify_paths_in_child
from tests.test_verify import assert_same_verdict, big_files, good, mixed  # noqa: F401 - fixtures


def test_same_verdicts_as_in_process(mixed: dict[str, Path]) -> None:  # noqa: F811
    store = next(iter(mixed.values())).parent
    paths = sorted(str(p) for p in store.iterdir())
    calls: dict[int, object] = {}
    progress: list[Progress] = []
    theirs = verify_paths(paths, jobs=2)
    ours = verify_paths_in_child(
        paths, jobs=2, on_result=calls.__setitem__, on_progress=progress.append
    )
    assert len(ours) == len(paths)
    for mine, ref in zip(ours, theirs, strict=True):
        assert ref is not None
        assert_same_verdict(mine, ref)
    assert calls == dict(enumerate(ours))
    assert progress and progress[-1].entries_done == len(paths)
    assert {o.status for o in ours if o} == {"ok", "corrupt", "skipped"}


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    store = os.fsencode(tmp_path)
    odd = store + b"/tmp-\xff\xfe"
    os.mkdir(odd)
    [outcome] = verify_paths_in_child([odd])
    assert outcome is not None and outcome.status == "skipped"


def test_cancel_stops_the_child_promptly(real_store, tmp_path: Path) -> None:
    impl = real_store.add("big", big_files())
    cancel = threading.Event()
    seen: list[int] = []

    def on_result(index: int, _outcome: object) -> None:
        seen.append(index)
        cancel.set()  # after the first verdict

    t0 = time.perf_counter()
    results = verify_paths_in_child([str(impl)] * 400, jobs=1, on_result=on_result, cancel=cancel)
    assert time.perf_counter() - t0 < 5
    assert seen and results.count(None) > 0
    assert [i for i, r in enumerate(results) if r is not None] == sorted(seen)


def test_a_child_that_cannot_run_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(VerifyProcessError, match="ended early"):
        verify_paths_in_child([str(tmp_path)])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.raises(VerifyProcessError, match="could not start"):
        verify_paths_in_child([str(tmp_path)])
    assert sys.executable  # the real one is untouched for the rest of the run


def test_child_exits_cleanly_while_listening_for_cancel(tmp_path: Path) -> None:
    # The child's input listener must not keep the interpreter from exiting: reading through
    # sys.stdin in a daemon thread made every child abort (SIGABRT) a second after its work.
    request = {"paths": [str(tmp_path)], "jobs": 1, "interval": 0.1}
    child = subprocess.Popen(
        [sys.executable, "-m", "core.verify_process"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    with child, child.stdin, child.stdout:
        child.stdin.write(json.dumps(request).encode() + b"\n")
        child.stdin.flush()
        lines = [json.loads(line) for line in child.stdout]  # the input stays open meanwhile
        assert lines[-1] == {"end": True}
        assert child.wait(timeout=30) == 0


def test_a_prestarted_child_does_the_next_verification(mixed: dict[str, Path]) -> None:  # noqa: F811
    """The window prestarts the verification's process (below its own priority, with its
    workers) so that "Verify all" starts hashing at once; that process is the one used."""
    from core import child, verify_process

    verify_process.prestart()
    waiting = child._prestarted["core.verify_process"]
    store = next(iter(mixed.values())).parent
    paths = sorted(str(p) for p in store.iterdir())
    ours = verify_paths_in_child(paths, jobs=2)
    assert "core.verify_process" not in child._prestarted  # taken...
    assert waiting.poll() == 0  # ...and it ran the job and ended
    for mine, ref in zip(ours, verify_paths(paths, jobs=1), strict=True):
        assert ref is not None
        assert_same_verdict(mine, ref)


def test_every_verdict_crosses_to_the_window_unchanged() -> None:
    """The usual verdict travels as four plain values, any other whole: each comes back equal."""
    from core.verify_entry import Change, VerifyOutcome
    from core.verify_process import Verdict

    name = "sha256new_" + "A" * 52
    other = "sha256new_" + "B" * 52
    outcomes = [
        VerifyOutcome("ok", "contents match the digest and the .manifest file", name, name, name),
        VerifyOutcome("ok", "contents match the digest (no .manifest file)", name, name, None),
        VerifyOutcome("ok", "a .manifest that differs", name, name, other),
        VerifyOutcome("corrupt", "", name, other, name, [Change("/a", "modified", ("content",))]),
        VerifyOutcome("skipped", "not an implementation"),
        VerifyOutcome("error", "caf\udce9: Permission denied", name),
    ]
    items = [Verdict(i, o).to_wire() for i, o in enumerate(outcomes)]
    assert [len(item) for item in items] == [4, 4, 2, 2, 2, 2]  # only the usual ones are short
    back = [Verdict.from_wire(json.loads(json.dumps(item))) for item in items]
    assert back == list(enumerate(outcomes))
