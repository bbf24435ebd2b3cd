"""Listing and measuring in a child process gives exactly what the in-process functions give."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import fields
from pathlib import Path

import pytest

from core import cache, measure, scan_process
from core.cache import Entry
from core.child import ChildError
from core.measure import Usage
from core.scan_process import scan_in_child
from core.stores import Store
from tests.conftest import RealStore
from tests.test_cache import many_entries, store_at
from tests.test_cache import test_scan_maps_feeds_and_apps as build_feeds_and_apps


def entry_fields(entry: Entry) -> dict[str, object]:
    return {f.name: getattr(entry, f.name) for f in fields(entry) if f.name != "usage"}


def measured_in_child(*args, **kwargs) -> tuple[cache.Scan, dict[str, Usage], list[str]]:
    got: dict[str, Usage] = {}
    calls: list[str] = []

    def on_measured(pairs: list[tuple[Entry, Usage]]) -> None:
        calls.append("measured")
        for entry, usage in pairs:
            assert entry.name not in got
            got[entry.name] = usage

    result = scan_in_child(
        *args, on_listed=lambda _scan: calls.append("listed"), on_measured=on_measured, **kwargs
    )
    return result, got, calls


@pytest.mark.needs_0install
def test_same_scan_as_in_process(real_store: RealStore, tmp_path: Path) -> None:
    build_feeds_and_apps(real_store, tmp_path)  # feeds, an app, a missing configured store
    ours = scan_in_child(env=real_store.env, measure=False)
    theirs = cache.scan(env=real_store.env)
    assert ours.stores == theirs.stores
    assert ours.problems == theirs.problems
    assert [entry_fields(e) for e in ours.entries] == [entry_fields(e) for e in theirs.entries]
    assert all(e.usage is None for e in ours.entries)
    # Entries share their Store objects, as the in-process scan's do.
    assert all(any(e.store is s for s in ours.stores) for e in ours.entries)


@pytest.mark.parametrize("jobs", [1, 2])
def test_same_sizes_as_in_process(tmp_path: Path, jobs: int) -> None:
    entries = many_entries(tmp_path)
    expected = {e.name: measure.measure(e) for e in entries}
    result, got, calls = measured_in_child([store_at(tmp_path / "many")], {}, jobs=jobs)
    assert {e.name for e in result.entries} == set(expected)
    assert got == expected
    assert calls[0] == "listed" and calls.count("listed") == 1 and "measured" in calls
    assert all(e.usage is None for e in result.entries)  # storing it is the caller's business


def test_entries_arrive_in_chunks_in_order(tmp_path: Path) -> None:
    many_entries(tmp_path, count=30)
    chunks: list[list[Entry]] = []
    result = scan_in_child(
        [store_at(tmp_path / "many")], {}, on_entries=chunks.append, measure=False, chunk=7
    )
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 4]
    assert [e for c in chunks for e in c] == result.entries


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    store_dir = os.fsencode(tmp_path / "store")
    os.mkdir(store_dir)
    for top in (b"tmp-\xff\xfe", b"caf\xe9"):
        os.makedirs(store_dir + b"/" + top + b"/d\x80")
        with open(store_dir + b"/" + top + b"/d\x80/f\xff", "wb") as f:
            f.write(b"z" * 300)
    result, got, _calls = measured_in_child([store_at(tmp_path / "store")], {})
    assert sorted(os.fsencode(e.path) for e in result.entries) == [
        store_dir + b"/caf\xe9",
        store_dir + b"/tmp-\xff\xfe",
    ]
    assert {u.files for u in got.values()} == {1}


def test_cancel_stops_measuring(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for i in range(300):
        (store / f"tmp-{i}" / "d").mkdir(parents=True)
    cancel = threading.Event()
    seen: list[Entry] = []

    def on_measured(pairs: list[tuple[Entry, Usage]]) -> None:
        seen.extend(e for e, _ in pairs)
        cancel.set()

    t0 = time.perf_counter()
    result = scan_in_child([store_at(store)], {}, on_measured=on_measured, cancel=cancel, jobs=1)
    assert time.perf_counter() - t0 < 10
    assert len(result.entries) == 300
    assert 0 < len(seen) <= 300


def test_a_failing_scan_is_reported(tmp_path: Path) -> None:
    impossible = Store(f"{tmp_path}/nul\0byte", "user", "--store")
    with pytest.raises(ChildError, match="ValueError: .*null"):
        scan_in_child([impossible], {})


def test_prestarted_child_is_used(tmp_path: Path) -> None:
    many_entries(tmp_path, count=3)
    scan_process.prestart()
    result = scan_in_child([store_at(tmp_path / "many")], {}, measure=False)
    assert len(result.entries) == 5
