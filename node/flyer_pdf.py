"""A flyer as a PDF (fpdf2): large black type on white, a vector QR code, tear-off slips."""
from __future__ import annotations

import unicodedata
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from node.flyer import TEAR_OFF_SLIPS, Flyer, Paper
from node.i18n import current_language
from node.i18n import gettext as _
from node.qr import qr_runs

MARGIN = 15.0  # mm
QR_SIDE = 58.0
GAP = 8.0
STRIP_HEIGHT = 46.0  # the tear-off slips along the bottom edge
STRIP_BOTTOM = 10.0  # printers leave the last few millimetres blank
FONT = "flyer"

# A Unicode font where the system has one (Debian: fonts-dejavu-core); otherwise the PDF
# core font, which holds Latin-1 only, so other characters are spelt as near as it can.
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
)
ASCII_SPELLING = str.maketrans({"–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"',
                                "…": "...", "€": "EUR", "•": "-"})


def unicode_font() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


class _FlyerPDF(FPDF):
    def __init__(self, flyer: Flyer, paper: Paper, fonts: tuple[Path, Path] | None) -> None:
        super().__init__(orientation="portrait", unit="mm",
                         format="Letter" if paper is Paper.LETTER else "A4")
        self.flyer = flyer
        self.latin1 = fonts is None
        if fonts is None:
            self.font_name = "helvetica"
        else:
            self.font_name = FONT
            self.add_font(FONT, "", str(fonts[0]))
            self.add_font(FONT, "B", str(fonts[1]))
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=STRIP_BOTTOM + STRIP_HEIGHT + 5)
        self.set_text_color(0, 0, 0)
        self.set_draw_color(0, 0, 0)
        self.set_fill_color(0, 0, 0)

    def say(self, text: str) -> str:
        if not self.latin1:
            return text
        text = unicodedata.normalize("NFKC", text).translate(ASCII_SPELLING)
        return "".join(c if ord(c) < 256 else _nearest(c) for c in text)

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.font_name, "B" if bold else "", size)

    def para(self, text: str, size: float, width: float, bold: bool = False,
             after: float = 1.5) -> None:
        self.font(size, bold)
        self.multi_cell(width, size * 0.45, self.say(text), align="L", new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)
        self.ln(after)

    def fitted(self, text: str, width: float, size: float, least: float,
               bold: bool = False) -> list[str]:
        """Set the largest size down to ``least`` at which ``text`` fits ``width``; an
        address too long even then goes on two lines, split at its first slash."""
        text = self.say(text)
        self.font(size, bold)
        natural = self.get_string_width(text)
        if natural <= width:
            return [text]
        if size * width / natural >= least:
            self.font(size * width / natural, bold)
            return [text]
        head, _, tail = text.partition("/")
        lines = [head, "/" + tail] if tail else [text]
        widest = max(self.get_string_width(line) for line in lines)
        self.font(max(least, min(size, size * width / widest)), bold)
        return lines

    def footer(self) -> None:  # drawn on every page: the slips people tear off
        top = self.h - STRIP_BOTTOM - STRIP_HEIGHT
        slip = (self.w - 2 * MARGIN) / TEAR_OFF_SLIPS
        self.set_line_width(0.3)
        self.set_dash_pattern(dash=2, gap=1.5)
        self.line(MARGIN, top, self.w - MARGIN, top)
        for i in range(1, TEAR_OFF_SLIPS):
            x = MARGIN + i * slip
            self.line(x, top, x, top + STRIP_HEIGHT)
        self.set_dash_pattern()
        length = STRIP_HEIGHT - 4  # the text runs up the slip, from its foot
        for i in range(TEAR_OFF_SLIPS):
            x, foot = MARGIN + i * slip + 3, top + STRIP_HEIGHT - 2
            with self.rotation(90, x, foot):
                self.set_xy(x, foot)
                name = self.fitted(self.flyer.group_name, length, 9, 7, bold=True)[0]
                while len(name) > 1 and self.get_string_width(name) > length:
                    name = name[:-4].rstrip() + "..."
                self.cell(length, 4, name, new_x=XPos.LEFT, new_y=YPos.NEXT)
                for line in self.fitted(self.flyer.short_url, length, 8, 5.5):
                    self.cell(length, 3.5, line, new_x=XPos.LEFT, new_y=YPos.NEXT)


