"""Every status can be told from every other: by colour for most eyes, and by shape and name for all."""

from __future__ import annotations

import itertools

import pytest

from dashboard.statuses import COLORS, STATUSES, SYMBOLS

#: CIE76 colour difference below which two badges side by side read as one colour.
MIN_DELTA_E = 20


def lab(hex_color: str) -> tuple[float, float, float]:
    """sRGB '#rrggbb' as CIELAB (D65)."""
    rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, \
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def delta_e(a: str, b: str) -> float:
    return sum((x - y) ** 2 for x, y in zip(lab(a), lab(b))) ** 0.5


@pytest.mark.parametrize("first,second", list(itertools.combinations(STATUSES, 2)))
def test_every_two_statuses_differ_in_colour(first, second):
    assert delta_e(COLORS[first], COLORS[second]) >= MIN_DELTA_E, f"{first} and {second} look alike"


def test_every_status_has_its_own_shape_so_colour_is_never_alone():
    assert set(SYMBOLS) == set(STATUSES)
    assert len(set(SYMBOLS.values())) == len(STATUSES)


def test_failed_and_terminated_are_far_apart():
    assert delta_e(COLORS["FAILED"], COLORS["TERMINATED"]) >= 2 * MIN_DELTA_E
