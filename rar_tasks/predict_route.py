"""Step 1, predict-route: embed the request, search memory, decide `weak` or `learn`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rar_tasks.context import RARContext
from rar_tasks.requests import Request
from rar_tasks.routers import Route


@task(name="predict-route", cache_policy=NO_CACHE)
def predict_route(ctx: RARContext, request: Request) -> Route:
    """Embed `request.text` and ask the router for a route.

    Returns:
        The `Route`, carrying the request's embedding in `route.vector` for memory-update.

    Example:
        >>> route = predict_route.fn(ctx, request)   # plain function, no Prefect run
    """
    vector = ctx.embedder.embed([request.text])[0]
    return ctx.router.route(request, vector)
