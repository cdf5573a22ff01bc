"""The predictive half of a router version: does the weak model answer this request well enough?

A logistic regression on request embeddings, fitted on memory verdicts, whose threshold is then
set so that a chosen share of requests goes to the strong model (the strong-call rate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from registry.errors import ArtifactError, NotEnoughDataError


class WeakGoodClassifier:
    """Logistic regression: P(weak answer good enough | request embedding).

    Parameters are only stored here; `fit` learns `coef_` and `intercept_`, `calibrate`
    learns `threshold_`.

    Args:
        l2: weight of the L2 penalty on `coef_` (against the summed log-loss); larger is
            smoother.
        max_iter: Newton iterations at most.

    Example:
        >>> clf = WeakGoodClassifier(l2=1.0).fit(vectors, weak_good)
        >>> clf.calibrate(vectors, target_strong_rate=0.3).predict_weak(vectors)
    """

    def __init__(self, l2: float = 1.0, max_iter: int = 25):
        self.l2 = l2
        self.max_iter = max_iter

    def fit(self, vectors: np.ndarray, weak_good: np.ndarray) -> WeakGoodClassifier:
        """Fit on unit embeddings `vectors` (n, d) and booleans `weak_good` (n,).

        Uses the replay harness' logistic regression, so a router version and the replay
        baseline of the same name are the same model.

        Raises:
            NotEnoughDataError: fewer than two rows, or only one class among the labels.
        """
        from rar_tasks.errors import RequestError
        from rar_tasks.replay.baselines import fit_logistic

        x = np.asarray(vectors, dtype=np.float64)
        y = np.asarray(weak_good, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(y) or len(x) < 2:
            raise NotEnoughDataError(
                f"vectors: need a 2-d array with one row per label and >= 2 rows, got shape "
                f"{x.shape} for {len(y)} labels"
            )
        if y.min() == y.max():
            raise NotEnoughDataError(
                f"verdicts: all {len(y)} training entries have the same verdict; memory needs "
                "both weak-good-enough and strong-needed entries to fit a router"
            )
        try:
            weights, bias = fit_logistic(x, y, l2=self.l2, iterations=self.max_iter)
        except RequestError as exc:
            raise NotEnoughDataError(str(exc)) from exc
        self.coef_ = np.asarray(weights, dtype=np.float32)
        self.intercept_ = float(bias)
        self.threshold_ = 0.5
        return self

    def score(self, vectors: np.ndarray) -> np.ndarray:
        """P(weak good enough) for each row of `vectors`."""
        z = np.asarray(vectors, dtype=np.float32) @ self.coef_ + self.intercept_
        return _sigmoid(z.astype(np.float64))

    def calibrate(self, vectors: np.ndarray, target_strong_rate: float) -> WeakGoodClassifier:
        """Set `threshold_` so that `target_strong_rate` of `vectors` score below it.

        Raises:
            ValueError: `target_strong_rate` outside [0, 1].
        """
        self.threshold_ = threshold_for_rate(self.score(vectors), target_strong_rate)
        return self

    def predict_weak(self, vectors: np.ndarray) -> np.ndarray:
        """True where the weak model should serve (score at or above the threshold)."""
        return self.score(vectors) >= self.threshold_

    def save(self, path: str | Path) -> None:
        np.savez(path, coef=self.coef_, intercept=self.intercept_, threshold=self.threshold_,
                 l2=self.l2, max_iter=self.max_iter)

    @classmethod
    def load(cls, path: str | Path) -> WeakGoodClassifier:
        """Read a classifier written by `save`.

        Raises:
            ArtifactError: the file is missing, truncated or lacks a field.
        """
        try:
            with np.load(path) as data:
                clf = cls(l2=float(data["l2"]), max_iter=int(data["max_iter"]))
                clf.coef_ = data["coef"].astype(np.float32)
                clf.intercept_ = float(data["intercept"])
                clf.threshold_ = float(data["threshold"])
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise ArtifactError(f"classifier file {path} is missing or corrupt: {exc}") from exc
        return clf


def threshold_for_rate(scores: np.ndarray, target_strong_rate: float) -> float:
    """The score below which `target_strong_rate` of `scores` fall.

    Raises:
        ValueError: `target_strong_rate` outside [0, 1].
    """
    if not 0.0 <= target_strong_rate <= 1.0:
        raise ValueError(f"target_strong_rate must be in [0, 1], got {target_strong_rate}")
    if target_strong_rate <= 0.0:
        return 0.0
    if target_strong_rate >= 1.0:
        return 1.0 + 1e-9
    return float(np.quantile(scores, target_strong_rate))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
