"""The literature's routers behind RAR's router interface: `route(request, vector) -> Route`.

Every router's `Route.score` estimates the chance that the weak model is good enough (higher
means weaker); a router routes weak when the score reaches its `threshold`, so sweeping the
threshold traces its cost-quality curve. Routers that learn offline have `fit(vectors, labels)`
and keep learned state in attributes ending with `_`; their `learn` does nothing, as they do
not adapt while serving. Cascades run the weak model first and escalate with route `learn`
(both models called, the strong answer returned), so both calls are paid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rar_tasks.errors import RequestError
from rar_tasks.memory import MemoryRecord
from rar_tasks.requests import Request
from rar_tasks.routers import LEARN, STRONG, WEAK, Route


class ThresholdRouter:
    """Shared verbs: score a request, compare with `threshold`, ignore online outcomes."""

    name = "threshold"
    escalate_kind = STRONG

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def score(self, request: Request, vector: np.ndarray) -> float:
        raise NotImplementedError

    def route(self, request: Request, vector: np.ndarray) -> Route:
        score = float(self.score(request, vector))
        if score >= self.threshold:
            return Route(WEAK, score, f"{self.name} score={score:.3f}>=threshold", vector=vector)
        return Route(
            self.escalate_kind, score, f"{self.name} score={score:.3f}<threshold", vector=vector
        )

    def learn(self, record: MemoryRecord) -> None:
        return None


class AlwaysWeak(ThresholdRouter):
    name = "always-weak"

    def score(self, request: Request, vector: np.ndarray) -> float:
        return 1.0


class AlwaysStrong(ThresholdRouter):
    name = "always-strong"

    def score(self, request: Request, vector: np.ndarray) -> float:
        return 0.0


class RandomBlend(ThresholdRouter):
    """Sends a random `strong_share` of requests to the strong model (seeded).

    The score is a uniform draw per request, so a threshold of `1 - strong_share` gives
    that share, and a sweep gives the straight line between the two models.
    """

    name = "random"

    def __init__(self, strong_share: float = 0.5, seed: int = 0):
        if not 0.0 <= strong_share <= 1.0:
            raise RequestError("strong_share", f"must be in [0, 1], got {strong_share}")
        super().__init__(threshold=strong_share)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def score(self, request: Request, vector: np.ndarray) -> float:
        return float(self._rng.random())


class Oracle(ThresholdRouter):
    """Upper bound: knows the recorded outcome and routes weak whenever that loses nothing.

    Args:
        weak_enough: request id -> whether the weak answer is at least as good as the strong.
    """

    name = "oracle"

    def __init__(self, weak_enough: dict[str, bool], threshold: float = 0.5):
        super().__init__(threshold)
        self.weak_enough = weak_enough

    def score(self, request: Request, vector: np.ndarray) -> float:
        if request.id not in self.weak_enough:
            raise RequestError("request.id", f"{request.id!r} has no recorded outcome")
        return 1.0 if self.weak_enough[request.id] else 0.0


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 25
) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method; returns (weights, bias).

    Args:
        x: (n, d) features; y: n labels in {0, 1}; l2: penalty on the weights (not the bias).

    Raises:
        RequestError: field `labels` when the two lengths differ or `y` holds one class only.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise RequestError("labels", f"{len(y)} labels for {len(x)} vectors")
    if len(np.unique(y)) < 2:
        raise RequestError("labels", "need both classes to fit a classifier")
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-6:
            break
    return w[:-1], float(w[-1])


def _sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class LogisticRouter(ThresholdRouter):
    """Logistic regression on the request embedding predicting the judge's verdict on the
    weak answer (the same label RAR's memory learns)."""

    name = "logistic"

    def __init__(self, l2: float = 1.0, threshold: float = 0.5):
        super().__init__(threshold)
        self.l2 = l2

    def fit(self, vectors: np.ndarray, labels: np.ndarray) -> LogisticRouter:
        self.coef_, self.intercept_ = fit_logistic(vectors, labels, self.l2)
        return self

    def score(self, request: Request, vector: np.ndarray) -> float:
        return float(_sigmoid(np.asarray(vector) @ self.coef_ + self.intercept_))


class HybridLLMRouter(LogisticRouter):
    """Hybrid-LLM-style router: a classifier of P(quality gap <= t), routed with a threshold.

    The label is "the strong model's quality exceeds the weak one's by at most `t`"; `t` is
    chosen on the training data to balance the two label classes, as Hybrid-LLM's transformed
    labels do. Hybrid-LLM estimates the gap from several sampled answers per model; the
    recordings hold one answer each, so the labels here are the deterministic ones.
    """

    name = "hybrid-llm"

    def fit_gap(
        self, vectors: np.ndarray, weak_quality: np.ndarray, strong_quality: np.ndarray
    ) -> HybridLLMRouter:
        gap = np.asarray(strong_quality, dtype=float) - np.asarray(weak_quality, dtype=float)
        candidates = [t for t in np.unique(gap) if 0 < np.mean(gap <= t) < 1] or [0.0]
        self.t_ = float(min(candidates, key=lambda t: abs(np.mean(gap <= t) - 0.5)))
        return self.fit(vectors, (gap <= self.t_).astype(float))


class KNNRouter(ThresholdRouter):
    """Similarity-weighted vote of the `k` nearest training requests (as RouteLLM's
    similarity-weighted ranking): weight exp(gamma * (sim - best_sim)) on each neighbour's
    verdict."""

    name = "knn"

    def __init__(self, k: int = 32, gamma: float = 10.0, threshold: float = 0.5):
        super().__init__(threshold)
        if k < 1:
            raise RequestError("k", f"must be >= 1, got {k}")
        self.k = k
        self.gamma = gamma

    def fit(self, vectors: np.ndarray, labels: np.ndarray) -> KNNRouter:
        if len(vectors) != len(labels) or not len(labels):
            raise RequestError("labels", f"{len(labels)} labels for {len(vectors)} vectors")
        self.vectors_ = np.asarray(vectors, dtype=np.float32)
        self.labels_ = np.asarray(labels, dtype=float)
        return self

    def score(self, request: Request, vector: np.ndarray) -> float:
        sims = self.vectors_ @ np.asarray(vector, dtype=np.float32)
        k = min(self.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        # float64 and a clip: float32 rounding let a unanimous vote score 1.0000001.
        near = sims[top].astype(np.float64)
        weights = np.exp(self.gamma * (near - near.max()))
        return float(np.clip(weights @ self.labels_[top] / weights.sum(), 0.0, 1.0))


class FrugalGPTCascade(LogisticRouter):
    """FrugalGPT-style cascade: the weak model answers first; a scorer trained offline on
    (request, weak answer) decides whether to accept it or escalate to the strong model.

    Args:
        answer_vector: request -> embedding of the weak model's answer, or None when no
            answer text exists (the scorer then sees the request alone and is no better than
            the logistic router while paying for the weak call).
    """

    name = "frugalgpt"
    escalate_kind = LEARN

    def __init__(
        self,
        answer_vector: Callable[[Request], np.ndarray | None],
        l2: float = 1.0,
        threshold: float = 0.5,
    ):
        super().__init__(l2, threshold)
        self.answer_vector = answer_vector

    def features(self, request: Request, vector: np.ndarray) -> np.ndarray:
        answer = self.answer_vector(request)
        return np.asarray(vector) if answer is None else np.concatenate([vector, answer])

    def score(self, request: Request, vector: np.ndarray) -> float:
        return super().score(request, self.features(request, vector))


class TabiCascade(ThresholdRouter):
    """Tabi-style cascade: accept the weak answer when the weak model's own confidence in it
    (e.g. its answer-token probability) reaches the threshold, else escalate.

    Reads `request.meta["weak_confidence"]`. None of the RouteLLM recordings hold a
    confidence, so replay cannot run this router on them; it raises instead of guessing.
    """

    name = "tabi"
    escalate_kind = LEARN

    def score(self, request: Request, vector: np.ndarray) -> float:
        confidence = request.meta.get("weak_confidence")
        if confidence is None:
            raise RequestError(
                "meta.weak_confidence",
                f"missing for {request.id!r}; Tabi needs the weak model's "
                "confidence, which this recording does not hold",
            )
        confidence = float(confidence)
        if not 0.0 <= confidence <= 1.0:
            raise RequestError("meta.weak_confidence", f"must be in [0, 1], got {confidence}")
        return confidence
