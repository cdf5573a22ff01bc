"""Evaluate one router on one split: fit on train, tune on dev, replay the test stream.

Score routers are tuned by choosing, on the dev split, the threshold with the fewest strong
calls that keeps 95 % of the strong model's dev quality. RAR is tuned the same way over a
small grid of its memory thresholds (`k`, `min_similarity`, `min_agree_share`); `rar-beta`
(RAR with `vote = "beta"`) over its score threshold `min_weak_score`. `rar-beta-rel` is
`rar-beta` learning the relative verdict (weak as good as strong: right, or strong wrong
too), what live RAR stores with the `ground_truth_relative` judge; it is tuned over its own,
higher `min_weak_score` grid since weak-good verdicts are more common. The test
split is only ever replayed, never used to choose anything; the curve-based numbers (APGR,
CPT, AIQ, rate at 95 %) read the whole test curve, as RouteLLM and RouterBench do.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rar_tasks.config import RouterConfig
from rar_tasks.errors import RequestError
from rar_tasks.memory import ArrayMemory
from rar_tasks.replay import metrics
from rar_tasks.replay.baselines import (
    AlwaysStrong,
    AlwaysWeak,
    FrugalGPTCascade,
    HybridLLMRouter,
    KNNRouter,
    LogisticRouter,
    Oracle,
    RandomBlend,
    TabiCascade,
)
from rar_tasks.replay.data import ReplayDataset
from rar_tasks.replay.engine import StreamResult, replay_stream, seed_memory
from rar_tasks.replay.splits import Split
from rar_tasks.routers import RARRouter

ROUTERS = (
    "always-weak",
    "always-strong",
    "random",
    "oracle",
    "frugalgpt",
    "tabi",
    "knn",
    "logistic",
    "hybrid-llm",
    "rar",
    "rar-warm",
    "rar-beta",
    "rar-beta-warm",
    "rar-beta-rel",
    "rar-beta-rel-warm",
)
# name: (vote, warm start, learns the relative verdict)
RAR_ROUTERS = {
    "rar": ("count", False, False),
    "rar-warm": ("count", True, False),
    "rar-beta": ("beta", False, False),
    "rar-beta-warm": ("beta", True, False),
    "rar-beta-rel": ("beta", False, True),
    "rar-beta-rel-warm": ("beta", True, True),
}
CASCADES = ("frugalgpt", "tabi")
CONSTANT = ("always-weak", "always-strong")
QUALITY_SHARE = 0.95

# RAR's tuning grid; small on purpose: every point is a full stream replay, and a search over
# memory costs about a millisecond once it holds thousands of rows.
RAR_GRID = {
    "k": (10,),
    "min_similarity": (0.4, 0.6),
    "min_agree_share": (0.7, 0.85, 1.0),
}
RAR_SWEEP_SHARES = (0.6, 0.8, 1.0)
RAR_DEV_LIMIT = 1500  # dev requests streamed per grid point
# RAR with the Beta vote: memory settings chosen on the MMLU dev splits (seeds 0-2, cold
# start; see RouterConfig), then only `min_weak_score` is tuned per split and swept.
RAR_BETA = {
    "k": 50,
    "min_similarity": 0.3,
    "min_agreeing": 1,
    "vote": "beta",
    "similarity_gamma": 0.0,
    "prior_weight": 1.0,
    "uncertainty_z": 0.25,
}
RAR_BETA_SCORES = (0.6, 0.63, 0.66, 0.69, 0.72, 0.75, 0.78, 0.82)
RAR_BETA_SWEEP = (0.6, 0.66, 0.72, 0.78, 0.84)
# The relative verdict is weak-good on ~82 % of MMLU requests (vs ~68 % for "weak right"), so
# its scores sit higher; same memory settings, a grid and sweep shifted up.
RAR_BETA_REL_SCORES = (0.72, 0.76, 0.8, 0.83, 0.86, 0.89, 0.92, 0.95)
RAR_BETA_REL_SWEEP = (0.76, 0.82, 0.88, 0.92, 0.96)


@dataclass
class RouterResult:
    """Everything reported about one router on one split; plain values, ready for JSON."""

    router: str
    dataset: str
    seed: int
    split: str
    n_test: int
    weak_quality: float
    strong_quality: float
    weak_cost: float
    strong_cost: float
    # A router that could not run (skipped) keeps the defaults below.
    curve_rate: list[float] = field(default_factory=list)
    curve_quality: list[float] = field(default_factory=list)
    curve_cost: list[float] = field(default_factory=list)
    tuned: dict[str, Any] = field(default_factory=dict)
    strong_rate: float = float("nan")
    quality: float = float("nan")
    cost: float = float("nan")
    strong_flags: list[bool] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""
    seconds: float = 0.0
    skipped: bool = False


def unavailable_reason(name: str, ds: ReplayDataset) -> str:
    """Why `name` cannot run on `ds`, or '' when it can."""
    if name not in ROUTERS:
        raise RequestError("routers", f"unknown router {name!r}; known: {', '.join(ROUTERS)}")
    if name == "tabi" and not all("weak_confidence" in r.meta for r in ds.requests):
        return "no weak-model confidence recorded; Tabi cannot be replayed on this dataset"
    return ""


def _note(name: str, ds: ReplayDataset) -> str:
    if name == "frugalgpt" and ds.weak_texts is None:
        return "no weak answer text recorded: the scorer sees the request only"
    vote = "Beta vote; " if name.startswith("rar-beta") else ""
    if name.startswith("rar-beta-rel"):
        vote += "learns weak-as-good-as-strong (weak right or strong wrong); "
    if name in ("rar-warm", "rar-beta-warm", "rar-beta-rel-warm"):
        return vote + "memory seeded with the train split's verdicts (not counted as calls)"
    if name in ("rar", "rar-beta", "rar-beta-rel"):
        return vote + "guides cannot be replayed; learning calls count as strong calls"
    return ""


def _weak_enough(ds: ReplayDataset) -> np.ndarray:
    return ds.weak_quality >= ds.strong_quality


def build_score_router(
    name: str,
    ds: ReplayDataset,
    vectors: np.ndarray,
    train: np.ndarray,
    seed: int,
    answer_vectors: np.ndarray | None = None,
):
    """A fitted score router (everything but RAR)."""
    if name == "always-weak":
        return AlwaysWeak()
    if name == "always-strong":
        return AlwaysStrong()
    if name == "random":
        return RandomBlend(0.5, seed)
    if name == "oracle":
        return Oracle({r.id: bool(w) for r, w in zip(ds.requests, _weak_enough(ds), strict=True)})
    if name == "tabi":
        return TabiCascade()
    labels = ds.weak_good[train].astype(float)
    if name == "knn":
        return KNNRouter().fit(vectors[train], labels)
    if name == "logistic":
        return LogisticRouter().fit(vectors[train], labels)
    if name == "hybrid-llm":
        return HybridLLMRouter().fit_gap(
            vectors[train], ds.weak_quality[train], ds.strong_quality[train]
        )
    if name == "frugalgpt":
        lookup = (
            {r.id: answer_vectors[i] for i, r in enumerate(ds.requests)}
            if answer_vectors is not None
            else {}
        )
        router = FrugalGPTCascade(lambda request: lookup.get(request.id))
        features = np.array([router.features(ds.requests[i], vectors[i]) for i in train])
        return router.fit(features, labels)
    raise RequestError("routers", f"unknown router {name!r}; known: {', '.join(ROUTERS)}")


def _stats(ds: ReplayDataset, index: np.ndarray) -> tuple[float, float, float, float]:
    return (
        float(ds.weak_quality[index].mean()),
        float(ds.strong_quality[index].mean()),
        float(ds.weak_cost[index].mean()),
        float(ds.strong_cost[index].mean()),
    )


def _curve_metrics(curve: metrics.Curve, qw: float, qs: float, cw: float, cs: float) -> dict:
    return {
        "apgr": metrics.apgr(curve, qw, qs),
        "cpt50": metrics.cpt(curve, 0.5, qw, qs),
        "cpt80": metrics.cpt(curve, 0.8, qw, qs),
        "aiq": metrics.aiq(curve, qw, qs, cw, cs),
        "rate_at_95": metrics.rate_to_reach(curve, QUALITY_SHARE * qs, qw, qs),
    }


def _pick(curve: metrics.Curve, target: float) -> int:
    """Index of the cheapest point reaching `target` quality, else of the best quality."""
    ok = np.flatnonzero(curve.quality >= target - 1e-12)
    if len(ok):
        return int(ok[np.argmin(curve.strong_rate[ok])])
    return int(np.argmax(curve.quality))


def evaluate_score_router(
    name: str,
    ds: ReplayDataset,
    vectors: np.ndarray,
    split: Split,
    answer_vectors: np.ndarray | None = None,
) -> RouterResult:
    """Fit on train, choose the threshold on dev, replay the test stream with it."""
    started = time.perf_counter()
    router = build_score_router(name, ds, vectors, split.train, split.seed, answer_vectors)
    cascade = name in CASCADES
    t = split.test
    if name in CONSTANT:
        # One operating point, nothing to tune; curve numbers would only describe the
        # straight line the metrics draw to the other pure route, so they are left out.
        test = replay_stream(router, ds, vectors, t)
        curve = metrics.curve_from_points(
            [test.strong_call_rate], [test.mean_quality], [test.cost_per_request]
        )
        result = _result(name, ds, split, curve, test, {"threshold": router.threshold})
        reached = test.mean_quality >= QUALITY_SHARE * result.strong_quality - 1e-12
        result.metrics = {"rate_at_95": test.strong_call_rate if reached else float("nan")}
        result.seconds = time.perf_counter() - started
        return result
    dev = replay_stream(router, ds, vectors, split.dev)
    dev_curve = metrics.curve_from_scores(
        dev.scores,
        ds.weak_quality[split.dev],
        ds.strong_quality[split.dev],
        ds.weak_cost[split.dev],
        ds.strong_cost[split.dev],
        cascade,
    )
    j = _pick(dev_curve, QUALITY_SHARE * ds.strong_quality[split.dev].mean())
    router.threshold = float(dev_curve.thresholds[j])
    test = replay_stream(router, ds, vectors, t)
    curve = metrics.curve_from_scores(
        test.scores,
        ds.weak_quality[t],
        ds.strong_quality[t],
        ds.weak_cost[t],
        ds.strong_cost[t],
        cascade,
    )
    result = _result(name, ds, split, curve, test, {"threshold": router.threshold})
    result.metrics["auc"] = metrics.auc(test.scores, _weak_enough(ds)[t])
    result.seconds = time.perf_counter() - started
    return result


def _result(
    name: str,
    ds: ReplayDataset,
    split: Split,
    curve: metrics.Curve,
    test: StreamResult,
    tuned: dict,
) -> RouterResult:
    result = _new_result(
        name,
        ds,
        split,
        curve_rate=curve.strong_rate.tolist(),
        curve_quality=curve.quality.tolist(),
        curve_cost=curve.cost.tolist(),
        tuned=tuned,
        strong_rate=test.strong_call_rate,
        quality=test.mean_quality,
        cost=test.cost_per_request,
        strong_flags=test.strong_called.tolist(),
        note=_note(name, ds),
    )
    result.metrics = _curve_metrics(
        curve, result.weak_quality, result.strong_quality, result.weak_cost, result.strong_cost
    )
    return result


def _new_result(name: str, ds: ReplayDataset, split: Split, **fields) -> RouterResult:
    """A result for router `name` on `split`, with the test slice's always-weak/strong stats."""
    qw, qs, cw, cs = _stats(ds, split.test)
    return RouterResult(
        name, ds.name, split.seed, split.kind, len(split.test), qw, qs, cw, cs, **fields
    )


