"""Serve both flows on their schedules from one long-running process, without a work pool.

    python -m deployments.serve

The simplest way to run the schedules on one machine; `deployments.deploy` plus a worker is
the way to run them elsewhere.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from prefect import serve

    from flows.maintain import maintain_memory
    from flows.retrain import retrain_router

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain-cron", default="0 3 * * *")
    parser.add_argument("--maintain-cron", default="30 2 * * *")
    args = parser.parse_args(argv)
    serve(
        maintain_memory.to_deployment(name="nightly-maintenance", cron=args.maintain_cron),
        retrain_router.to_deployment(name="nightly-retrain", cron=args.retrain_cron),
    )


if __name__ == "__main__":
    main()
