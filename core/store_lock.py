"""The lock a store is worked on under: scheduled maintenance, the window and the command line
never work on one store at once (issue 23).

Root's lock is a file in root's own directory (:data:`core.root_helper.STORE_LOCK_DIR`, 0700),
which no other user can open and so cannot hold to keep root's daily check off a store; the
helper's remove and quarantine verbs take the same file. A user locks only a store of their own,
in their state directory. Verifications take the lock shared; removals and scheduled runs alone.
Kept apart from :mod:`core.maintenance` so that a verification or a removal loads only this.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from core import root_helper as rh
from core.display import display_path


class StoreBusy(Exception):
    """Another run (scheduled maintenance, a window, a command) works on the store."""


def lock_file_for(store: str, env: Mapping[str, str] | None = None) -> str | None:
    """The file that locks ``store`` for this process, None when this process takes no lock on
    it. Root: a file in root's own directory (:data:`core.root_helper.STORE_LOCK_DIR`, 0700),
    whoever owns the store, so that no other user can hold root off it. A user: a file in the
    user's own state directory for a store the user owns; none for anyone else's store (the
    user cannot change it; removals go through the helper, which locks as root)."""
    if os.geteuid() == 0:
        return rh.store_lock_file(rh.root_lock_dir(), store)
    try:
        owner = os.stat(store).st_uid
    except OSError:
        return None
    if owner != os.geteuid():
        return None
    from core.actionlog import state_dir

    directory = os.path.join(state_dir(env), rh.STORE_LOCK_USER_SUBDIR)
    return rh.store_lock_file(directory, store)


@contextmanager
def store_lock(
    paths: Sequence[str],
    *,
    wait: float = 0.0,
    cancel: threading.Event | None = None,
    shared: bool = False,
) -> Iterator[None]:
    """Hold the lock of every store in ``paths`` (see :func:`lock_file_for`: exclusive) for the
    block; the same process may nest it. ``shared``: for work that only reads (an interactive
    verification): any number of those at once, but never alongside a removal or a scheduled
    run. Waits up to ``wait`` seconds for another holder, then raises :class:`StoreBusy`. A store
    whose lock cannot be had at all (no state directory, a filesystem without locks) is not
    waited for: the work goes ahead."""
    taken: list[str] = []
    try:
        # (Callers pass one path per entry: 10,000 of the same store; realpath each store once.)
        for path in sorted({os.path.realpath(p) for p in set(paths)}):
            lock_file = lock_file_for(path)
            if lock_file is None:
                continue
            deadline = time.monotonic() + wait
            while True:
                try:
                    if rh.try_store_lock(lock_file, shared=shared):
                        taken.append(lock_file)
                        break
                except OSError:
                    break  # cannot be locked: go ahead unlocked
                if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                    raise StoreBusy(
                        f"another run is working on {display_path(path)} (scheduled maintenance, "
                        "a window or a command): try again when it has finished"
                    )
                time.sleep(0.5)
        yield
    finally:
        for lock_file in taken:
            rh.release_store_lock(lock_file)
