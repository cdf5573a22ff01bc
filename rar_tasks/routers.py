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
        if not hits:
            return Route(LEARN, 0.0, "no_similar_memory", neighbours=found, vector=vector)
        good = sum(n.verdict in (WEAK_OK, GUIDE_OK) for n in hits)
        share = good / len(hits)
        if good >= cfg.min_agreeing and share >= cfg.min_agree_share:
            reason = f"memory_weak_ok good={good} hits={len(hits)}"
            return Route(WEAK, share, reason, guide_text, guide_id, hits, vector, source)
        reason = f"memory_uncertain good={good} hits={len(hits)}"
        return Route(LEARN, share, reason, guide_text, guide_id, hits, vector, source)

    def learn(self, record: MemoryRecord) -> None:
        self.memory.upsert([record])
