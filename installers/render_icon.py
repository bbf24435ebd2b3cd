"""Renders the app's SVG icon to PNGs for the hicolor theme, with the Qt the package ships.

    python render_icon.py ICON.svg OUTDIR SIZE...

writes OUTDIR/SIZExSIZE/apps/<icon name>.png for each size. Run it with the package's own Python
environment, so the build needs no other SVG renderer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: render_icon.py ICON.svg OUTDIR SIZE...", file=sys.stderr)
        return 2
    svg, outdir, sizes = Path(argv[0]), Path(argv[1]), [int(s) for s in argv[2:]]
    app = QGuiApplication([sys.argv[0]])  # noqa: F841 (painting text or gradients needs one)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        print(f"render_icon: '{svg}' is not a valid SVG image", file=sys.stderr)
        return 1
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = outdir / f"{size}x{size}" / "apps" / f"{svg.stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            print(f"render_icon: could not write '{target}'", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
