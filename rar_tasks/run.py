"""Serve a stream of requests and summarise it: the body of `rar run` and of the serve flow.

The summary compares RAR with always-weak and always-strong on the same requests. Those
baselines reuse RAR's own calls where one exists (a learning route ran both models) and make
evaluation-only calls otherwise; evaluation calls never count towards RAR's cost or
strong-call rate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rar_tasks.config import Settings
from rar_tasks.context import RARContext
from rar_tasks.errors import RequestError
from rar_tasks.pipeline import LIGHT, Served, Steps, serve_request
from rar_tasks.requests import Request, load_gsm8k, load_jsonl, load_mmlu, sample

log = logging.getLogger("rar.run")

DEFAULT_SUBJECTS = ("high_school_psychology", "high_school_geography")


def load_stream(
    settings: Settings,
    dataset: str,
    subjects: list[str] | None,
    input_path: str | None,
    limit: int | None,
    seed: int,
) -> list[Request]:
    """The requests of a run, shuffled with `seed` and cut to `limit`.

    Raises:
        RequestError: unknown dataset or subject, unreadable input, or a bad `limit`.
    """
    if limit is not None and limit < 1:
        raise RequestError("limit", f"must be >= 1, got {limit}")
    root = settings.shared_data_root()
    if input_path:
        requests = load_jsonl(
            Path(input_path), settings.max_request_chars, settings.memory.namespace
        )
    elif dataset == "mmlu":
        requests = load_mmlu(root, list(subjects or DEFAULT_SUBJECTS))
    elif dataset == "gsm8k":
        requests = load_gsm8k(root)
    else:
        raise RequestError(
            "dataset", f"must be 'mmlu' or 'gsm8k' (or give --input), got {dataset!r}"
        )
    return sample(requests, limit, seed)


def run_stream(
    ctx: RARContext,
    requests: list[Request],
    steps: Steps = LIGHT,
    evaluate: bool = True,
    on_served: Callable[[Served], None] | None = None,
) -> list[Served]:
    out = []
    for request in requests:
        served = serve_request(ctx, request, steps, evaluate)
        out.append(served)
        if on_served:
            on_served(served)
    return out


def _rate(flags: list[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def summarise(
    ctx: RARContext, requests: list[Request], served: list[Served], run_seconds: float
) -> dict:
    """Figures of a run, as printed by `rar run` and written to `summary.json`."""
    n = len(served)
    labelled = [s.evaluation for s in served if "rar_correct" in s.evaluation]
    overhead_ms = np.array([s.overhead_s * 1000 for s in served]) if served else np.zeros(1)
    # Baseline costs are known only when every request has both unguided answers (evaluate).
    complete = all("strong_cost" in s.evaluation and "weak_cost" in s.evaluation for s in served)
    strong_cost = sum(s.evaluation["strong_cost"] for s in served) if complete else None
    weak_cost = sum(s.evaluation["weak_cost"] for s in served) if complete else None
    rar_cost = sum(s.cost for s in served)
    routes = {k: sum(s.route == k for s in served) for k in ("weak", "learn", "strong")}
    return {
        "requests_served": n,
        "routes": routes,
        "strong_call_rate": _rate([s.strong_called for s in served]),
        "accuracy": {
            "rar": _rate([e["rar_correct"] for e in labelled]),
            "always_weak": _rate([e["weak_correct"] for e in labelled if "weak_correct" in e]),
            "always_strong": _rate(
                [e["strong_correct"] for e in labelled if "strong_correct" in e]
            ),
            "labelled_requests": len(labelled),
        },
        "guides_written": sum(bool(s.new_guide_id) for s in served),
        "weak_routes_with_guide": sum(s.route == "weak" and bool(s.guide_id_used) for s in served),
        "memory_rows": ctx.memory.count(),
        "memory_guides": ctx.memory.guide_count(),
        "cost_usd": {
            "rar": rar_cost,
            "always_strong": strong_cost,
            "always_weak": weak_cost,
            "rar_share_of_strong": rar_cost / strong_cost if strong_cost else None,
        },
        "routing_overhead_ms": {
            "p50": float(np.percentile(overhead_ms, 50)),
            "p95": float(np.percentile(overhead_ms, 95)),
        },
        "model_seconds": sum(s.model_s for s in served),
        "run_seconds": run_seconds,
        "models": {"weak": ctx.settings.weak.model, "strong": ctx.settings.strong.model},
        "judge": ctx.judge.name,
        "strong_called_sequence": [int(s.strong_called) for s in served],
    }


def served_row(s: Served) -> dict:
    """One line of `requests.jsonl`: what RAR did for a request, without prompt text."""
    return {
        "request_id": s.request_id,
        "route": s.route,
        "reason": s.reason,
        "similarity": s.similarity,
        "guide_id_used": s.guide_id_used,
        "verdict": s.verdict,
        "new_guide_id": s.new_guide_id,
        "strong_called": s.strong_called,
        "cost": s.cost,
        "overhead_ms": s.overhead_s * 1000,
        "model_s": s.model_s,
        "correct": s.evaluation.get("rar_correct"),
    }


def write_outputs(summary: dict, rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    """Write `summary.json`, `requests.jsonl` (one `served_row` a line) and `summary.png`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    with (out_dir / "requests.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return summary_path, plot_summary(summary, out_dir / "summary.png")


def plot_summary(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seq = np.array(summary["strong_called_sequence"], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if len(seq):
        x = np.arange(1, len(seq) + 1)
        window = max(1, min(25, len(seq) // 4 or 1))
        rolling = np.convolve(seq, np.ones(window) / window, mode="valid")
        left.plot(x, np.cumsum(seq) / x, label="cumulative")
        left.plot(x[window - 1 :], rolling, label=f"last {window}")
    left.set_xlabel("request in stream")
    left.set_ylabel("strong-call rate")
    left.set_ylim(0, 1.05)
    left.set_title("RAR strong-call rate over the stream")
    left.legend()
    acc = summary["accuracy"]
    names = ["always-weak", "RAR", "always-strong"]
    values = [acc["always_weak"] or 0, acc["rar"] or 0, acc["always_strong"] or 0]
    bars = right.bar(names, values, color=["#9ecae1", "#3182bd", "#08519c"])
    right.bar_label(bars, labels=[f"{v:.1%}" for v in values])
    right.set_ylim(0, 1)
    right.set_ylabel("accuracy")
    cost = summary["cost_usd"]
    # "$" starts mathtext in matplotlib, so costs are written in USD.
    strong = cost["always_strong"]
    strong_text = "n/a" if strong is None else f"{strong:.4f} USD"
    right.set_title(f"cost: RAR {cost['rar']:.4f} USD vs always-strong {strong_text}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
