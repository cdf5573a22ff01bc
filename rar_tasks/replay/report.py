"""Tables and plots of a replay: one Markdown table per split kind, and two PNG figures.

Numbers over seeds are shown as mean ± sd. Plots are drawn for the first seed of the
by-question split: cost-quality curves of every router, and each learning router's
strong-call rate over the stream (rolling window).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rar_tasks.replay.evaluate import QUALITY_SHARE, ROUTERS, RouterResult
from rar_tasks.replay.metrics import rolling_rate

STREAM_COLOURS = {
    "rar": "tab:blue",
    "rar-warm": "tab:green",
    "rar-beta": "tab:purple",
    "rar-beta-warm": "tab:olive",
    "rar-beta-rel": "tab:red",
    "rar-beta-rel-warm": "tab:brown",
    "logistic": "tab:grey",
}

COLUMNS = (
    ("rate_at_95", "strong-call rate at 95 % (curve)", "pct"),
    ("strong_rate", "strong-call rate (dev-tuned)", "pct"),
    ("quality_share", "quality / always-strong (dev-tuned)", "pct"),
    ("cost_share", "cost / always-strong (dev-tuned)", "pct"),
    ("apgr", "APGR", "num"),
    ("cpt50", "CPT(50%)", "pct"),
    ("cpt80", "CPT(80%)", "pct"),
    ("aiq", "AIQ", "num"),
)


def flat(result: RouterResult) -> dict[str, float]:
    """The per-run numbers of the table, in one flat mapping."""
    values = dict(result.metrics)
    values["strong_rate"] = result.strong_rate
    values["quality"] = result.quality
    values["quality_share"] = result.quality / result.strong_quality
    values["cost_share"] = result.cost / result.strong_cost
    return values


def _fmt(values: list[float], kind: str) -> str:
    values = [v for v in values if v is not None]
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "not reached" if values else "—"
    scale, unit = (100.0, "%") if kind == "pct" else (1.0, "")
    mean = np.mean(finite) * scale
    text = f"{mean:.1f}{unit}" if kind == "pct" else f"{mean:.3f}"
    if len(finite) > 1:
        sd = np.std(finite, ddof=1) * scale
        text += f" ± {sd:.1f}" if kind == "pct" else f" ± {sd:.3f}"
    if len(finite) < len(values):
        text += f" ({len(values) - len(finite)}/{len(values)} not reached)"
    return text


def markdown_table(results: list[RouterResult], split: str) -> str:
    """One row per router over all seeds of `split`; skipped routers say why."""
    rows = [r for r in results if r.split == split]
    if not rows:
        return ""
    by_router: dict[str, list[RouterResult]] = defaultdict(list)
    for r in rows:
        by_router[r.router].append(r)
    first = rows[0]
    seeds = sorted({r.seed for r in rows})
    strong = [r.strong_quality for r in rows if r.router == "always-strong"] or [
        first.strong_quality
    ]
    lines = [
        f"### {first.dataset}, split by {split}: {first.n_test} test requests, seeds {seeds}",
        "",
        f"Always-strong quality {np.mean(strong):.3f}; target {QUALITY_SHARE:.0%} of it "
        f"= {QUALITY_SHARE * np.mean(strong):.3f}. Always-weak quality "
        f"{np.mean([r.weak_quality for r in rows]):.3f}.",
        "",
        "| router | " + " | ".join(title for _, title, _ in COLUMNS) + " | note |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for name in ROUTERS:
        runs = by_router.get(name)
        if not runs:
            continue
        if all(r.skipped for r in runs):
            lines.append(
                f"| {name} | " + " | ".join("—" for _ in COLUMNS) + f" | not run: {runs[0].note} |"
            )
            continue
        values = [flat(r) for r in runs if not r.skipped]
        cells = [_fmt([v.get(key) for v in values], kind) for key, _, kind in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {runs[0].note} |")
    return "\n".join(lines) + "\n"


def plot_curves(results: list[RouterResult], path: Path) -> None:
    """Quality against strong-call rate for every router (first seed, by-question split)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _first_seed(results)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in rows:
        if r.skipped:
            continue
        rate = [0.0, *r.curve_rate, 1.0]
        qual = [r.weak_quality, *r.curve_quality, r.strong_quality]
        order = np.argsort(rate, kind="stable")
        style = "o-" if r.router.startswith("rar") else "-"
        if r.router in ("always-weak", "always-strong"):
            ax.plot([r.strong_rate], [r.quality], "s", label=r.router)
            continue
        (line,) = ax.plot(
            np.array(rate)[order], np.array(qual)[order], style, label=r.router, markersize=3
        )
        ax.plot([r.strong_rate], [r.quality], "*", color=line.get_color(), markersize=11)
    if rows:
        target = QUALITY_SHARE * rows[0].strong_quality
        ax.axhline(target, color="grey", linestyle=":", label=f"{QUALITY_SHARE:.0%} of strong")
        ax.set_title(f"{rows[0].dataset}: cost-quality (seed {rows[0].seed}; ★ = dev-tuned)")
    ax.set_xlabel("strong-call rate (learning calls included)")
    ax.set_ylabel("quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_stream(results: list[RouterResult], path: Path) -> None:
    """Rolling strong-call rate along the test stream for RAR (every seed) and, for
    comparison, the dev-tuned logistic router."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    rows = [
        r for r in results if r.split == "question" and not r.skipped and r.router in STREAM_COLOURS
    ]
    for r in sorted(rows, key=lambda r: (r.router, r.seed)):
        flags = np.array(r.strong_flags, dtype=bool)
        window = max(20, len(flags) // 10)
        first = r.seed == min(x.seed for x in rows if x.router == r.router)
        ax.plot(
            np.arange(1, len(flags) + 1),
            rolling_rate(flags, window),
            linewidth=1,
            color=STREAM_COLOURS[r.router],
            alpha=0.8,
            label=f"{r.router} (window {window}, one line a seed)" if first else None,
        )
    ax.set_xlabel("requests served")
    ax.set_ylabel("strong-call rate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if rows:
        ax.set_title(f"{rows[0].dataset}: strong-call rate over the stream")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _first_seed(results: list[RouterResult]) -> list[RouterResult]:
    rows = [r for r in results if r.split == "question"] or list(results)
    if not rows:
        return []
    seed = min(r.seed for r in rows)
    return [r for r in rows if r.seed == seed]


def write_report(results: list[RouterResult], out_dir: Path, header: str = "") -> dict[str, Path]:
    """Write `replay.md`, `results.json`, `cost_quality.png` and `stream.png` to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    splits = sorted({r.split for r in results}, key=lambda s: s != "question")
    table = header + "\n".join(markdown_table(results, s) for s in splits)
    paths = {
        "table": out_dir / "replay.md",
        "results": out_dir / "results.json",
        "curves": out_dir / "cost_quality.png",
        "stream": out_dir / "stream.png",
    }
    paths["table"].write_text(table)
    paths["results"].write_text(json.dumps([asdict(r) for r in results], default=float))
    plot_curves(results, paths["curves"])
    plot_stream(results, paths["stream"])
    return paths
