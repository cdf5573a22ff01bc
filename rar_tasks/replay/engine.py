"""Stream requests through a router and look up what the routed model did; no model is called.

A `weak` route scores the weak model's recorded quality and costs one weak call; `strong`
scores the strong model and costs one strong call; `learn` costs both, scores the strong
answer and hands memory the replay judge's verdict on the weak answer (or, with `relative`,
whether the weak answer was as good as the strong one: `ReplayDataset.relative_good`, the
verdict of the live `ground_truth_relative` judge). Guides cannot be replayed (no guided
weak answer was ever recorded), so memory only learns `weak_ok` and `strong_needed`
verdicts here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rar_tasks.memory import STRONG_NEEDED, WEAK_OK, MemoryRecord
from rar_tasks.replay.data import STRONG_MODEL, WEAK_MODEL, ReplayDataset
from rar_tasks.routers import LEARN, STRONG, WEAK, Router


@dataclass
class StreamResult:
    """Per-request outcomes of one replayed stream, in stream order."""

    router: str
    request_ids: list[str]
    kinds: np.ndarray
    scores: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    @property
    def strong_called(self) -> np.ndarray:
        return np.isin(self.kinds, (LEARN, STRONG))

    @property
    def strong_call_rate(self) -> float:
        return float(self.strong_called.mean()) if len(self.kinds) else float("nan")

    @property
    def mean_quality(self) -> float:
        return float(self.quality.mean()) if len(self.kinds) else float("nan")

    @property
    def cost_per_request(self) -> float:
        return float(self.cost.mean()) if len(self.kinds) else float("nan")


def record_for(
    ds: ReplayDataset, i: int, vector: np.ndarray, relative: bool = False
) -> MemoryRecord:
    """What memory learns from a learning route on request `i`: the replay judge's verdict,
    or with `relative` whether the weak answer was as good as the strong one."""
    request = ds.requests[i]
    good = ds.relative_good[i] if relative else ds.weak_good[i]
    return MemoryRecord(
        request.id,
        request.namespace,
        request.text,
        vector.tolist(),
        WEAK_OK if good else STRONG_NEEDED,
        judge=ds.relative_judge if relative else ds.judge,
        weak_model=WEAK_MODEL,
        strong_model=STRONG_MODEL,
    )


def replay_stream(
    router: Router,
    ds: ReplayDataset,
    vectors: np.ndarray,
    order: np.ndarray,
    relative: bool = False,
) -> StreamResult:
    """Serve `ds.requests[order]` with `router`, learning after every `learn` route.

    Args:
        router: any router of the live interface.
        ds: the recording; `vectors` its request embeddings, row-aligned.
        order: indices into `ds`, in stream order.
        relative: learn the relative verdict (see `record_for`); the served quality and the
            costs are the same either way.
    """
    weak_cost, strong_cost = ds.weak_cost, ds.strong_cost
    kinds, scores, quality, cost = (
        [],
        np.empty(len(order)),
        np.empty(len(order)),
        np.empty(len(order)),
    )
    for pos, i in enumerate(order):
        route = router.route(ds.requests[i], vectors[i])
        kinds.append(route.kind)
        scores[pos] = route.score
        if route.kind == WEAK:
            quality[pos], cost[pos] = ds.weak_quality[i], weak_cost[i]
        elif route.kind == STRONG:
            quality[pos], cost[pos] = ds.strong_quality[i], strong_cost[i]
        elif route.kind == LEARN:
            quality[pos], cost[pos] = ds.strong_quality[i], weak_cost[i] + strong_cost[i]
            router.learn(record_for(ds, i, vectors[i], relative))
        else:
            raise ValueError(f"router {router.name!r} returned unknown route kind {route.kind!r}")
    return StreamResult(
        router.name, [ds.requests[i].id for i in order], np.array(kinds), scores, quality, cost
    )


def seed_memory(
    router: Router,
    ds: ReplayDataset,
    vectors: np.ndarray,
    index: np.ndarray,
    relative: bool = False,
) -> None:
    """Teach a learning router the verdicts of `index` before the stream (a warm start)."""
    for i in index:
        router.learn(record_for(ds, int(i), vectors[i], relative))
