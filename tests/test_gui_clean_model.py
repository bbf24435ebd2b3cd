"""The Clean up table model without widgets: candidates checked (doubtful ones not), kept rows not
checkable and hidden by the filter, rows dropped in place when their entries go."""

from __future__ import annotations

from types import SimpleNamespace

from PySide6.QtCore import Qt

from core import clean
from core.units import size_text
from gui.clean_model import CleanFilter, CleanModel, Col


def verdict(name: str, action: str, doubt: str = "", disk: int | None = None) -> clean.Verdict:
    store = SimpleNamespace(label="user", path="/s")
    entry = SimpleNamespace(
        name=name, path=f"/s/{name}", program=name.title(), version="1.0", feed=object(),
        store=store, usage=None,
    )  # fmt: skip
    fp = None if disk is None else clean.Footprint(disk, disk)
    return clean.Verdict(entry, action, [f"why {name}"], None, fp, doubt)  # type: ignore[arg-type]


def test_candidates_are_checked_doubtful_and_kept_are_not(qtbot) -> None:
    model = CleanModel()
    model.set_verdicts(
        [
            verdict("a", "remove", disk=4096),
            verdict("b", "remove", doubt="in a shared store"),
            verdict("c", "keep"),
            verdict("d", "quarantine"),
        ]
    )
    assert [v.entry.name for v in model.chosen()] == ["a", "d"]

    def cell(row: int, col: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.data(model.index(row, col), role)

    assert [cell(0, c) for c in (Col.PROGRAM, Col.VERSION, Col.ACTION, Col.REASONS)] == [
        "A", "1.0", "Remove", "why a",
    ]  # fmt: skip
    assert cell(0, Col.SIZE) == size_text(4096) and cell(1, Col.SIZE) == size_text(None)
    assert cell(2, Col.PROGRAM, Qt.ItemDataRole.CheckStateRole) is None  # kept: no box
    assert not model.flags(model.index(2, Col.PROGRAM)) & Qt.ItemFlag.ItemIsUserCheckable
    assert not model.setData(model.index(2, Col.PROGRAM), True, Qt.ItemDataRole.CheckStateRole)
    assert model.setData(model.index(1, Col.PROGRAM), True, Qt.ItemDataRole.CheckStateRole)
    assert [v.entry.name for v in model.chosen()] == ["a", "b", "d"]

    proxy = CleanFilter()
    proxy.setSourceModel(model)
    assert proxy.rowCount() == 3  # the kept one hidden
    proxy.set_show_kept(True)
    assert proxy.rowCount() == 4


def test_removed_entries_leave_in_place_and_the_checks_follow(qtbot) -> None:
    model = CleanModel()
    model.set_verdicts([verdict(n, "remove") for n in "abc"])
    model.set_checked([2], False)
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    assert model.remove_paths(frozenset({"/s/a"})) == 1
    assert not resets and model.rowCount() == 2
    assert [v.entry.name for v in model.chosen()] == ["b"]  # c stays unchecked
    assert model.row_of("/s/c") == 1 and model.row_of("/s/a") == -1
