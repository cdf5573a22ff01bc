"""Score router versions on held-out memory entries, and the gate that promotes one.

On a memory entry the outcome of either model is known from its verdict: the strong answer is
taken as good, the weak one as good unless the verdict was `strong_needed`. A router that sends
an entry to the weak model is right when the weak answer was good; sending it to the strong
model is always right but costs a strong call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rar_tasks.replay.metrics import apgr, auc, curve_from_scores


def holdout_metrics(scores: np.ndarray, threshold: float, weak_good: np.ndarray) -> dict:
    """Metrics of routing `weak` where `scores >= threshold`, on entries labelled `weak_good`.

    Returns:
        `quality` (share answered well), `strong_call_rate`, `weak_precision` (share of weak
        routes whose weak answer was good), `missed_strong` (share routed weak that needed the
        strong model), `auc` (of the scores against the labels; NaN with one class), `apgr`
        (the replay harness' average performance gap recovered over all thresholds), `n`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    good = np.asarray(weak_good, dtype=bool)
    weak = scores >= threshold
    n = len(scores)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "quality": nan, "strong_call_rate": nan, "weak_precision": nan,
                "missed_strong": nan, "auc": nan, "apgr": nan}
    return {
        "n": n,
        "quality": float(np.mean(~weak | good)),
        "strong_call_rate": float(np.mean(~weak)),
        "weak_precision": float(np.mean(good[weak])) if weak.any() else float("nan"),
        "missed_strong": float(np.mean(weak & ~good)),
        "auc": auc(scores, good),
        "apgr": _apgr(scores, good),
    }


def _apgr(scores: np.ndarray, good: np.ndarray) -> float:
    """APGR of the score over all thresholds: quality 1 for a good weak answer or any strong
    one, 0 otherwise; a strong call costs 1, a weak one 0."""
    weak_q = good.astype(np.float64)
    strong_q = np.ones_like(weak_q)
    curve = curve_from_scores(scores, weak_q, strong_q, np.zeros_like(weak_q), strong_q)
    q_weak = float(weak_q.mean())
    return apgr(curve, q_weak, 1.0) if q_weak < 1.0 else float("nan")


@dataclass
class Gate:
    """When a challenger replaces the champion.

    Args:
        max_quality_drop: the challenger's holdout quality may be at most this much below
            the champion's.
        max_strong_rate_increase: its strong-call rate may be at most this much above.
        min_holdout: fewer held-out entries than this never promote (too noisy to judge),
            unless there is no champion yet.
    """

    max_quality_drop: float = 0.0
    max_strong_rate_increase: float = 0.02
    min_holdout: int = 20

    def decide(self, challenger: dict, champion: dict | None) -> tuple[bool, str]:
        """Return (promote?, reason) for two `holdout_metrics` results."""
        if champion is None:
            return True, "no_champion"
        if challenger["n"] < self.min_holdout:
            return False, f"holdout_too_small n={challenger['n']} min={self.min_holdout}"
        drop = champion["quality"] - challenger["quality"]
        rise = challenger["strong_call_rate"] - champion["strong_call_rate"]
        if drop > self.max_quality_drop + 1e-12:
            return False, f"quality_drop={drop:.4f} max={self.max_quality_drop}"
        if rise > self.max_strong_rate_increase + 1e-12:
            return False, f"strong_rate_rise={rise:.4f} max={self.max_strong_rate_increase}"
        return True, f"passed quality_delta={-drop:+.4f} strong_rate_delta={rise:+.4f}"
