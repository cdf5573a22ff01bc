"""Retraining time at 10k and 100k memory entries, and memory search with and without an index.

The entries are real MMLU prompts (RouteLLM's recordings) with their real recorded verdict (was
Mixtral-8x7B right?), resampled with Gaussian noise on the all-MiniLM-L6-v2 embedding to reach
the target size, written to a LanceDB memory; then the retraining steps run and are timed:
read the memory, fit and calibrate, evaluate on the holdout, log and register in MLflow.

    python benchmarks/retrain_bench.py --sizes 10000,100000

Prints a table and writes `benchmarks/results/retrain_bench.{md,json}`. BLAS runs on one
thread so the numbers are comparable on a shared machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def recorded_mmlu(max_base: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Embeddings, weak-was-right labels and subjects of RouteLLM's MMLU recordings."""
    from rar_tasks.config import load_settings
    from rar_tasks.embed import LocalMiniLM
    from rar_tasks.replay.cache import cache_path, cached_embeddings
    from rar_tasks.replay.data import load_dataset

    settings = load_settings()
    data = load_dataset("routellm-mmlu", settings.shared_data_root())
    if max_base and max_base < len(data):
        data = data.subset(np.random.default_rng(0).permutation(len(data))[:max_base])
    embedder = LocalMiniLM(torch_threads=1)
    path = cache_path(settings.data_dir(), "routellm-mmlu", data.sha256, embedder.name,
                      len(data))
    vectors = cached_embeddings(data.texts, path, embedder)
    return vectors, np.asarray(data.weak_good, dtype=bool), [str(g) for g in data.groups]