def _nearest(character: str) -> str:
    base = unicodedata.normalize("NFKD", character)[0]
    return base if ord(base) < 256 else "?"


def _draw_qr(pdf: FPDF, url: str, x: float, y: float, side: float) -> None:
    """The QR code as filled rectangles, one per run of dark modules: vector, no image."""
    size, runs = qr_runs(url)
    module = side / size
    for row, column, length in runs:
        # A hair of overlap so viewers never draw seams between neighbouring runs.
        pdf.rect(x + column * module, y + row * module, length * module, module + 0.1,
                 style="F")


def flyer_pdf(flyer: Flyer, paper: Paper, fonts: tuple[Path, Path] | None = None,
              find_fonts: bool = True) -> bytes:
    """The flyer on one page of A4 or US Letter (more if the text is long)."""
    pdf = _FlyerPDF(flyer, paper, fonts or (unicode_font() if find_fonts else None))
    pdf.set_title(pdf.say(flyer.title))
    pdf.set_lang(current_language())
    pdf.add_page()
    text_width = pdf.w - 2 * MARGIN - QR_SIDE - GAP
    qr_x = pdf.w - MARGIN - QR_SIDE
    _draw_qr(pdf, flyer.url, qr_x, MARGIN, QR_SIDE)
    pdf.set_xy(qr_x, MARGIN + QR_SIDE + 1)
    for line in pdf.fitted(flyer.short_url, QR_SIDE, 10, 7):
        pdf.set_x(qr_x)
        pdf.cell(QR_SIDE, 4.5, line, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_xy(MARGIN, MARGIN)

    pdf.para(flyer.title, 26, text_width, bold=True, after=2)
    if flyer.title != flyer.group_name:
        pdf.para(_("A meeting of %(group)s", group=flyer.group_name), 14, text_width)
    if flyer.summary:
        pdf.para(flyer.summary, 15, text_width, after=3)
    width = text_width
    for heading, lines in _sections(flyer):
        if pdf.get_y() > MARGIN + QR_SIDE + 12:
            width = pdf.w - 2 * MARGIN  # below the QR code: the whole width
        pdf.para(heading, 11, width, bold=True, after=0.3)
        for line in lines:
            pdf.para(line, 13, width, after=0.3)
        pdf.ln(2)
    return bytes(pdf.output())


def _sections(flyer: Flyer) -> list[tuple[str, list[str]]]:
    zone = flyer.timezone
    when = [(m.when if zone else _("%(when)s (%(zone)s time)", when=m.when, zone=m.timezone))
            + (f": {m.title}" if flyer.titles_differ else "")
            + (f", {m.place}" if m.place else "")
            + (" - " + _("CANCELLED") if m.cancelled else "")
            for m in flyer.meetings] or [_("No meetings are scheduled yet: see the web page.")]
    sections = [
        (_("Who it is for"), [", ".join(flyer.audiences)] if flyer.audiences else []),
        (_("Next meetings (%(zone)s time)", zone=zone) if zone else _("Next meetings"), when),
        (_("Where"), list(flyer.where) or [flyer.format]),
        (_("Accessibility"), list(flyer.accessibility)),
        (_("Cost"), [flyer.cost]),
        (_("Languages"), [", ".join(flyer.languages)] if flyer.languages else []),
        (_("Contact"), [flyer.contact] if flyer.contact else []),
        (_("More, and how to join"), [flyer.url]),
    ]
    return [(heading, lines) for heading, lines in sections if lines]
