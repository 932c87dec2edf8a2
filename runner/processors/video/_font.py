"""A tiny 5x7 bitmap font for ASCII 32-126, drawn for this project, and text-to-mask rendering.

Each glyph is seven rows of five cells (``X`` = ink), rows separated by spaces, in ASCII order.
Characters outside the table render as ``?``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

GLYPH_WIDTH: Final = 5
GLYPH_HEIGHT: Final = 7
FIRST: Final = 32
LAST: Final = 126

# fmt: off
_GLYPHS: Final[tuple[str, ...]] = (
    "..... ..... ..... ..... ..... ..... .....",  # space
    "..X.. ..X.. ..X.. ..X.. ..X.. ..... ..X..",  # !
    ".X.X. .X.X. ..... ..... ..... ..... .....",  # "
    ".X.X. .X.X. XXXXX .X.X. XXXXX .X.X. .X.X.",  # #
    "..X.. .XXXX X.X.. .XXX. ..X.X XXXX. ..X..",  # $
    "XX... XX..X ...X. ..X.. .X... X..XX ...XX",  # %
    ".XX.. X..X. X.X.. .X... X.X.X X..X. .XX.X",  # &
    "..X.. ..X.. ..... ..... ..... ..... .....",  # '
    "...X. ..X.. .X... .X... .X... ..X.. ...X.",  # (
    ".X... ..X.. ...X. ...X. ...X. ..X.. .X...",  # )
    "..... ..X.. X.X.X .XXX. X.X.X ..X.. .....",  # *
    "..... ..X.. ..X.. XXXXX ..X.. ..X.. .....",  # +
    "..... ..... ..... ..... .XX.. ..X.. .X...",  # ,
    "..... ..... ..... XXXXX ..... ..... .....",  # -
    "..... ..... ..... ..... ..... .XX.. .XX..",  # .
    "....X ....X ...X. ..X.. .X... X.... X....",  # /
    ".XXX. X...X X..XX X.X.X XX..X X...X .XXX.",  # 0
    "..X.. .XX.. ..X.. ..X.. ..X.. ..X.. .XXX.",  # 1
    ".XXX. X...X ....X ...X. ..X.. .X... XXXXX",  # 2
    "XXXX. ....X ....X .XXX. ....X ....X XXXX.",  # 3
    "...X. ..XX. .X.X. X..X. XXXXX ...X. ...X.",  # 4
    "XXXXX X.... XXXX. ....X ....X X...X .XXX.",  # 5
    "..XX. .X... X.... XXXX. X...X X...X .XXX.",  # 6
    "XXXXX ....X ...X. ..X.. .X... .X... .X...",  # 7
    ".XXX. X...X X...X .XXX. X...X X...X .XXX.",  # 8
    ".XXX. X...X X...X .XXXX ....X ...X. .XX..",  # 9
    "..... .XX.. .XX.. ..... .XX.. .XX.. .....",  # :
    "..... .XX.. .XX.. ..... .XX.. ..X.. .X...",  # ;
    "...X. ..X.. .X... X.... .X... ..X.. ...X.",  # <
    "..... ..... XXXXX ..... XXXXX ..... .....",  # =
    ".X... ..X.. ...X. ....X ...X. ..X.. .X...",  # >
    ".XXX. X...X ....X ...X. ..X.. ..... ..X..",  # ?
    ".XXX. X...X X.XXX X.X.X X.XXX X.... .XXXX",  # @
    ".XXX. X...X X...X XXXXX X...X X...X X...X",  # A
    "XXXX. X...X X...X XXXX. X...X X...X XXXX.",  # B
    ".XXX. X...X X.... X.... X.... X...X .XXX.",  # C
    "XXX.. X..X. X...X X...X X...X X..X. XXX..",  # D
    "XXXXX X.... X.... XXXX. X.... X.... XXXXX",  # E
    "XXXXX X.... X.... XXXX. X.... X.... X....",  # F
    ".XXX. X...X X.... X.XXX X...X X...X .XXXX",  # G
    "X...X X...X X...X XXXXX X...X X...X X...X",  # H
    ".XXX. ..X.. ..X.. ..X.. ..X.. ..X.. .XXX.",  # I
    "..XXX ...X. ...X. ...X. ...X. X..X. .XX..",  # J
    "X...X X..X. X.X.. XX... X.X.. X..X. X...X",  # K
    "X.... X.... X.... X.... X.... X.... XXXXX",  # L
    "X...X XX.XX X.X.X X.X.X X...X X...X X...X",  # M
    "X...X X...X XX..X X.X.X X..XX X...X X...X",  # N
    ".XXX. X...X X...X X...X X...X X...X .XXX.",  # O
    "XXXX. X...X X...X XXXX. X.... X.... X....",  # P
    ".XXX. X...X X...X X...X X.X.X X..X. .XX.X",  # Q
    "XXXX. X...X X...X XXXX. X.X.. X..X. X...X",  # R
    ".XXXX X.... X.... .XXX. ....X ....X XXXX.",  # S
    "XXXXX ..X.. ..X.. ..X.. ..X.. ..X.. ..X..",  # T
    "X...X X...X X...X X...X X...X X...X .XXX.",  # U
    "X...X X...X X...X X...X X...X .X.X. ..X..",  # V
    "X...X X...X X...X X.X.X X.X.X X.X.X .X.X.",  # W
    "X...X X...X .X.X. ..X.. .X.X. X...X X...X",  # X
    "X...X X...X .X.X. ..X.. ..X.. ..X.. ..X..",  # Y
    "XXXXX ....X ...X. ..X.. .X... X.... XXXXX",  # Z
    ".XXX. .X... .X... .X... .X... .X... .XXX.",  # [
    "X.... X.... .X... ..X.. ...X. ....X ....X",  # backslash
    ".XXX. ...X. ...X. ...X. ...X. ...X. .XXX.",  # ]
    "..X.. .X.X. X...X ..... ..... ..... .....",  # ^
    "..... ..... ..... ..... ..... ..... XXXXX",  # _
    ".X... ..X.. ..... ..... ..... ..... .....",  # `
    "..... ..... .XXX. ....X .XXXX X...X .XXXX",  # a
    "X.... X.... X.XX. XX..X X...X X...X XXXX.",  # b
    "..... ..... .XXX. X.... X.... X...X .XXX.",  # c
    "....X ....X .XX.X X..XX X...X X...X .XXXX",  # d
    "..... ..... .XXX. X...X XXXXX X.... .XXX.",  # e
    "..XX. .X..X .X... XXX.. .X... .X... .X...",  # f
    "..... .XXXX X...X X...X .XXXX ....X .XXX.",  # g
    "X.... X.... X.XX. XX..X X...X X...X X...X",  # h
    "..X.. ..... .XX.. ..X.. ..X.. ..X.. .XXX.",  # i
    "...X. ..... ..XX. ...X. ...X. X..X. .XX..",  # j
    "X.... X.... X..X. X.X.. XX... X.X.. X..X.",  # k
    ".XX.. ..X.. ..X.. ..X.. ..X.. ..X.. .XXX.",  # l
    "..... ..... XX.X. X.X.X X.X.X X...X X...X",  # m
    "..... ..... X.XX. XX..X X...X X...X X...X",  # n
    "..... ..... .XXX. X...X X...X X...X .XXX.",  # o
    "..... ..... XXXX. X...X XXXX. X.... X....",  # p
    "..... ..... .XX.X X..XX .XXXX ....X ....X",  # q
    "..... ..... X.XX. XX..X X.... X.... X....",  # r
    "..... ..... .XXX. X.... .XXX. ....X XXXX.",  # s
    ".X... .X... XXX.. .X... .X... .X..X ..XX.",  # t
    "..... ..... X...X X...X X...X X..XX .XX.X",  # u
    "..... ..... X...X X...X X...X .X.X. ..X..",  # v
    "..... ..... X...X X...X X.X.X X.X.X .X.X.",  # w
    "..... ..... X...X .X.X. ..X.. .X.X. X...X",  # x
    "..... ..... X...X X...X .XXXX ....X .XXX.",  # y
    "..... ..... XXXXX ...X. ..X.. .X... XXXXX",  # z
    "...X. ..X.. ..X.. .X... ..X.. ..X.. ...X.",  # {
    "..X.. ..X.. ..X.. ..X.. ..X.. ..X.. ..X..",  # |
    ".X... ..X.. ..X.. ...X. ..X.. ..X.. .X...",  # }
    "..... ..... .X... X.X.X ...X. ..... .....",  # ~
)
# fmt: on


def _build() -> npt.NDArray[np.bool_]:
    if len(_GLYPHS) != LAST - FIRST + 1:
        raise AssertionError(f"font has {len(_GLYPHS)} glyphs, expected {LAST - FIRST + 1}")
    table = np.zeros((len(_GLYPHS), GLYPH_HEIGHT, GLYPH_WIDTH), dtype=np.bool_)
    for index, glyph in enumerate(_GLYPHS):
        rows = glyph.split(" ")
        if len(rows) != GLYPH_HEIGHT or any(len(row) != GLYPH_WIDTH for row in rows):
            raise AssertionError(f"glyph for {chr(FIRST + index)!r} is not {GLYPH_WIDTH}x{GLYPH_HEIGHT}")
        table[index] = [[cell == "X" for cell in row] for row in rows]
    return table


#: (95, 7, 5) ink table indexed by ``ord(char) - 32``
GLYPHS: Final = _build()
_UNKNOWN: Final = ord("?") - FIRST


def glyph_indices(line: str) -> npt.NDArray[np.intp]:
    """Table rows for the characters of ``line`` (unknown characters become ``?``)."""
    codes = np.frombuffer(line.encode("utf-32-le"), dtype=np.uint32).astype(np.intp) - FIRST
    codes[(codes < 0) | (codes > LAST - FIRST)] = _UNKNOWN
    return codes


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of ``text`` (lines split on ``\\n``) at ``scale``."""
    lines = text.split("\n")
    columns = max(len(line) for line in lines)
    width = max(0, columns * (GLYPH_WIDTH + 1) - 1)
    height = len(lines) * (GLYPH_HEIGHT + 1) - 1
    return width * scale, height * scale


def render_text(text: str, scale: int = 1) -> npt.NDArray[np.bool_]:
    """An ``(h, w)`` ink mask of ``text``: one blank column between glyphs, one blank row between lines."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    lines = text.split("\n")
    width, height = text_size(text, 1)
    mask = np.zeros((height, width), dtype=np.bool_)
    for row, line in enumerate(lines):
        if not line:
            continue
        glyphs = GLYPHS[glyph_indices(line)]  # (n, 7, 5)
        spaced = np.zeros((len(line), GLYPH_HEIGHT, GLYPH_WIDTH + 1), dtype=np.bool_)
        spaced[:, :, :GLYPH_WIDTH] = glyphs
        strip = spaced.transpose(1, 0, 2).reshape(GLYPH_HEIGHT, -1)[:, :-1]  # no gap after the last glyph
        top = row * (GLYPH_HEIGHT + 1)
        mask[top : top + GLYPH_HEIGHT, : strip.shape[1]] = strip
    if scale > 1:
        mask = mask.repeat(scale, axis=0).repeat(scale, axis=1)
    return mask


__all__ = ["GLYPHS", "GLYPH_HEIGHT", "GLYPH_WIDTH", "glyph_indices", "render_text", "text_size"]
