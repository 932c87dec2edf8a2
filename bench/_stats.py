"""Small statistics helpers shared by the benchmarks (stdlib only: also run by the reference venv)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """Median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100), or NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ratio(ours: float, ref: float) -> float:
    """``ours / ref``, NaN when either is missing or the reference is zero."""
    if ref != ref or ours != ours or ref == 0:  # NaN checks
        return float("nan")
    return ours / ref


def fmt(value: float, digits: int = 1) -> str:
    """Format a number, ``-`` for NaN."""
    return "-" if value != value else f"{value:,.{digits}f}"
