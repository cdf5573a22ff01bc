"""Cost-quality curves and the numbers the routing literature reports from them.

A curve is a set of operating points (strong-call rate, mean quality, dollars per request),
always completed with the two pure routes: all weak at rate 0, all strong at rate 1.
- PGR (performance gap recovered) = (quality - weak) / (strong - weak).
- APGR (RouteLLM): area under PGR over the strong-call rate from 0 to 1.
- CPT(x) (RouteLLM): the lowest strong-call rate whose PGR reaches x.
- AIQ (RouterBench): mean of the non-decreasing upper convex hull of quality over cost,
  from the all-weak cost to the all-strong cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Curve:
    """Operating points sorted by strong-call rate; `thresholds` when a score produced them."""

    strong_rate: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    thresholds: np.ndarray | None = None


def curve_from_scores(
    scores: np.ndarray,
    weak_q: np.ndarray,
    strong_q: np.ndarray,
    weak_cost: np.ndarray,
    strong_cost: np.ndarray,
    cascade: bool = False,
) -> Curve:
    """Every threshold of a score router: requests scoring below it go to the strong model.

    Tied scores move together, so only thresholds a router can actually realise appear.
    A cascade pays the weak call on every request, escalated or not.
    """
    n = len(scores)
    order = np.argsort(scores, kind="stable")
    s = np.asarray(scores)[order]
    gain = np.concatenate([[0.0], np.cumsum(strong_q[order] - weak_q[order])])
    extra = strong_cost[order] if cascade else strong_cost[order] - weak_cost[order]
    spend = np.concatenate([[0.0], np.cumsum(extra)])
    # m escalated requests is realisable when m is 0, n, or falls between two distinct scores.
    m = np.concatenate([[0], np.flatnonzero(s[1:] != s[:-1]) + 1, [n]]) if n else np.array([0])
    thresholds = np.append(s[m[:-1]], np.inf) if n else np.array([np.inf])
    return Curve(
        m / max(n, 1),
        (weak_q.sum() + gain[m]) / max(n, 1),
        (weak_cost.sum() + spend[m]) / max(n, 1),
        thresholds,
    )


def curve_from_points(rates: list[float], qualities: list[float], costs: list[float]) -> Curve:
    order = np.argsort(rates, kind="stable")
    return Curve(np.asarray(rates)[order], np.asarray(qualities)[order], np.asarray(costs)[order])


def _with_ends(
    curve: Curve, q_weak: float, q_strong: float, c_weak: float, c_strong: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rate = np.concatenate([[0.0], curve.strong_rate, [1.0]])
    qual = np.concatenate([[q_weak], curve.quality, [q_strong]])
    cost = np.concatenate([[c_weak], curve.cost, [c_strong]])
    order = np.argsort(rate, kind="stable")
    return rate[order], qual[order], cost[order]


def pgr(quality: float | np.ndarray, q_weak: float, q_strong: float) -> float | np.ndarray:
    gap = q_strong - q_weak
    return (np.asarray(quality) - q_weak) / gap if gap else np.zeros_like(quality)


def apgr(curve: Curve, q_weak: float, q_strong: float) -> float:
    """Average performance gap recovered over strong-call rates 0..1 (trapezoids)."""
    rate, qual, _ = _with_ends(curve, q_weak, q_strong, 0.0, 0.0)
    return float(np.trapezoid(pgr(qual, q_weak, q_strong), rate))


def rate_to_reach(curve: Curve, target: float, q_weak: float, q_strong: float) -> float:
    """The lowest strong-call rate at which the curve reaches quality `target`, interpolating
    linearly between neighbouring points (mixing two thresholds at random realises that);
    NaN when no point reaches it."""
    rate, qual, _ = _with_ends(curve, q_weak, q_strong, 0.0, 0.0)
    if qual[0] >= target:
        return float(rate[0])
    for j in range(1, len(rate)):
        if qual[j] >= target:
            lo, hi = qual[j - 1], qual[j]
            share = (target - lo) / (hi - lo) if hi > lo else 1.0
            return float(rate[j - 1] + share * (rate[j] - rate[j - 1]))
    return float("nan")


def cpt(curve: Curve, target_pgr: float, q_weak: float, q_strong: float) -> float:
    """Call-performance threshold: the lowest strong-call rate with PGR >= `target_pgr`."""
    return rate_to_reach(curve, q_weak + target_pgr * (q_strong - q_weak), q_weak, q_strong)


def aiq(curve: Curve, q_weak: float, q_strong: float, c_weak: float, c_strong: float) -> float:
    """RouterBench's average improvement in quality over the cost range [c_weak, c_strong]."""
    _, qual, cost = _with_ends(curve, q_weak, q_strong, c_weak, c_strong)
    hull_c, hull_q = _upper_hull(cost, qual)
    grid = np.linspace(c_weak, c_strong, 513)
    values = np.maximum.accumulate(np.interp(grid, hull_c, hull_q))
    return (
        float(np.trapezoid(values, grid) / (c_strong - c_weak))
        if c_strong > c_weak
        else float(values.max())
    )


def _upper_hull(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(set(zip(x.tolist(), y.tolist(), strict=True)))
    hull: list[tuple[float, float]] = []
    for p in points:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return np.array([p[0] for p in hull]), np.array([p[1] for p in hull])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (rank formula, ties halved)."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if not n_pos or not n_neg:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rolling_rate(flags: np.ndarray, window: int) -> np.ndarray:
    """Share of True over the last `window` requests at each position of the stream."""
    flags = np.asarray(flags, dtype=float)
    sums = np.cumsum(np.concatenate([[0.0], flags]))
    idx = np.arange(1, len(flags) + 1)
    start = np.maximum(idx - window, 0)
    return (sums[idx] - sums[start]) / (idx - start)
