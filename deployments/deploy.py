"""Deploy the retraining and maintenance flows to a Prefect process work pool, on cron schedules.

Run against the Prefect API in `PREFECT_API_URL`:

    python -m deployments.deploy --pool rar-process
    prefect worker start --pool rar-process

The flows are loaded from this checkout (`flow.from_source` on the repository folder), so a
worker on the same machine, or with the same checkout at the same path, runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RETRAIN_ENTRYPOINT = "flows/retrain.py:retrain_router"
MAINTAIN_ENTRYPOINT = "flows/maintain.py:maintain_memory"
RETRAIN_DEPLOYMENT = "rar-retrain-router/nightly-retrain"
MAINTAIN_DEPLOYMENT = "rar-maintain-memory/nightly-maintenance"


async def ensure_process_pool(name: str) -> None:
    """Create the process work pool `name` if the Prefect server lacks it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_work_pool(name)
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def deploy(pool: str = "rar-process", retrain_cron: str = "0 3 * * *",
           maintain_cron: str = "30 2 * * *", timezone: str = "UTC",
           retrain_parameters: dict | None = None,
           maintain_parameters: dict | None = None, source: Path = REPO) -> dict[str, str]:
    """Create or update both deployments and return their ids by name.

    Args:
        pool: process work pool (created if missing).
        retrain_cron / maintain_cron: schedules; maintenance runs first so that retraining
            reads a deduplicated memory.
        timezone: of the cron schedules.
        retrain_parameters / maintain_parameters: flow parameters stored on the deployments.
        source: folder holding `flows/` (this checkout by default).

    Example:
        >>> deploy(pool="rar-process", retrain_parameters={"target_strong_rate": 0.25})
    """
    from prefect import flow
    from prefect.client.schemas.schedules import CronSchedule

    asyncio.run(ensure_process_pool(pool))
    ids = {}
    for entrypoint, name, cron, params in (
        (MAINTAIN_ENTRYPOINT, "nightly-maintenance", maintain_cron, maintain_parameters),
        (RETRAIN_ENTRYPOINT, "nightly-retrain", retrain_cron, retrain_parameters),
    ):
        loaded = flow.from_source(source=str(source), entrypoint=entrypoint)
        deployment_id = loaded.deploy(
            name=name, work_pool_name=pool, parameters=params or {},
            schedules=[CronSchedule(cron=cron, timezone=timezone)],
            tags=["rar"], build=False, push=False, print_next_steps=False,
        )
        ids[f"{loaded.name}/{name}"] = str(deployment_id)
    return ids


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="rar-process")
    parser.add_argument("--retrain-cron", default="0 3 * * *")
    parser.add_argument("--maintain-cron", default="30 2 * * *")
    parser.add_argument("--timezone", default="UTC")
    parser.add_argument("--retrain-params", default="{}", help="JSON object of parameters.")
    parser.add_argument("--maintain-params", default="{}", help="JSON object of parameters.")
    args = parser.parse_args(argv)
    ids = deploy(args.pool, args.retrain_cron, args.maintain_cron, args.timezone,
                 json.loads(args.retrain_params), json.loads(args.maintain_params))
    print(json.dumps(ids, indent=2))


if __name__ == "__main__":
    main()
