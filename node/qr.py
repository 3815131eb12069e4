"""QR codes of page addresses (segno): inline SVG for pages, runs of dark modules for PDF."""
from __future__ import annotations

from collections.abc import Iterator

import segno
from markupsafe import Markup

QUIET_ZONE = 4  # modules of white around the symbol, as ISO/IEC 18004 asks


def _code(url: str) -> segno.QRCode:
    return segno.make_qr(url, error="m")  # 15% may be torn or stained and still read


def qr_svg(url: str) -> Markup:
    """The QR code of ``url`` as inline SVG: a viewBox only, so CSS sizes it. It is
    hidden from screen readers; the page shows the address as text beside it."""
    svg = _code(url).svg_inline(scale=1, border=QUIET_ZONE, omitsize=True, svgclass="qr",
                                lineclass=None, dark="#000", light="#fff")
    return Markup(svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1))


def qr_runs(url: str) -> tuple[int, Iterator[tuple[int, int, int]]]:
    """The symbol's width in modules (quiet zone included) and its dark runs as
    (row, first column, length), for drawing as filled rectangles."""
    code = _code(url)
    size = code.symbol_size(scale=1, border=QUIET_ZONE)[0]

    def runs() -> Iterator[tuple[int, int, int]]:
        for y, row in enumerate(code.matrix_iter(scale=1, border=QUIET_ZONE)):
            start = None
            for x, dark in enumerate([*row, False]):
                if dark and start is None:
                    start = x
                elif not dark and start is not None:
                    yield y, start, x - start
                    start = None

    return size, runs()
