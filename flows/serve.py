"""Prefect flow that serves a stream of requests through RAR's five tasks.

Each request's steps run as Prefect task runs, so the UI shows every route, model call and
memory write with its timing. This costs about a second for the flow run and some tens of
milliseconds per task run; `rar run` therefore uses the light path by default and this flow
with `--engine flow` (and for scheduled or deployed batch serving).
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from rar_tasks.config import load_settings
from rar_tasks.context import build_context
from rar_tasks.pipeline import PREFECT
from rar_tasks.run import load_stream, run_stream, served_row, summarise


@flow(name="rar-serve-stream")
def serve_stream(
    dataset: str = "mmlu",
    subjects: list[str] | None = None,
    input_path: str | None = None,
    limit: int | None = 20,
    seed: int = 0,
    config_path: str | None = None,
    overrides: dict | None = None,
    evaluate: bool = True,
) -> dict:
    """Serve `limit` requests of a dataset (or a JSONL file) and return the run summary.

    Args:
        dataset: `mmlu` or `gsm8k`; ignored when `input_path` is given.
        subjects: MMLU subjects (default: high-school psychology and geography).
        input_path: a JSONL file of requests (`text`, optional `label`, `choices`, ...).
        limit: how many requests, after a seeded shuffle.
        seed: shuffle seed.
        config_path: TOML configuration; `overrides` is applied on top.
        evaluate: also score always-weak and always-strong on the same requests.

    Example:
        >>> from flows.serve import serve_stream
        >>> summary = serve_stream(subjects=["high_school_geography"], limit=10)
    """
    logger = get_run_logger()
    settings = load_settings(config_path, overrides)
    ctx = build_context(settings)
    requests = load_stream(settings, dataset, subjects, input_path, limit, seed)
    started = time.perf_counter()
    served = run_stream(ctx, requests, PREFECT, evaluate)
    summary = summarise(ctx, requests, served, time.perf_counter() - started)
    logger.info(
        "event=stream_served requests=%d strong_call_rate=%.3f memory_rows=%d",
        summary["requests_served"],
        summary["strong_call_rate"] or 0.0,
        summary["memory_rows"],
    )
    # Per-request rows travel with the summary so that callers can write requests.jsonl.
    summary["served_rows"] = [served_row(s) for s in served]
    return summary
