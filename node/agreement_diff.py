"""What changed between two texts of a group's agreements, word by word, line by line.

Pure: texts in, lines of pieces out. Pages render the pieces (escaped, as every text
is); nothing here knows HTML.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# Words, runs of spaces, and line ends are the units compared.
_TOKEN = re.compile(r"\n|[^\S\n]+|\S+")

Change = Literal["same", "removed", "added"]


@dataclass(frozen=True, slots=True)
class Piece:
    change: Change
    text: str


@dataclass(frozen=True, slots=True)
class Diff:
    lines: tuple[tuple[Piece, ...], ...]
    removed: int  # words
    added: int

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.added)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.replace("\r\n", "\n").replace("\r", "\n"))


def _words(tokens: list[str]) -> int:
    return sum(1 for token in tokens if not token.isspace())


def word_diff(before: str, after: str) -> Diff:
    """``after`` compared with ``before``: each line's pieces, kept, removed or added."""
    old, new = _tokens(before), _tokens(after)
    pieces: list[Piece] = []
    removed = added = 0
    from difflib import SequenceMatcher  # only when an agreement is compared

    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(old[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(old[i1:i2])))
            removed += _words(old[i1:i2])
        if j2 > j1:
            pieces.append(Piece("added", "".join(new[j1:j2])))
            added += _words(new[j1:j2])
    return Diff(_lines(pieces), removed, added)


def _lines(pieces: list[Piece]) -> tuple[tuple[Piece, ...], ...]:
    """The pieces cut at line ends, so each line can be shown as one."""
    lines: list[list[Piece]] = [[]]
    for piece in pieces:
        first, *rest = piece.text.split("\n")
        if first:
            lines[-1].append(Piece(piece.change, first))
        for part in rest:
            lines.append([Piece(piece.change, part)] if part else [])
    return tuple(tuple(line) for line in lines)
