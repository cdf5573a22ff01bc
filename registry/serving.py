"""Serving from the registry: route with the version aliased `champion`, and follow the alias.

`ChampionRouter` checks the alias every N requests or S seconds (whichever comes first) and
loads a new version when it moved. Any failure (registry unreachable, alias gone, files
missing or corrupt) is logged and the router keeps serving with the version it has; before any
version loaded it serves with its fallback (RAR's memory router).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rar_tasks.memory import Memory, MemoryRecord
from rar_tasks.requests import Request
from rar_tasks.routers import Route, Router
from registry.errors import RegistryError
from registry.router_version import FittedRouter
from registry.store import CHAMPION, RegistryConfig, RouterRegistry

log = logging.getLogger("rar.registry")


@dataclass
class FollowStats:
    """What following the alias cost: checks made, their total time, reloads, last error."""

    checks: int = 0
    check_seconds: float = 0.0
    reloads: int = 0
    errors: int = 0
    last_error: str = ""

    @property
    def mean_check_ms(self) -> float:
        return 1000.0 * self.check_seconds / self.checks if self.checks else 0.0


class ChampionRouter:
    """A router that serves the registry's champion and picks up a moved alias.

    Args:
        registry: where versions live.
        memory: where `learn` writes outcomes (serving keeps learning as RAR does).
        fallback: router used until a version has loaded (e.g. `RARRouter`).
        alias: the alias to follow.
        check_every_requests: check the alias after this many routed requests.
        check_every_s: ... or after this many seconds, whichever comes first.
        clock: monotonic clock, replaceable in tests.

    Example:
        >>> router = ChampionRouter(RouterRegistry(RegistryConfig.resolve()), ctx.memory,
        ...                         fallback=ctx.router)
        >>> route = router.route(request, vector)
    """

    name = "champion"

    def __init__(self, registry: RouterRegistry, memory: Memory | None = None,
                 fallback: Router | None = None, alias: str = CHAMPION,
                 check_every_requests: int = 100, check_every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.registry = registry
        self.memory = memory
        self.fallback = fallback
        self.alias = alias
        self.check_every_requests = check_every_requests
        self.check_every_s = check_every_s
        self.clock = clock
        self.current: FittedRouter | None = None
        self.stats = FollowStats()
        self._lock = threading.Lock()
        self._since_check = 0
        self._last_check = clock()
        self.refresh()

    @property
    def version(self) -> str | None:
        """The version serving now; None while the fallback serves."""
        return self.current.version if self.current is not None else None

    def refresh(self) -> bool:
        """Check the alias now and load the version it names if that is new.

        Returns:
            True when a new version was loaded. Never raises for registry or file problems:
            they are logged, counted in `stats`, and the current version stays.
        """
        if not self._lock.acquire(blocking=False):
            return False  # another thread is checking
        started = time.perf_counter()
        try:
            target = self.registry.resolve(self.alias)
            if target == self.version:
                return False
            loaded = self.registry.load(target, self.memory)
            previous, self.current = self.version, loaded
            self.stats.reloads += 1
            log.info("event=router_version_loaded alias=%s version=%s previous=%s",
                     self.alias, target, previous)
            return True
        except Exception as exc:  # any failure keeps the current version serving
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            log.warning("event=router_version_check_failed alias=%s keeping=%s error=%s",
                        self.alias, self.version or "fallback", str(exc)[:200])
            return False
        finally:
            self.stats.checks += 1
            self.stats.check_seconds += time.perf_counter() - started
            self._since_check = 0
            self._last_check = self.clock()
            self._lock.release()

    def _due(self) -> bool:
        return (self._since_check >= self.check_every_requests
                or self.clock() - self._last_check >= self.check_every_s)

    def route(self, request: Request, vector: np.ndarray) -> Route:
        self._since_check += 1
        if self._due():
            self.refresh()
        router = self.current if self.current is not None else self.fallback
        if router is None:
            raise RegistryError(
                f"no router version is aliased {self.alias!r} in {self.registry.name!r} and no "
                f"fallback router was given (last error: {self.stats.last_error or 'none'})"
            )
        return router.route(request, vector)

    def learn(self, record: MemoryRecord) -> None:
        if self.memory is not None:
            self.memory.upsert([record])
        elif self.fallback is not None:
            self.fallback.learn(record)


def use_champion(ctx, config: RegistryConfig | None = None, **kwargs) -> ChampionRouter:
    """Make a built `RARContext` serve from the registry's champion (RAR's memory router
    stays as the fallback). Every serving path that takes the context then follows the alias.

    Args:
        ctx: from `rar_tasks.context.build_context`.
        config: registry location and name; default `RegistryConfig.resolve(ctx's data dir)`.
        kwargs: passed to `ChampionRouter` (`check_every_requests`, `check_every_s`, `alias`).

    Example:
        >>> ctx = build_context(load_settings())
        >>> use_champion(ctx, check_every_requests=50)
        >>> served = serve_request(ctx, request)
    """
    config = config or RegistryConfig.resolve(ctx.settings.data_dir())
    router = ChampionRouter(RouterRegistry(config), ctx.memory, fallback=ctx.router, **kwargs)
    ctx.router = router
    return router
