"""One request through RAR's five steps, on either of two engines.

`LIGHT` calls the steps' plain functions: no Prefect run per request, which matters because a
Prefect flow run costs about a second on small machines. `PREFECT` calls them as Prefect
tasks, for use inside a flow (`flows.serve.serve_stream`), where each step is a task run
with its own state and timing in the Prefect UI. Both run the same code in the same order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rar_tasks.context import RARContext
from rar_tasks.errors import MemoryStoreError
from rar_tasks.judge import judge
from rar_tasks.judges import matches_label
from rar_tasks.llm import Generation
from rar_tasks.memory import GUIDE_OK, STRONG_NEEDED, WEAK_OK
from rar_tasks.memory_update import memory_update
from rar_tasks.predict_route import predict_route
from rar_tasks.requests import Request
from rar_tasks.routers import LEARN, STRONG, WEAK, Route
from rar_tasks.strong_guide import strong_answer, write_guide
from rar_tasks.weak_generate import weak_generate

log = logging.getLogger("rar.serve")


@dataclass(frozen=True)
class Steps:
    predict_route: Callable
    weak_generate: Callable
    judge: Callable
    strong_answer: Callable
    write_guide: Callable
    memory_update: Callable


LIGHT = Steps(
    predict_route.fn, weak_generate.fn, judge.fn, strong_answer.fn, write_guide.fn, memory_update.fn
)
PREFECT = Steps(predict_route, weak_generate, judge, strong_answer, write_guide, memory_update)


@dataclass
class Call:
    """A model call made for a request, and why: serve, learn, or evaluate (baselines only)."""

    role: str
    purpose: str
    generation: Generation


@dataclass
class Served:
    """What RAR did for one request and what it cost."""

    request_id: str
    route: str
    reason: str
    similarity: float | None
    guide_id_used: str
    answer: str
    answer_model: str
    verdict: str | None = None
    new_guide_id: str = ""
    calls: list[Call] = field(default_factory=list)
    wall_s: float = 0.0
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def strong_called(self) -> bool:
        return any(c.role == "strong" and c.purpose != "evaluate" for c in self.calls)

    @property
    def cost(self) -> float:
        return sum(c.generation.cost for c in self.calls if c.purpose != "evaluate")

    @property
    def model_s(self) -> float:
        return sum(c.generation.latency_s for c in self.calls)

    @property
    def overhead_s(self) -> float:
        """Wall time not spent inside model calls: embedding, search, judging, memory."""
        return max(self.wall_s - self.model_s, 0.0)


def serve_request(
    ctx: RARContext, request: Request, steps: Steps = LIGHT, evaluate: bool = False
) -> Served:
    """Route and answer one request, learning when the route says so.

    Args:
        ctx: settings, embedder, memory, router and judge.
        request: a validated request.
        steps: `LIGHT` (plain functions) or `PREFECT` (task runs, inside a flow).
        evaluate: also make the calls needed to score always-weak and always-strong on this
            request (marked `evaluate`, excluded from RAR's cost and strong-call rate).
    """
    started = time.perf_counter()
    route: Route = steps.predict_route(ctx, request)
    if route.kind == STRONG:
        served = _serve_strong(ctx, request, route, steps)
    elif route.kind == LEARN:
        served = _learn(ctx, request, route, steps)
    else:
        weak = steps.weak_generate(ctx, request, route.guide)
        served = _served(request, route, weak.text, weak.model)
        served.calls.append(Call("weak", "serve", weak))
    if evaluate:
        _evaluate(ctx, request, route, served, steps)
    if request.label is not None:
        served.evaluation["rar_correct"] = matches_label(request, served.answer)
    served.wall_s = time.perf_counter() - started
    log.info(
        "event=request_served request_id=%s route=%s verdict=%s strong_called=%s cost=%.6f "
        "wall_s=%.3f overhead_s=%.4f",
        request.id,
        served.route,
        served.verdict,
        served.strong_called,
        served.cost,
        served.wall_s,
        served.overhead_s,
    )
    return served


def _served(request: Request, route: Route, answer: str, model: str) -> Served:
    return Served(
        request.id, route.kind, route.reason, route.top_similarity, route.guide_id, answer, model
    )


def _serve_strong(ctx, request, route, steps) -> Served:
    strong = steps.strong_answer(ctx, request)
    served = _served(request, route, strong.text, strong.model)
    served.calls.append(Call("strong", "serve", strong))
    return served


def _learn(ctx: RARContext, request: Request, route: Route, steps: Steps) -> Served:
    weak = steps.weak_generate(ctx, request, route.guide)
    strong = steps.strong_answer(ctx, request)
    served = _served(request, route, strong.text, strong.model)
    served.calls += [Call("weak", "learn", weak), Call("strong", "serve", strong)]
    judgement = steps.judge(ctx, request, weak, strong)
    _add_judge_call(served, judgement)
    _count_guide_use(ctx, route, judgement.good)
    guide, guide_id, source = route.guide, route.guide_id, route.guide_source
    if judgement.good:
        verdict = GUIDE_OK if route.guide else WEAK_OK
    else:
        verdict = STRONG_NEEDED
        guide, guide_id = "", ""
        if ctx.settings.guide.enabled:
            guide, guide_id, call = steps.write_guide(ctx, request)
            served.calls.append(Call("strong", "learn", call))
            source = request.id
            if guide and ctx.settings.guide.check_with_weak:
                retry = steps.weak_generate(ctx, request, guide)
                served.calls.append(Call("weak", "learn", retry))
                second = steps.judge(ctx, request, retry, strong)
                _add_judge_call(served, second)
                if second.good:
                    verdict = GUIDE_OK
            served.new_guide_id = guide_id
    steps.memory_update(ctx, request, route, verdict, judgement.judge, guide, guide_id, source)
    served.verdict = verdict
    if not route.guide:
        _baseline(served, "weak", weak)
    _baseline(served, "strong", strong)
    return served


def _count_guide_use(ctx: RARContext, route: Route, helped: bool) -> None:
    """Usage counters of the guide the weak model just used; a failure costs no request."""
    if not route.guide_id or not hasattr(ctx.memory, "record_guide_use"):
        return
    try:
        ctx.memory.record_guide_use(route.guide_id, helped)
    except MemoryStoreError as exc:
        log.warning("event=guide_count_failed guide_id=%s error=%s", route.guide_id, exc)


def _baseline(served: Served, side: str, call: Generation) -> None:
    """Record an unguided answer of one model: what always-weak / always-strong would give."""
    served.evaluation[side] = call.text
    served.evaluation[f"{side}_cost"] = call.cost


def _add_judge_call(served: Served, judgement) -> None:
    if judgement.call is not None:
        served.calls.append(Call("strong", "learn", judgement.call))


def _evaluate(
    ctx: RARContext, request: Request, route: Route, served: Served, steps: Steps
) -> None:
    """Complete `served.evaluation` with the unguided weak and strong answers and costs."""
    from rar_tasks.weak_generate import answer_with

    ev = served.evaluation
    if "weak" not in ev:
        # Only an unguided weak route's own call is what always-weak would have answered.
        if served.route == WEAK and not route.guide:
            _baseline(served, "weak", served.calls[0].generation)
        else:
            call = answer_with(ctx, "weak", request)
            served.calls.append(Call("weak", "evaluate", call))
            _baseline(served, "weak", call)
    if "strong" not in ev:
        first_strong = next((c for c in served.calls if c.role == "strong"), None)
        if served.route == STRONG and first_strong is not None:
            _baseline(served, "strong", first_strong.generation)
        else:
            call = answer_with(ctx, "strong", request)
            served.calls.append(Call("strong", "evaluate", call))
            _baseline(served, "strong", call)
    if request.label is not None:
        ev["weak_correct"] = matches_label(request, ev["weak"])
        ev["strong_correct"] = matches_label(request, ev["strong"])
