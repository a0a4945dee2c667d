"""Geometry of the dashboard's SVG charts (no build step, no script): bars and lines in a viewBox, and
the durations they are labelled with. Pure functions; the templates draw what they return."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HEIGHT = 100.0
"""The charts' viewBox height; values fill up to 96 of it."""


@dataclass(frozen=True)
class Bar:
    """One bar: its box in the viewBox (one unit of width per slot) and its tooltip."""

    x: float
    y: float
    width: float
    height: float
    title: str


def bars(values: Sequence[float], titles: Sequence[str], base: Sequence[float] | None = None) -> list[Bar]:
    """A bar per value, scaled so the tallest stack (``base`` + value) reaches the top; ``base`` lifts each
    bar (a stacked chart). Slot ``i`` spans x = 10 i .. 10 i + 10."""
    under = list(base) if base is not None else [0.0] * len(values)
    peak = max([low + value for low, value in zip(under, values, strict=True)] + [1e-12])
    drawn = []
    for index, (value, low, title) in enumerate(zip(values, under, titles, strict=True)):
        height = round(value / peak * 96, 2)
        bottom = round(low / peak * 96, 2)
        drawn.append(Bar(index * 10 + 1, round(HEIGHT - bottom - height, 2), 8, height, title))
    return drawn


def duration(seconds: float | None) -> str:
    """``0.4 ms``, ``12 ms``, ``1.5 s``, ``3.2 min``, ``2.0 h``; ``-`` for None, ``> 70 min`` beyond the
    histogram's last bound (infinite)."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "> 70 min"
    if seconds < 0.01:
        return f"{seconds * 1000:.2g} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
