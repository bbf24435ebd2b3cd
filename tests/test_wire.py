"""Every message between our processes comes back equal from its wire form, through the same
serialiser it travels by (marshal between the pool and its workers, JSON from a child)."""

from __future__ import annotations

import json
import marshal
import os
from pathlib import Path

from core.cache import Entry
from core.digests import Digest
from core.feeds import FeedImpl
from core.measure import Usage
from core.pool_worker import (
    Chunk,
    ChunkDone,
    Given,
    Ready,
    Results,
    Unit,
    UnitProgress,
    message_from_wire,
)
from core.scan_process import EntryMessage, MeasuredMessage, StoreMessage
from core.stores import Store
from core.treewalk import Measured, Measurement, measure_walk
from core.verify import (
    Judged,
    Part,
    Progress,
    Unchanged,
    Unreadable,
    UsualOk,
    unit_result_from_wire,
)
from core.verify_entry import Change, VerifyOutcome
from core.verify_process import Verdict

NAME = "sha256new_" + "A" * 52
OTHER = "sha256new_" + "B" * 52


def via_marshal(data: object) -> object:
    return marshal.loads(marshal.dumps(data))


def via_json(data: object) -> object:
    return json.loads(json.dumps(data))


def test_verify_outcome_round_trips_by_marshal_and_json() -> None:
    outcome = VerifyOutcome(
        "corrupt",
        "caf\udce9 differs",
        NAME,
        OTHER,
        NAME,
        [Change("/caf\\xe9", "modified", ("content", "size 1 -> 2"), b"/caf\xe9")],
        1_700_000_000.5,
    )
    for through in (via_marshal, via_json):
        back = VerifyOutcome.from_wire(through(outcome.to_wire()))  # type: ignore[arg-type]
        assert back == outcome
        assert back.changes[0].path_bytes == b"/caf\xe9"  # the raw bytes, not the shown text


def test_unit_round_trips_and_its_wire_form_is_a_plain_tuple() -> None:
    unit = Unit(3, b"/store/" + NAME.encode(), b"/a/b", 5, 6, 7, (b"/a/b/c",), ("sha256new", "x"))
    wire = unit.to_wire()
    assert type(wire) is tuple  # marshal takes no tuple subclass
    back = Unit.from_wire(via_marshal(wire))  # type: ignore[arg-type]
    assert back == unit and back.number == 3 and back.rel == b"/a/b"


def test_each_verify_unit_result_round_trips_by_its_tag() -> None:
    results = [
        Unchanged(1, b""),
        UsualOk(2, b"", 0, "keys", 4, 4, False),
        Judged(3, b"", VerifyOutcome("corrupt", "no", NAME, OTHER).to_wire(), None, 1, 1, True),
        Part(4, b"/sub", [b"D /sub\n"], None, None, False, 2, 1, False),
        Unreadable(5, b"", "Permission denied", "io", 0, 0, False),
    ]
    for result in results:
        back = unit_result_from_wire(via_marshal(result.to_wire()))  # type: ignore[arg-type]
        assert type(back) is type(result) and back == result


def test_verdict_is_compact_when_usual_and_whole_otherwise() -> None:
    usual = Verdict(0, VerifyOutcome("ok", "contents match", NAME, NAME, None))
    since = Verdict(1, VerifyOutcome("ok", "unchanged", NAME, NAME, NAME, [], 1.5))
    other = Verdict(2, VerifyOutcome("error", "Permission denied", NAME))
    assert [len(v.to_wire()) for v in (usual, since, other)] == [4, 5, 2]
    for verdict in (usual, since, other):
        assert Verdict.from_wire(via_json(verdict.to_wire())) == verdict  # type: ignore[arg-type]


def test_progress_round_trips() -> None:
    progress = Progress(3, 10, 4096, 1 << 20, 0.25)
    assert Progress.from_wire(via_json(progress.to_wire())) == progress  # type: ignore[arg-type]


def test_stores_listed_and_measured_entries_round_trip() -> None:
    store = Store("/var/cache/0install.net/implementations", "system", "default")
    entry = Entry(
        store,
        "caf\udce9",
        store.path + "/caf\udce9",
        "suspicious",
        "not a digest",
        Digest("sha256new", "A" * 52),
        "root",
        0o40755,
        1_600_000_000.25,
        FeedImpl("https://example.com/f.xml", "F", "1.0"),
        ["app"],
        atime_reliable=False,
        added_from="manifest",
        issue="world-writable",
        fingerprint=(1, 2, 3, 4),
    )
    sent = StoreMessage.of(store)
    assert StoreMessage.from_wire(via_json(sent.to_wire())).store() == store  # type: ignore[arg-type]
    message = EntryMessage.of(entry, {id(store): 0})
    back = EntryMessage.from_wire(via_json(message.to_wire()))  # type: ignore[arg-type]
    assert back == message
    rebuilt = back.entry([store])
    for field in Entry.__dataclass_fields__:
        assert getattr(rebuilt, field) == getattr(entry, field), field

    measured = MeasuredMessage(7, 100, 4096, 3, 1.5, None)
    again = MeasuredMessage.from_wire(via_json(measured.to_wire()))  # type: ignore[arg-type]
    assert again == measured and again.usage() == Usage(100, 4096, 3, 1.5, None)


def test_the_pool_messages_round_trip_by_their_tags() -> None:
    unit = Unit(0, b"/s/e", b"", 0, 0, 0, (), None).to_wire()
    chunk = Chunk(7, "measure", [unit])
    assert Chunk.from_wire(via_marshal(chunk.to_wire())) == chunk  # type: ignore[arg-type]
    sent = [
        Ready(),
        Results([("k", 1, b"", 0, None, 3, 3, False)]),
        Given(2, [(b"/a", 5, 6)]),
        UnitProgress(2, b"/a", 10, 4),
        ChunkDone(7, True),
    ]
    for message in sent:
        back = message_from_wire(via_marshal(message.to_wire()))  # type: ignore[arg-type]
        assert type(back) is type(message) and back == message


def test_a_measurement_round_trips_as_a_worker_sends_it(tmp_path: Path) -> None:
    root = tmp_path / "entry"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"x" * 5000)
    (root / ".manifest").write_text("")
    measurement = measure_walk(os.fsencode(root), stats=True)
    assert measurement is not None and measurement.files == 2 and measurement.top is not None
    measured = Measured(4, b"", measurement)
    wire = measured.to_wire()
    assert type(wire[2]) is tuple  # marshal takes no tuple subclass
    assert Measured.from_wire(via_marshal(wire)) == measured  # type: ignore[arg-type]
    assert Measurement.from_wire(wire[2]).size == measurement.size
