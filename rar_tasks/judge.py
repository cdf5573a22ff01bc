"""Step 3, judge: is the weak answer good enough? Delegates to the configured judge."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rar_tasks.context import RARContext
from rar_tasks.judges import Judgement
from rar_tasks.llm import Generation
from rar_tasks.requests import Request


@task(name="judge", cache_policy=NO_CACHE)
def judge(
    ctx: RARContext, request: Request, weak: Generation, strong: Generation | None
) -> Judgement:
    """Judge the weak answer with `ctx.judge` (agreement, ground truth or LLM)."""
    return ctx.judge.judge(request, weak.text, strong.text if strong else None)
