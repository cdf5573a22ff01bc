"""Per-request routing overhead of RAR's engines, measured on real MMLU requests.

Engines: `light` (the steps' plain functions, what `rar run` uses), `flow` (one Prefect flow
for the stream, each step a task run), and `flow-per-request` (a Prefect flow run for every
request, what serving each request as its own flow would cost). Both models are SmolLM2-135M
so that model time is small; overhead is wall time minus time inside model calls.

Run: .venv/bin/python benchmarks/engine_overhead.py [--requests 20]
Writes benchmarks/results/engine_overhead.md and prints the same table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(engine: str, ctx, requests: list) -> tuple[list[float], list[float], float]:
    """Serve `requests` on one engine; return per-request wall and model seconds, and total."""
    from prefect import flow

    from rar_tasks.pipeline import LIGHT, PREFECT, serve_request

    walls: list[float] = []
    model_s: list[float] = []

    def one(request, steps) -> None:
        t = time.perf_counter()
        model_s.append(serve_request(ctx, request, steps).model_s)
        walls.append(time.perf_counter() - t)

    @flow(name="bench-stream")
    def stream() -> None:
        for request in requests:
            one(request, PREFECT)

    @flow(name="bench-one-request")
    def single(request) -> None:
        one(request, PREFECT)

    started = time.perf_counter()
    if engine == "light":
        for request in requests:
            one(request, LIGHT)
    elif engine == "flow":
        stream()
    else:
        for request in requests:
            t = time.perf_counter()
            single(request)
            walls[-1] = time.perf_counter() - t  # the whole flow run, not just the steps
    return walls, model_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rar-bench-prefect-"))
    os.environ.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from rar_tasks.config import load_settings
    from rar_tasks.context import build_context
    from rar_tasks.logs import setup_logging
    from rar_tasks.pipeline import LIGHT, serve_request
    from rar_tasks.run import load_stream

    setup_logging("WARNING")
    rows = []
    for engine in ("light", "flow", "flow-per-request"):
        data_dir = tempfile.mkdtemp(prefix=f"rar-bench-{engine}-")
        settings = load_settings(
            overrides={
                "weak": {"model": "gguf/smollm2-135m"},
                "strong": {"model": "gguf/smollm2-135m"},
                "memory": {"data_dir": data_dir},
            }
        )
        ctx = build_context(settings)
        requests = load_stream(settings, "mmlu", None, None, args.requests, seed=1)
        serve_request(ctx, requests[0], LIGHT)  # load the model outside the measurement
        walls, model_s, total = measure(engine, ctx, requests[1:])
        # Wall time per request outside model calls: embedding, search, judging, memory
        # writes, and whatever the engine adds (task runs, flow runs).
        overhead = np.array(walls) - np.array(model_s)
        rows.append(
            (
                engine,
                len(walls),
                np.percentile(overhead, 50) * 1000,
                np.percentile(overhead, 95) * 1000,
                total,
            )
        )

    lines = [
        "| engine | requests | overhead p50 (ms) | overhead p95 (ms) | total wall (s) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {e} | {n} | {p50:.1f} | {p95:.1f} | {t:.1f} |" for e, n, p50, p95, t in rows]
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).parent / "results" / "engine_overhead.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(__doc__.split("\n\n")[0] + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
