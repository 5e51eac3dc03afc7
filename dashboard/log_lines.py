"""Raw log output split into lines: the log side of the spool contract, as Arrow arrays.

Lines are split on newline; invalid UTF-8 is replaced, not fatal; CRLF becomes LF; a line
longer than MAX_LINE_CHARS is kept cut, with a marker. No Python object is made per line.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MAX_LINE_CHARS = 64 * 1024  # a longer log line is kept cut, with a marker


def cut_line(line: str, length: str | None = None) -> str:
    """An over-long log line cut to MAX_LINE_CHARS, with a marker saying how long it was."""
    length = length or f"{len(line):,} characters"
    return f"{line[:MAX_LINE_CHARS]} … [line of {length} cut at {MAX_LINE_CHARS:,} characters]"


def split_lines(data: bytes) -> tuple[pa.LargeStringArray, int]:
    """Complete lines (each ending in a newline) as an Arrow array, without a Python object per line.

    Invalid UTF-8 is replaced, CRLF endings become LF, and an over-long line is cut.
    """
    if not data.isascii():  # (ASCII is UTF-8: a check many times faster than decoding)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("utf-8", "replace").encode("utf-8")  # a newline is never inside a sequence
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    newlines = newline_positions(data)
    count = len(newlines)
    if count and np.diff(newlines, prepend=-1).max() - 1 > MAX_LINE_CHARS:  # rare: cut in Python
        texts = data.decode("utf-8").split("\n")[:-1]
        return pa.array([cut_line(x) if len(x) > MAX_LINE_CHARS else x for x in texts], pa.large_string()), count
    return line_array(data, newlines), count


def newline_positions(data: bytes) -> np.ndarray:
    return np.flatnonzero(np.frombuffer(data, np.uint8) == 10)


def line_array(data: bytes, newlines: np.ndarray) -> pa.LargeStringArray:
    """The complete lines of valid UTF-8 `data` (without their newlines) as one Arrow array."""
    # With every newline removed, line i ends where its newline stood, less the i newlines before it.
    offsets = np.concatenate([[0], newlines - np.arange(len(newlines))]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(newlines), pa.py_buffer(offsets),
                                            pa.py_buffer(data.replace(b"\n", b"")))
