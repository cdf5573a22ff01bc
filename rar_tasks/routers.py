"""Routers answer one question: which route for this request? Some also learn from outcomes.

A `Route` is a value: its kind (`weak`: the weak model alone; `learn`: weak and strong both
run, the strong answer is returned and memory learns; `strong`: the strong model alone), a
score (the estimated chance that the weak model is good enough; higher means weaker), the
guide to put in the weak prompt, and why. Live serving, replay, LangChain and HTTP all use
these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rar_tasks.config import RouterConfig
from rar_tasks.memory import GUIDE_OK, WEAK_OK, Memory, MemoryRecord, Neighbour
from rar_tasks.requests import Request

WEAK = "weak"
LEARN = "learn"
STRONG = "strong"


@dataclass
class Route:
    kind: str
    score: float
    reason: str
    guide: str = ""
    guide_id: str = ""
    neighbours: list[Neighbour] = field(default_factory=list)
    vector: np.ndarray | None = field(default=None, repr=False)
    guide_source: str = ""

    @property
    def top_similarity(self) -> float | None:
        return max((n.similarity for n in self.neighbours), default=None)

    @property
    def calls_strong(self) -> bool:
        return self.kind in (LEARN, STRONG)


class Router(Protocol):
    name: str

    def route(self, request: Request, vector: np.ndarray) -> Route: ...

    def learn(self, record: MemoryRecord) -> None: ...


class RARRouter:
    """Real-time adapting routing: the weak model serves requests that memory says it handles.

    Among the `k` nearest past requests of the same namespace with cosine similarity at least
    `min_similarity`, count those whose verdict was weak-good-enough (alone or with a guide).
    Route `weak` when at least `min_agreeing` of them are, and they make at least
    `min_agree_share` of the hits; else `learn`. The guide of the most similar hit that needed
    one travels with the route.

    With `vote = "beta"` the count gives way to a score (see `beta_score`): a Beta posterior
    of the weak model being good enough, from a similarity-weighted vote of the hits and a
    prior from all `k` found neighbours, lowered by its uncertainty. Route `weak` when it
    reaches `min_weak_score` (and `min_agreeing` hits were weak-good); the score moves
    smoothly with memory, so sweeping `min_weak_score` traces a cost-quality curve.
    """

    name = "rar"

    def __init__(self, memory: Memory, config: RouterConfig | None = None):
        self.memory = memory
        self.config = config or RouterConfig()

    def route(self, request: Request, vector: np.ndarray) -> Route:
        cfg = self.config
        found = self.memory.search(vector, request.namespace, cfg.k)
        hits = [n for n in found if n.similarity >= cfg.min_similarity]
        guide = next((n for n in hits if n.verdict == GUIDE_OK and n.guide), None)
        guide_text, guide_id = (guide.guide, guide.guide_id) if guide else ("", "")
        source = guide.guide_source if guide else ""
        if cfg.vote == "beta":
            if not found:
                return Route(LEARN, 0.0, "no_similar_memory", neighbours=found, vector=vector)
            score, weight = self.beta_score(found, hits)
            good = sum(n.verdict in (WEAK_OK, GUIDE_OK) for n in hits)
            kind = WEAK if score >= cfg.min_weak_score and good >= cfg.min_agreeing else LEARN
            verdict = "memory_weak_ok" if kind == WEAK else "memory_uncertain"
            reason = f"{verdict} score={score:.3f} weight={weight:.2f} hits={len(hits)}"
            near = hits or found
            return Route(kind, score, reason, guide_text, guide_id, near, vector, source)
        if not hits:
            return Route(LEARN, 0.0, "no_similar_memory", neighbours=found, vector=vector)
        good = sum(n.verdict in (WEAK_OK, GUIDE_OK) for n in hits)
        share = good / len(hits)
        if good >= cfg.min_agreeing and share >= cfg.min_agree_share:
            reason = f"memory_weak_ok good={good} hits={len(hits)}"
            return Route(WEAK, share, reason, guide_text, guide_id, hits, vector, source)
        reason = f"memory_uncertain good={good} hits={len(hits)}"
        return Route(LEARN, share, reason, guide_text, guide_id, hits, vector, source)

    def beta_score(self, found: list[Neighbour], hits: list[Neighbour]) -> tuple[float, float]:
        """Score that the weak model is good enough, and the hits' total weight.

        Beta posterior: the prior is the weak-good share of every found neighbour (whatever
        its similarity), Laplace-smoothed and counted as `prior_weight` hits; each hit adds
        exp(similarity_gamma * (similarity - min_similarity)) to the trials, and as much to
        the successes when it was weak-good. The score is the posterior mean less
        `uncertainty_z` standard deviations (0: the mean).
        """
        cfg = self.config
        prior = (sum(n.verdict in (WEAK_OK, GUIDE_OK) for n in found) + 1.0) / (len(found) + 2.0)
        sims = np.array([n.similarity for n in hits], dtype=np.float64)
        good = np.array([n.verdict in (WEAK_OK, GUIDE_OK) for n in hits], dtype=np.float64)
        weights = np.exp(cfg.similarity_gamma * (sims - cfg.min_similarity))
        weight = float(weights.sum())
        total = weight + cfg.prior_weight
        mean = (float(weights @ good) + cfg.prior_weight * prior) / total if total else prior
        # A lower bound rather than the mean: little evidence must clear a higher bar, so
        # thinly known regions keep being learned instead of freezing on a lucky first hit.
        spread = np.sqrt(mean * (1.0 - mean) / (total + 1.0))
        return float(mean - cfg.uncertainty_z * spread), weight

    def learn(self, record: MemoryRecord) -> None:
        self.memory.upsert([record])
