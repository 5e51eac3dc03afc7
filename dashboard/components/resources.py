"""The components' JavaScript and CSS, kept as files in `assets/` and read once.

Panel takes them as text (a stylesheet, a ReactiveHTML script, a Tabulator formatter), so the
pages still load nothing from other hosts, and a notebook with `inline=True` gets them too.
A file may hold `__NAME__` placeholders for values Python owns (a status's colour, a limit);
`resource` fills them in.
"""

from __future__ import annotations

import functools
from pathlib import Path

ASSETS = Path(__file__).with_name("assets")


@functools.cache
def _read(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def resource(name: str, **values: object) -> str:
    """The text of `assets/<name>`, each `__KEY__` replaced by str(values[KEY])."""
    text = _read(name)
    for key, value in values.items():
        placeholder = f"__{key}__"
        if placeholder not in text:
            raise KeyError(f"{name} has no {placeholder}")
        text = text.replace(placeholder, str(value))
    return text
