"""A real retraining run on recorded outcomes: champion and challenger on the same holdout.

Memory is filled with RouteLLM's MMLU recordings in a seeded stream order (all-MiniLM-L6-v2
embedding of the real prompt; verdict: was Mixtral-8x7B right), no resampling. The retraining
flow runs once on the first part of the stream (its version becomes champion), then again
after the rest has arrived, comparing the new candidate with that champion on the newest
entries, as a nightly schedule would.

    python -m benchmarks.retrain_recorded_run --data-dir /tmp/rar-retrain-recorded

Writes `benchmarks/results/retrain_recorded_run.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from benchmarks.retrain_bench import OUT, recorded_mmlu, write_memory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/tmp/rar-retrain-recorded")
    parser.add_argument("--first-share", type=float, default=0.5,
                        help="Share of the stream in memory at the first retraining.")
    parser.add_argument("--target-strong-rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from flows.retrain import retrain_router

    folder = Path(args.data_dir).resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    vectors, good, _ = recorded_mmlu(None)
    order = np.random.default_rng(args.seed).permutation(len(vectors))
    cut = int(len(order) * args.first_share)
    overrides = {"memory": {"data_dir": str(folder)}}
    runs = []
    for start, stop in ((0, cut), (cut, len(order))):
        part = order[start:stop]
        write_memory(folder, vectors[part], good[part], part, start=start)
        result = retrain_router(overrides=overrides,
                                target_strong_rate=args.target_strong_rate)
        runs.append(result)
        print(json.dumps(result, indent=2, default=str))
    OUT.mkdir(exist_ok=True)
    (OUT / "retrain_recorded_run.json").write_text(json.dumps(runs, indent=2, default=str))
    second = runs[-1]
    lines = [f"Recorded MMLU stream of {len(order)} requests; weak right on {good.mean():.1%}.",
             f"Run 1: {runs[0]['n_train']} train / {runs[0]['n_holdout']} holdout -> "
             f"v{runs[0]['version']} {runs[0]['status']}.",
             f"Run 2: {second['n_train']} train / {second['n_holdout']} holdout -> "
             f"v{second['version']} {second['status']} ({second['reason']}).", "",
             "| metric | challenger (run 2) | champion (run 1) |", "|---|---|---|"]
    for name in ("quality", "strong_call_rate", "weak_precision", "missed_strong", "auc",
                 "apgr", "quality_at_champion_rate"):
        champ = second["champion"].get(name, float("nan")) if second["champion"] else float("nan")
        cand = second["candidate"].get(name, float("nan"))
        lines.append(f"| {name} | {cand:.3f} | {champ:.3f} |")
    text = "\n".join(lines) + "\n"
    (OUT / "retrain_recorded_run.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
