"""Step 5, memory-update: store the request, its verdict and guide, so similar ones go weak."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rar_tasks.context import RARContext
from rar_tasks.memory import MemoryRecord
from rar_tasks.requests import Request
from rar_tasks.routers import Route


@task(name="memory-update", cache_policy=NO_CACHE)
def memory_update(
    ctx: RARContext,
    request: Request,
    route: Route,
    verdict: str,
    judge_name: str,
    guide: str = "",
    guide_id: str = "",
    guide_source: str = "",
) -> MemoryRecord:
    """Upsert the outcome of a learning route (idempotent by request id).

    Raises:
        MemoryStoreError: the table could not be written; what was stored stays.
    """
    record = MemoryRecord(
        request_id=request.id,
        namespace=request.namespace,
        text=request.text,
        vector=[float(x) for x in route.vector],
        verdict=verdict,
        judge=judge_name,
        guide=guide,
        guide_id=guide_id,
        guide_source=guide_source,
        weak_model=ctx.settings.weak.model,
        strong_model=ctx.settings.strong.model,
    )
    ctx.router.learn(record)
    return record
