"""What every step needs, built once per process: settings, embedder, memory, router, judge."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rar_tasks.config import Settings
from rar_tasks.embed import Embedder, make_embedder
from rar_tasks.judges import Judge, make_judge
from rar_tasks.llm import ensure_litellm
from rar_tasks.memory import LanceMemory
from rar_tasks.routers import RARRouter

log = logging.getLogger("rar.context")


@dataclass
class RARContext:
    settings: Settings
    embedder: Embedder
    memory: LanceMemory
    router: RARRouter
    judge: Judge


def build_context(settings: Settings, embedder: Embedder | None = None) -> RARContext:
    """Load the embedder, open memory in `settings.data_dir()`, build the router and judge."""
    embedder = embedder or make_embedder(settings.embedder)
    # Load the embedder and import LiteLLM up front (seconds each), so that neither start-up
    # is charged to the first request.
    dim = int(embedder.embed(["warm-up"]).shape[1])
    ensure_litellm(settings)
    memory = LanceMemory(settings.data_dir() / "memory.lance", dim, settings.memory.table)
    router = RARRouter(memory, settings.router)
    judge = make_judge(settings.judge, settings)
    log.info(
        "event=context_ready data_dir=%s memory_rows=%d judge=%s",
        settings.data_dir(),
        memory.count(),
        judge.name,
    )
    return RARContext(settings, embedder, memory, router, judge)
