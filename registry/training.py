"""Fit a router version on a memory snapshot, calibrated to a target strong-call rate.

The threshold is set on scores the classifier gives to requests it did not train on (out of
fold) while training data is small next to the embedding size, because in-sample scores of an
over-parameterised fit are too confident and would miss the target on new requests.
"""

from __future__ import annotations

import logging

import numpy as np

from rar_tasks.config import Settings
from registry.classifier import WeakGoodClassifier, threshold_for_rate
from registry.router_version import FittedRouter, GuideBank, VersionConfig
from registry.snapshot import MemorySnapshot

log = logging.getLogger("rar.registry")

# With this many training rows per embedding dimension, in-sample scores are close enough to
# new requests' scores to calibrate on.
ROWS_PER_DIM_FOR_IN_SAMPLE = 20


def fit_router_version(train: MemorySnapshot, settings: Settings, target_strong_rate: float,
                       l2: float = 1.0, folds: int = 3) -> FittedRouter:
    """Fit the classifier on `train`, calibrate its threshold, collect the guides.

    Args:
        train: memory entries to learn from (oldest first).
        settings: models, judge, embedder and router thresholds recorded in the version.
        target_strong_rate: share of requests the version should send to the strong model.
        l2: L2 penalty of the logistic regression.
        folds: time-ordered folds for out-of-fold calibration scores when training data is
            small (see module docstring); ignored otherwise.

    Raises:
        NotEnoughDataError: too few entries, or a single verdict class.
    """
    x, y = train.vectors, train.weak_good
    clf = WeakGoodClassifier(l2=l2).fit(x, y)
    dim = x.shape[1]
    if len(x) >= ROWS_PER_DIM_FOR_IN_SAMPLE * dim or folds < 2:
        calibration_scores = clf.score(x)
    else:
        calibration_scores = _out_of_fold_scores(x, y, l2, folds, fallback=clf)
    clf.threshold_ = threshold_for_rate(calibration_scores, target_strong_rate)
    config = VersionConfig(
        embedder=settings.embedder.model,
        dim=int(dim),
        target_strong_rate=float(target_strong_rate),
        guide_min_similarity=settings.router.min_similarity,
        weak_model=settings.weak.model,
        strong_model=settings.strong.model,
        judge=settings.judge,
        extra={"l2": l2, "n_train": len(train), "memory_version": train.version},
    )
    return FittedRouter(clf, GuideBank.from_snapshot(train), config)


def _out_of_fold_scores(x: np.ndarray, y: np.ndarray, l2: float, folds: int,
                        fallback: WeakGoodClassifier) -> np.ndarray:
    """Score each contiguous block with a classifier fitted on the other blocks."""
    from registry.errors import NotEnoughDataError

    scores = np.empty(len(x))
    for block in np.array_split(np.arange(len(x)), folds):
        rest = np.setdiff1d(np.arange(len(x)), block)
        try:
            scores[block] = WeakGoodClassifier(l2=l2).fit(x[rest], y[rest]).score(x[block])
        except NotEnoughDataError:
            # One class only outside this block: fall back to the full fit's scores there.
            scores[block] = fallback.score(x[block])
    return scores