def run_rar(
    ds: ReplayDataset,
    vectors: np.ndarray,
    stream: np.ndarray,
    config: RouterConfig,
    warm: np.ndarray | None = None,
    relative: bool = False,
) -> StreamResult:
    """One RAR replay: a fresh ArrayMemory (seeded with `warm` when given), then the stream;
    with `relative` memory learns the relative verdict (seed included)."""
    router = RARRouter(ArrayMemory(vectors.shape[1]), config)
    if warm is not None:
        seed_memory(router, ds, vectors, warm, relative)
    return replay_stream(router, ds, vectors, stream, relative)


def _rar_grid() -> list[RouterConfig]:
    configs = []
    for k, sim, share in itertools.product(*RAR_GRID.values()):
        configs.append(RouterConfig(k=k, min_similarity=sim, min_agreeing=2, min_agree_share=share))
    return configs


def _rar_beta_grid(relative: bool = False) -> list[RouterConfig]:
    scores = RAR_BETA_REL_SCORES if relative else RAR_BETA_SCORES
    return [RouterConfig(**RAR_BETA, min_weak_score=score) for score in scores]


def _rar_sweep(config: RouterConfig, relative: bool = False) -> list[RouterConfig]:
    """The test-curve points besides `config`: other agree shares, or other score thresholds."""
    if config.vote == "beta":
        return [
            dataclasses.replace(config, min_weak_score=score)
            for score in (RAR_BETA_REL_SWEEP if relative else RAR_BETA_SWEEP)
            if score != config.min_weak_score
        ]
    return [
        dataclasses.replace(config, min_agree_share=share)
        for share in RAR_SWEEP_SHARES
        if share != config.min_agree_share
    ]


