"""The integrity overview paints what it is given and turns clicks into status filters."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor, QHelpEvent, QImage
from PySide6.QtWidgets import QApplication, QToolTip
from pytestqt.qtbot import QtBot

from core.units import size_text
from gui.overview import STATUS_COLORS, OverviewWidget

STATUS_WORDS = ("not verified", "OK", "corrupt", "error", "skipped", "verifying", "suspicious")

STORES = {"user": 5_012_345, "shared": 4_001_000}
LARGEST = [
    ("Gallery Viewer", 3_950_000),
    ("Data Cruncher", 2_100_000),
    ("Toolkit Runtime", 1_600_000),
    ("Hello Editor", 1_307_000),
    ("(unowned)", 2_400),
]


def make(qtbot: QtBot, by_status: dict[str, int], width: int = 1000) -> OverviewWidget:
    widget = OverviewWidget()
    qtbot.addWidget(widget)
    widget.set_data(by_status, STORES, LARGEST)
    widget.resize(width, widget.heightForWidth(width))
    return widget


def red_pixels(image: QImage) -> int:
    """Pixels of a clearly red colour (the corrupt colour, and nothing else the chart uses)."""
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    data = bytes(image.constBits())
    count = 0
    for i in range(0, len(data), 4):  # little-endian RGB32: B, G, R, unused
        if data[i + 2] > 190 and data[i + 1] < 80 and data[i] < 80:
            count += 1
    return count


def test_every_status_word_has_its_own_colour() -> None:
    assert set(STATUS_WORDS) <= set(STATUS_COLORS)
    colours = [QColor(STATUS_COLORS[w]) for w in STATUS_WORDS]
    assert all(c.isValid() for c in colours)
    assert len({c.rgb() for c in colours}) == len(STATUS_WORDS)


def test_red_appears_exactly_when_something_is_corrupt(qtbot: QtBot) -> None:
    bad = make(
        qtbot,
        {
            "OK": 9,
            "corrupt": 2,
            "error": 1,
            "suspicious": 1,
            "not verified": 3,
            "skipped": 1,
            "verifying": 2,
        },
    )
    image = bad.grab().toImage()
    assert not image.isNull() and image.width() == 1000
    assert red_pixels(image) > 0
    # The red is where segment_rect says the corrupt segment is (above its centred count).
    rect = bad.segment_rect("corrupt")
    pixel = QColor(image.pixel(rect.center().x(), rect.top() + 2))
    assert pixel == QColor(STATUS_COLORS["corrupt"])

    good = make(
        qtbot,
        {
            "OK": 9,
            "corrupt": 0,
            "error": 1,
            "suspicious": 1,
            "not verified": 3,
            "skipped": 1,
            "verifying": 2,
        },
    )
    image = good.grab().toImage()
    assert not image.isNull()
    assert red_pixels(image) == 0
    assert good.segment_rect("corrupt").isEmpty()


def test_each_status_segment_is_painted_in_its_colour(qtbot: QtBot) -> None:
    counts = {
        "OK": 40,
        "corrupt": 3,
        "error": 2,
        "suspicious": 1,
        "not verified": 30,
        "skipped": 5,
        "verifying": 4,
    }
    widget = make(qtbot, counts)
    image = widget.grab().toImage()
    for status in counts:
        rect = widget.segment_rect(status)
        assert not rect.isEmpty(), status
        pixel = QColor(image.pixel(rect.center().x(), rect.top() + 2))
        assert pixel == QColor(STATUS_COLORS[status]), status


def test_segments_tile_the_bar_in_proportion_and_stay_clickable_when_tiny(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 10_000, "corrupt": 1, "not verified": 5_000})
    rects = [widget.segment_rect(s) for s in ("corrupt", "not verified", "OK")]
    for left, right in itertools.pairwise(rects):
        assert left.right() + 1 == right.left()  # contiguous, worst first
    assert rects[0].width() >= 4  # one corrupt entry among 15,000 is still there to see and click
    assert rects[2].width() == pytest.approx(2 * rects[1].width(), rel=0.02)


def test_clicking_the_corrupt_segment_asks_to_filter_by_it(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 9, "corrupt": 1, "not verified": 3})
    widget.show()
    qtbot.waitExposed(widget)
    with qtbot.waitSignal(widget.statusClicked, timeout=1000) as blocker:
        qtbot.mouseClick(
            widget, Qt.MouseButton.LeftButton, pos=widget.segment_rect("corrupt").center()
        )
    assert blocker.args == ["corrupt"]
    with qtbot.waitSignal(widget.statusClicked, timeout=1000) as blocker:
        qtbot.mouseClick(
            widget, Qt.MouseButton.LeftButton, pos=widget.legend_rect("not verified").center()
        )
    assert blocker.args == ["not verified"]


def test_clicks_elsewhere_or_dragged_off_emit_nothing(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 9, "corrupt": 1})
    widget.show()
    qtbot.waitExposed(widget)
    below = QPoint(widget.width() // 2, widget.height() - 3)
    assert widget.status_at(below) is None
    with qtbot.assertNotEmitted(widget.statusClicked):
        qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=below)
        qtbot.mousePress(
            widget, Qt.MouseButton.LeftButton, pos=widget.segment_rect("corrupt").center()
        )
        qtbot.mouseRelease(
            widget, Qt.MouseButton.LeftButton, pos=widget.segment_rect("OK").center()
        )
        qtbot.mouseClick(
            widget, Qt.MouseButton.RightButton, pos=widget.segment_rect("corrupt").center()
        )


def test_clicking_a_store_or_program_bar_asks_to_filter_by_it(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 9})
    widget.show()
    qtbot.waitExposed(widget)
    shared = widget.bar_rect("store", "shared")
    assert not shared.isEmpty()
    with qtbot.waitSignal(widget.storeClicked, timeout=1000) as blocker:
        qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=shared.center())
    assert blocker.args == ["shared"]
    with qtbot.waitSignal(widget.programClicked, timeout=1000) as blocker:
        qtbot.mouseClick(
            widget,
            Qt.MouseButton.LeftButton,
            pos=widget.bar_rect("program", "Data Cruncher").center(),
        )
    assert blocker.args == ["Data Cruncher"]
    assert "Click to show only this store" in widget.tooltip_at(shared.center())
    assert size_text(51) == "51 bytes" and size_text(1) == "1 byte" and size_text(None) == "?"


def test_keyboard_users_can_pick_a_status(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 9, "corrupt": 1, "skipped": 2})
    with qtbot.waitSignal(widget.statusClicked, timeout=1000) as blocker:
        qtbot.keyClick(widget, Qt.Key.Key_Right)  # first item: the worst, corrupt
        qtbot.keyClick(widget, Qt.Key.Key_Right)
        qtbot.keyClick(widget, Qt.Key.Key_Return)
    assert blocker.args == ["skipped"]


def test_tooltips_give_counts_and_sizes(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 3, "corrupt": 1})
    tip = widget.tooltip_at(widget.segment_rect("corrupt").center())
    assert "Corrupt: 1 entry (25%)" in tip and "Click" in tip
    assert "OK: 3 entries (75%)" in widget.tooltip_at(widget.legend_rect("OK").center())
    assert widget.tooltip_at(QPoint(0, 0)) == ""


def test_empty_data_renders(qtbot: QtBot) -> None:
    widget = OverviewWidget()
    qtbot.addWidget(widget)
    widget.resize(widget.sizeHint())
    assert not widget.grab().toImage().isNull()
    widget.set_data({}, {}, [])
    widget.resize(800, widget.heightForWidth(800))
    image = widget.grab().toImage()
    assert not image.isNull() and red_pixels(image) == 0
    assert widget.segment_rect("OK").isEmpty()
    widget.set_data({"OK": 0, "corrupt": 0}, {"user": 0}, [("Nothing", 0)])
    assert not widget.grab().toImage().isNull()


def test_unknown_status_words_and_long_lists_do_not_break_it(qtbot: QtBot) -> None:
    widget = OverviewWidget()
    qtbot.addWidget(widget)
    eight = [(f"Program {i}", 1000 * (20 - i)) for i in range(8)]
    twelve = [(f"Program {i}", 1000 * (20 - i)) for i in range(12)]
    widget.set_data({"OK": 1, "quarantined": 2}, STORES, eight)
    height_eight = widget.heightForWidth(900)
    assert not widget.segment_rect("quarantined").isEmpty()
    widget.set_data({"OK": 1, "quarantined": 2}, STORES, twelve)
    assert widget.heightForWidth(900) == height_eight  # at most 8 programs are listed
    widget.resize(900, height_eight)
    assert not widget.grab().toImage().isNull()


def test_sizes_follow_the_font(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 9, "corrupt": 1, "not verified": 3, "suspicious": 1})
    small = widget.sizeHint()
    font = widget.font()
    font.setPointSize(font.pointSize() * 2)
    widget.setFont(font)
    large = widget.sizeHint()
    assert large.width() > small.width() * 1.5 and large.height() > small.height() * 1.5
    assert widget.minimumSizeHint().width() < large.width()
    # At the 1280x800 window size, the whole chart fits in well under half the height.
    assert make(qtbot, {"OK": 9, "corrupt": 1}, 1200).heightForWidth(1200) < 400
    # Narrow: the lists go under each other instead of side by side, so it needs more height.
    assert widget.heightForWidth(400) > widget.heightForWidth(1400)


# The offscreen platform plugin warns that it cannot raise the tooltip window; nothing of ours.
@pytest.mark.qt_log_ignore("This plugin does not support raise")
def test_hovering_a_segment_shows_its_tooltip(qtbot: QtBot) -> None:
    widget = make(qtbot, {"OK": 3, "corrupt": 1})
    widget.show()
    qtbot.waitExposed(widget)
    pos = widget.segment_rect("corrupt").center()
    QApplication.sendEvent(widget, QHelpEvent(QEvent.Type.ToolTip, pos, widget.mapToGlobal(pos)))
    qtbot.waitUntil(QToolTip.isVisible)
    assert "Corrupt: 1 entry" in QToolTip.text()
    QToolTip.hideText()