def resample(vectors: np.ndarray, good: np.ndarray, n: int, noise: float, seed: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` noisy copies of the recorded requests (unit rows) and their verdicts."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(vectors), size=n)
    out = vectors[pick] + rng.normal(scale=noise, size=(n, vectors.shape[1])).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.astype(np.float32), good[pick], pick


def write_memory(folder: Path, vectors: np.ndarray, good: np.ndarray, pick: np.ndarray,
                 start: int = 0) -> float:
    """Append the entries (every 10th good one with a guide) to a LanceDB memory, numbered and
    timed from `start`; return the seconds taken."""
    import pyarrow as pa

    from rar_tasks.memory import GUIDE_OK, STRONG_NEEDED, WEAK_OK, LanceMemory, _schema

    started = time.perf_counter()
    n, dim = vectors.shape
    memory = LanceMemory(folder / "memory.lance", dim)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    guided = good & ((start + np.arange(n)) % 10 == 0)
    verdict = np.where(good, WEAK_OK, STRONG_NEEDED).astype(object)
    verdict[guided] = GUIDE_OK
    ids = [f"bench-{start + i}" for i in range(n)]
    table = pa.table({
        "request_id": ids,
        "namespace": ["default"] * n,
        "text": [f"recorded MMLU request {p}" for p in pick],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        "verdict": verdict.tolist(),
        "judge": ["ground_truth"] * n,
        "guide": [f"hint {start + i}" if g else "" for i, g in enumerate(guided)],
        "guide_id": [f"g{start + i}" if g else "" for i, g in enumerate(guided)],
        "guide_source": [ids[i] if g else "" for i, g in enumerate(guided)],
        "weak_model": ["mixtral-8x7b"] * n,
        "strong_model": ["gpt-4-1106"] * n,
        "created_at": [t0 + timedelta(seconds=start + i) for i in range(n)],
        "guide_uses": [0] * n,
        "guide_successes": [0] * n,
    }, schema=_schema(dim))
    memory.table.add(table)
    return time.perf_counter() - started


def time_retrain(folder: Path, target_strong_rate: float) -> dict:
    """Run the retraining steps as the flow does, timing each."""
    from rar_tasks.config import load_settings
    from registry.evaluate import holdout_metrics
    from registry.snapshot import read_memory, time_split
    from registry.store import RegistryConfig, RouterRegistry
    from registry.training import fit_router_version

    settings = load_settings(overrides={"memory": {"data_dir": str(folder)}})
    timings: dict[str, float] = {}
    t = time.perf_counter()
    snapshot = read_memory(folder / "memory.lance", tag="bench")
    train, holdout = time_split(snapshot, 0.2)
    timings["read_split_s"] = time.perf_counter() - t
    t = time.perf_counter()
    router = fit_router_version(train, settings, target_strong_rate)
    timings["fit_calibrate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = holdout_metrics(router.scores(holdout.vectors), router.classifier.threshold_,
                              holdout.weak_good)
    timings["evaluate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    registry = RouterRegistry(RegistryConfig(f"sqlite:///{folder / 'mlflow.db'}"))
    registry._experiment_id()  # database creation is a one-off, not part of a retrain
    timings["registry_init_s"] = time.perf_counter() - t
    t = time.perf_counter()
    version = registry.log_version(router, {"target_strong_rate": target_strong_rate},
                                   {f"candidate_{k}": v for k, v in metrics.items()},
                                   {"memory_version": str(snapshot.version)})
    registry.promote(version, "benchmark")
    timings["register_s"] = time.perf_counter() - t
    timings["retrain_total_s"] = sum(v for k, v in timings.items() if k != "registry_init_s")
    return {**timings, "n_train": len(train), "n_holdout": len(holdout),
            "holdout_auc": metrics["auc"], "holdout_quality": metrics["quality"],
            "holdout_strong_call_rate": metrics["strong_call_rate"],
            "guides": len(router.guides.guide_ids)}


def time_search(folder: Path, queries: np.ndarray, build_index: bool) -> dict:
    """Mean memory search latency (k=5, namespace prefilter) before and after an index."""
    from rar_tasks.memory import LanceMemory

    memory = LanceMemory(folder / "memory.lance", queries.shape[1])

    def mean_ms() -> float:
        memory.search(queries[0], "default", 5)  # warm
        t = time.perf_counter()
        for q in queries:
            memory.search(q, "default", 5)
        return 1000 * (time.perf_counter() - t) / len(queries)

    result = {"search_brute_ms": mean_ms()}
    if build_index:
        from flows.maintain import build_vector_index

        t = time.perf_counter()
        build_vector_index.fn(memory.table, min_rows=0, dry_run=False)
        result["index_build_s"] = time.perf_counter() - t
        result["search_index_ms"] = mean_ms()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Retraining time by memory size.")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--noise", type=float, default=0.02,
                        help="Per-dimension noise; 0.02 keeps cosine ~0.93 to the original.")
    parser.add_argument("--target-strong-rate", type=float, default=0.3)
    parser.add_argument("--max-base", type=int, default=0,
                        help="Use at most this many recorded prompts (0: all 14042).")
    parser.add_argument("--no-index", action="store_true", help="Skip the index build.")
    args = parser.parse_args(argv)

    vectors, good, _ = recorded_mmlu(args.max_base or None)
    print(f"recorded MMLU prompts: {len(vectors)}  weak right: {good.mean():.1%}")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="rar-retrain-bench-") as tmp:
            folder = Path(tmp)
            x, y, pick = resample(vectors, good, size, args.noise, seed=size)
            write_s = write_memory(folder, x, y, pick)
            row = {"entries": size, "memory_write_s": write_s,
                   **time_retrain(folder, args.target_strong_rate)}
            queries = resample(vectors, good, 20, args.noise, seed=1)[0]
            row.update(time_search(folder, queries, not args.no_index))
            rows.append(row)
            print(json.dumps(row))
    table = render(rows)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "retrain_bench.json").write_text(json.dumps(rows, indent=2))
    (OUT / "retrain_bench.md").write_text(table)


def render(rows: list[dict]) -> str:
    columns = [("entries", "entries", "{:d}"), ("read + split s", "read_split_s", "{:.2f}"),
               ("fit + calibrate s", "fit_calibrate_s", "{:.2f}"),
               ("evaluate s", "evaluate_s", "{:.3f}"), ("register s", "register_s", "{:.2f}"),
               ("retrain total s", "retrain_total_s", "{:.2f}"),
               ("holdout AUC", "holdout_auc", "{:.3f}"),
               ("search brute ms", "search_brute_ms", "{:.1f}"),
               ("index build s", "index_build_s", "{:.1f}"),
               ("search index ms", "search_index_ms", "{:.1f}")]
    lines = ["| " + " | ".join(c[0] for c in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(
            fmt.format(row[key]) if key in row else "n/a" for _, key, fmt in columns) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