def evaluate_rar(
    ds: ReplayDataset,
    vectors: np.ndarray,
    split: Split,
    warm: bool = False,
    vote: str = "count",
    relative: bool = False,
) -> RouterResult:
    """Tune RAR's thresholds on dev, replay the test stream with them, sweep the curve.

    With `relative` (Beta vote only) memory learns the relative verdict; quality is still
    the recorded quality of the served answer, learning routes still cost both calls.
    """
    if relative and vote != "beta":
        raise RequestError("routers", "the relative verdict is only replayed with the Beta vote")
    started = time.perf_counter()
    seed_rows = split.train if warm else None
    target = QUALITY_SHARE * ds.strong_quality[split.dev[:RAR_DEV_LIMIT]].mean()
    tried = []
    for config in _rar_beta_grid(relative) if vote == "beta" else _rar_grid():
        dev = run_rar(ds, vectors, split.dev[:RAR_DEV_LIMIT], config, seed_rows, relative)
        tried.append((config, dev.strong_call_rate, dev.mean_quality))
    ok = [t for t in tried if t[2] >= target - 1e-12]
    best = min(ok, key=lambda t: t[1]) if ok else max(tried, key=lambda t: t[2])
    config = best[0]
    test = run_rar(ds, vectors, split.test, config, seed_rows, relative)
    points = [(test.strong_call_rate, test.mean_quality, test.cost_per_request)]
    for swept in _rar_sweep(config, relative):
        run = run_rar(ds, vectors, split.test, swept, seed_rows, relative)
        points.append((run.strong_call_rate, run.mean_quality, run.cost_per_request))
    curve = metrics.curve_from_points(*map(list, zip(*points, strict=True)))
    tuned = {
        **dataclasses.asdict(config),
        "dev_strong_rate": best[1],
        "dev_quality": best[2],
        "dev_reached_target": bool(ok),
    }
    name = ("rar-beta" if vote == "beta" else "rar") + ("-rel" if relative else "")
    name += "-warm" if warm else ""
    result = _result(name, ds, split, curve, test, tuned)
    result.seconds = time.perf_counter() - started
    return result


def evaluate(
    name: str,
    ds: ReplayDataset,
    vectors: np.ndarray,
    split: Split,
    answer_vectors: np.ndarray | None = None,
) -> RouterResult:
    """Evaluate router `name`; a router the recording cannot support comes back `skipped`."""
    reason = unavailable_reason(name, ds)
    if reason:
        return _new_result(name, ds, split, note=reason, skipped=True)
    if name in RAR_ROUTERS:
        vote, warm, relative = RAR_ROUTERS[name]
        return evaluate_rar(ds, vectors, split, warm=warm, vote=vote, relative=relative)
    return evaluate_score_router(name, ds, vectors, split, answer_vectors)
