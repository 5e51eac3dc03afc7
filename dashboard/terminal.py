"""What a terminal shows of raw output: the visible text of a log line and its styles and links.

Escape sequences (ECMA-48: CSI, OSC, DCS/APC/PM/SOS strings, charset and other two-byte
escapes) and control characters are not text: colours and styles (SGR) and OSC 8 hyperlinks
become spans, everything else is removed. A carriage return or a backspace moves the cursor
back, so what follows overwrites, as on a terminal (pip's progress bar shows its last state).

The same rules give the text that search runs over (stored at ingest, see `visible_array`)
and the text the log viewer draws, so a match counted is a match highlighted.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# One pattern for Python's re and RE2 (pyarrow, DuckDB): both read \xNN as a code point.
_STRING = r"\x1b[\]P_X^][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, APC, SOS, PM: to BEL or ST (or line end)
_CSI = r"\x1b\[[0-?]*[ -/]*[@-~]"
_ESCAPE = r"\x1b[ -/]*[0-~]"  # ESC ( B, ESC 7, ESC 8, ESC =, ESC M, ...
_CONTROL = r"[\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]"  # C0 and C1, but TAB, BS, CR, ESC
SEQUENCE = f"{_STRING}|{_CSI}|{_ESCAPE}|\\x1b|{_CONTROL}"
#: A line holding any of these is not shown as stored.
SPECIAL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
_SEQUENCE = re.compile(SEQUENCE)
_SPECIAL = re.compile(SPECIAL)
_MOVES = re.compile(r"[\r\x08]")
_TOKEN = re.compile(f"({_STRING})|({_CSI})|(\\r)|(\\x08)|{_ESCAPE}|\\x1b|{_CONTROL}")
_OSC8 = re.compile(r"\x1b\]8;[^;\x07\x1b]*;([^\x07\x1b]*)")


@dataclass(frozen=True)
class Style:
    """How a run of characters is drawn: CSS classes of the viewer, a colour, a link."""

    classes: str = ""
    color: str = ""
    href: str = ""


PLAIN = Style()


def visible(text: str) -> str:
    """The text a terminal shows of one line of output."""
    if not _SPECIAL.search(text):
        return text
    if not _MOVES.search(text):
        return _SEQUENCE.sub("", text)
    return shown(text)[0]


#: Lines of a chunk stripped together; a longer chunk is cut into pieces of about this many and
#: stripped on several cores (Arrow's regular expressions run one core a call, the GIL let go).
PIECE_LINES = 16_384
_CORES = min(4, os.cpu_count() or 1)
_PIECES = ThreadPoolExecutor(max_workers=_CORES, thread_name_prefix="taskdash-visible")


def visible_array(texts: pa.Array) -> pa.Array:
    """`visible` of every line, null where a line shows as stored (most lines: no copy)."""
    pieces = min(_CORES, len(texts) // PIECE_LINES)
    if pieces < 2:
        return _visible_piece(texts)
    cuts = np.linspace(0, len(texts), pieces + 1, dtype=np.int64)
    done = _PIECES.map(_visible_piece, [texts[int(a):int(b)] for a, b in zip(cuts[:-1], cuts[1:])])
    return pa.concat_arrays(list(done))


def _visible_piece(texts: pa.Array) -> pa.Array:
    # Most lines are printable ASCII, which holds nothing to look for: that check takes an eighth
    # of the regular expression's time (the ingest's slowest step on plain logs).
    unusual = pc.invert(pc.ascii_is_printable(texts))
    if not pc.any(unusual).as_py():
        return pa.nulls(len(texts), pa.large_string())
    special = pc.replace_with_mask(pa.array(np.zeros(len(texts), dtype=bool)), unusual,
                                   pc.match_substring_regex(texts.filter(unusual), SPECIAL))
    if not pc.any(special).as_py():  # (tabs, say, or letters beyond ASCII)
        return pa.nulls(len(texts), pa.large_string())
    texts = texts.cast(pa.large_string())
    stripped = pc.if_else(special, pc.replace_substring_regex(texts, SEQUENCE, ""), None)
    if len(rows := _lines_with_moves(texts)):  # rare: overwrites resolved in Python
        moves = np.zeros(len(texts), dtype=bool)
        moves[rows] = True
        stripped = pc.replace_with_mask(stripped, pa.array(moves), pa.array(
            [shown(texts[int(i)].as_py())[0] for i in rows], pa.large_string()))
    return stripped


def _lines_with_moves(texts: pa.LargeStringArray) -> np.ndarray:
    """The rows of the lines holding a carriage return or a backspace, found in numpy over the
    lines' bytes: Arrow's match_substring, once for each, took a quarter of a coloured capture's
    stripping (62 of 232 ms for 200,000 lines; this, 11)."""
    offsets = np.frombuffer(texts.buffers()[1], np.int64)[texts.offset:texts.offset + len(texts) + 1]
    data = np.frombuffer(texts.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    at = np.flatnonzero((data == 0x0D) | (data == 0x08)) + offsets[0]
    return np.unique(np.searchsorted(offsets, at, side="right") - 1)


def shown(text: str) -> tuple[str, list[tuple[int, int, Style]]]:
    """The visible text of a line and its styled runs as (start, end, style), plain runs left out."""
    if not _SPECIAL.search(text):
        return text, []
    if not _MOVES.search(text):
        return _shown_in_order(text)
    chars: list[str] = []
    styles: list[Style] = []
    column, sgr, href = 0, {}, ""
    style = PLAIN
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            column = _put(chars, styles, column, text[position:match.start()], style)
        position = match.end()
        string, csi, cr, bs = match.groups()
        if cr:
            column = 0
        elif bs:
            column = max(0, column - 1)
        elif csi and csi.endswith("m"):
            sgr = _sgr(csi[2:-1], sgr)
            style = _style(sgr, href)
        elif csi and csi.endswith("K"):
            mode = csi[2:-1] or "0"
            if mode == "0":
                del chars[column:], styles[column:]
            elif mode in ("1", "2"):
                end = len(chars) if mode == "2" else min(column + 1, len(chars))
                chars[:end], styles[:end] = [" "] * end, [PLAIN] * end
        elif string and (link := _OSC8.match(string)):
            href = _safe_href(link[1])
            style = _style(sgr, href)
    if position < len(text):
        _put(chars, styles, column, text[position:], style)
    runs, start = [], 0
    for i in range(1, len(styles) + 1):
        if i == len(styles) or styles[i] != styles[start]:
            if styles[start] != PLAIN:
                runs.append((start, i, styles[start]))
            start = i
    return "".join(chars), runs


def _shown_in_order(text: str) -> tuple[str, list[tuple[int, int, Style]]]:
    """`shown` of a line without CR or BS: the cursor only moves on, so runs are appended."""
    pieces: list[str] = []
    runs: list[tuple[int, int, Style]] = []
    length, sgr, href, style, position = 0, {}, "", PLAIN, 0

    def add(piece: str) -> None:
        nonlocal length
        pieces.append(piece)
        if style != PLAIN:
            if runs and runs[-1][2] == style and runs[-1][1] == length:
                runs[-1] = (runs[-1][0], length + len(piece), style)
            else:
                runs.append((length, length + len(piece), style))
        length += len(piece)

    for match in _TOKEN.finditer(text):
        if match.start() > position:
            add(text[position:match.start()])
        position = match.end()
        string, csi = match.group(1), match.group(2)
        if csi and csi.endswith("m"):
            sgr = _sgr(csi[2:-1], sgr)
            style = _style(sgr, href)
        elif string and (link := _OSC8.match(string)):
            href = _safe_href(link[1])
            style = _style(sgr, href)
    if position < len(text):
        add(text[position:])
    return "".join(pieces), runs


def _put(chars: list[str], styles: list[Style], column: int, piece: str, style: Style) -> int:
    end = column + len(piece)
    if column > len(chars):  # after CSI K cut the line short: pad, as the cells are blank
        chars.extend(" " * (column - len(chars)))
        styles.extend([PLAIN] * (column - len(styles)))
    chars[column:end] = piece
    styles[column:end] = [style] * len(piece)
    return end


def _safe_href(uri: str) -> str:
    """A link target the viewer may open: http or https only; anything else shows as text."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return ""
    return uri if parts.scheme in ("http", "https") and parts.netloc else ""


def _sgr(params: str, sgr: dict) -> dict:
    """Apply 'Select Graphic Rendition' parameters ('1;31', '38;5;208', '') to a style dict."""
    sgr = dict(sgr)
    codes = [int(c) if c.isdigit() else 0 for c in params.replace(":", ";").split(";")] if params else [0]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            sgr = {}
        elif c in (1, 3, 4):
            sgr["bold italic underline".split()[(1, 3, 4).index(c)]] = True
        elif c in (22, 23, 24):
            sgr.pop("bold italic underline".split()[(22, 23, 24).index(c)], None)
        elif 30 <= c <= 37 or 90 <= c <= 97:
            sgr["fg"] = c - 30 if c < 90 else c - 82
        elif 40 <= c <= 47 or 100 <= c <= 107:
            sgr["bg"] = c - 40 if c < 100 else c - 100
        elif c == 39:
            sgr.pop("fg", None)
        elif c == 49:
            sgr.pop("bg", None)
        elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
            n, key = codes[i + 2], "fg" if c == 38 else "bg"
            sgr[key] = n if n < 16 and key == "fg" or n < 8 else _xterm(n)
            i += 2
        elif c in (38, 48) and i + 4 < len(codes) and codes[i + 1] == 2:
            r, g, b = (max(0, min(255, v)) for v in codes[i + 2:i + 5])
            sgr["fg" if c == 38 else "bg"] = f"rgb({r}, {g}, {b})"
            i += 4
        i += 1
    return sgr


def _xterm(n: int) -> str:
    n = max(0, min(255, n))
    if n < 16:
        return ""
    if n >= 232:
        v = 8 + (n - 232) * 10
        return f"rgb({v}, {v}, {v})"
    n -= 16
    level = [0, 95, 135, 175, 215, 255]
    return f"rgb({level[n // 36]}, {level[n // 6 % 6]}, {level[n % 6]})"


def _style(sgr: dict, href: str) -> Style:
    classes = [f"td-fg-{sgr['fg']}"] if isinstance(sgr.get("fg"), int) else []
    if isinstance(sgr.get("bg"), int) and sgr["bg"] < 8:
        classes.append(f"td-bg-{sgr['bg']}")
    classes += [f"td-{name[0]}" for name in ("bold", "italic", "underline") if sgr.get(name)]
    color = sgr["fg"] if isinstance(sgr.get("fg"), str) else ""
    return Style(" ".join(classes), color, href)
