"""Prefect flow of a replay evaluation: every router on recorded outcomes, across seeds.

Steps: load the recording, embed it (cached), cut splits per seed, evaluate each router on
each split as its own task run, write the table and plots, log everything to MLflow. Tasks
share the loaded dataset through an in-process cache rather than as parameters, so Prefect
never copies or inspects fourteen thousand requests per task run.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from rar_tasks.replay.cache import cache_path, cached_embeddings
from rar_tasks.replay.data import ReplayDataset, load_dataset
from rar_tasks.replay.evaluate import RAR_GRID, ROUTERS, RouterResult, evaluate
from rar_tasks.replay.report import flat, write_report
from rar_tasks.replay.splits import Split, split_by_group, split_by_question

EMBEDDER = "local/all-MiniLM-L6-v2"
_loaded: dict[tuple, tuple[ReplayDataset, np.ndarray, np.ndarray | None]] = {}
_lock = threading.Lock()


def _key(dataset: str, data_root: str, data_dir: str, subjects: tuple[str, ...] | None) -> tuple:
    return (dataset, data_root, data_dir, subjects)


def _get(key: tuple) -> tuple[ReplayDataset, np.ndarray, np.ndarray | None]:
    """The dataset and its vectors, loaded and embedded once per process."""
    with _lock:
        if key not in _loaded:
            dataset, data_root, data_dir, subjects = key
            ds = load_dataset(dataset, Path(data_root), list(subjects) if subjects else None)
            # The sha256 covers the files loaded, so a subject subset gets its own cache file.
            sha = ds.sha256
            vectors = cached_embeddings(
                ds.texts, cache_path(Path(data_dir), ds.name, sha, EMBEDDER, len(ds))
            )
            answers = None
            if ds.weak_texts is not None:
                answers = cached_embeddings(
                    ds.weak_texts,
                    cache_path(Path(data_dir), ds.name, sha, EMBEDDER, len(ds), "weak_responses"),
                )
            _loaded[key] = (ds, vectors, answers)
        return _loaded[key]


def _one_blas_thread():
    """One BLAS thread per task: memory searches are small products, and on a shared machine
    OpenBLAS's own threads made a stream ten times slower rather than faster."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a declared dependency; without it BLAS keeps its default
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@task(cache_policy=NO_CACHE)
def prepare_data(key: tuple) -> dict:
    """Load and embed the recording; returns its size and fingerprint."""
    ds, vectors, _ = _get(key)
    return {
        "n": len(ds),
        "sha256": ds.sha256,
        "judge": ds.judge,
        "dim": int(vectors.shape[1]),
        "notes": ds.notes,
    }


@task(cache_policy=NO_CACHE)
def make_splits(key: tuple, seeds: list[int], split_kinds: list[str]) -> list[Split]:
    """One split per seed and kind; `subject` splits are skipped without two groups."""
    ds, _, _ = _get(key)
    splits = []
    for seed in seeds:
        for kind in split_kinds:
            if kind == "question":
                splits.append(split_by_question(ds.texts, seed))
            elif kind == "subject":
                if len(set(ds.groups.tolist())) < 2:
                    get_run_logger().info("event=split_skipped kind=subject reason=one_group")
                    continue
                splits.append(split_by_group(ds.texts, ds.groups, seed))
            else:
                raise ValueError(f"split kind must be 'question' or 'subject', got {kind!r}")
    return splits


@task(cache_policy=NO_CACHE, task_run_name="evaluate-{router}-seed{split.seed}-{split.kind}")
def evaluate_router(key: tuple, router: str, split: Split) -> RouterResult:
    """Fit, tune on dev and replay the test stream of one router on one split."""
    ds, vectors, answers = _get(key)
    result = evaluate(router, ds, vectors, split, answers)
    get_run_logger().info(
        "event=router_evaluated router=%s seed=%d split=%s strong_rate=%.3f quality=%.3f "
        "seconds=%.2f skipped=%s",
        router,
        split.seed,
        split.kind,
        result.strong_rate,
        result.quality,
        result.seconds,
        result.skipped,
    )
    return result


@task(cache_policy=NO_CACHE)
def log_to_mlflow(
    tracking_uri: str, params: dict, results: list[RouterResult], artifacts: list[Path]
) -> str:
    """One parent run with the report as artifacts, one nested run per router, seed and split."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    name = "rar-replay"
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        root = Path(tracking_uri.removeprefix("sqlite:///")).parent
        experiment_id = mlflow.create_experiment(name, (root / "artifacts").as_uri())
    else:
        experiment_id = experiment.experiment_id
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"replay-{params['dataset']}"
    ) as parent:
        mlflow.log_params(params)
        summary: dict[str, list[float]] = {}
        for r in results:
            if r.skipped:
                continue
            for metric, value in flat(r).items():
                summary.setdefault(f"{r.split}.{r.router}.{metric}", []).append(value)
        mlflow.log_metrics(
            {k: float(np.nanmean(v)) for k, v in summary.items() if not np.all(np.isnan(v))}
        )
        for path in artifacts:
            mlflow.log_artifact(str(path))
        for r in results:
            with mlflow.start_run(
                experiment_id=experiment_id,
                nested=True,
                run_name=f"{r.router}-seed{r.seed}-{r.split}",
            ):
                mlflow.log_params(
                    {
                        "router": r.router,
                        "seed": r.seed,
                        "split": r.split,
                        "skipped": r.skipped,
                        "note": r.note[:250],
                        **{f"tuned.{k}": v for k, v in r.tuned.items()},
                    }
                )
                if not r.skipped:
                    mlflow.log_metrics({k: float(v) for k, v in flat(r).items() if not np.isnan(v)})
        return parent.info.run_id


@flow(name="rar-replay", task_runner=ThreadPoolTaskRunner(max_workers=2))
def replay(
    dataset: str = "routellm-mmlu",
    seeds: list[int] | None = None,
    routers: list[str] | None = None,
    split_kinds: list[str] | None = None,
    subjects: list[str] | None = None,
    data_root: str | None = None,
    data_dir: str | None = None,
    out_dir: str | None = None,
    tracking_uri: str | None = None,
) -> dict:
    """Replay every router on a recording and report.

    Args:
        dataset: `routellm-mmlu`, `routellm-gsm8k` or `routellm-mtbench`.
        seeds: split and stream-order seeds (default 0, 1, 2).
        routers: names from `rar_tasks.replay.evaluate.ROUTERS` (default: all).
        split_kinds: `question` (random questions held out) and/or `subject` (whole subjects
            or categories held out); default both.
        subjects: MMLU subjects to load (default all).
        data_root: shared data folder (default from settings); data_dir: embedding cache and
            default home of outputs and MLflow (default from settings).
        out_dir: where the table and plots go (default <data_dir>/replay/<dataset>-<time>).
        tracking_uri: MLflow store (default sqlite under <data_dir>/mlruns).

    Returns:
        Paths of the outputs, the MLflow run id and the wall time.

    Example:
        >>> from flows.replay import replay
        >>> replay(dataset="routellm-gsm8k", seeds=[0])
    """
    from rar_tasks.config import load_settings

    logger = get_run_logger()
    started = time.perf_counter()
    settings = load_settings()
    root = str(Path(data_root).resolve()) if data_root else str(settings.shared_data_root())
    home = Path(data_dir).resolve() if data_dir else settings.data_dir()
    out = (
        Path(out_dir).resolve()
        if out_dir
        else (home / "replay" / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    if tracking_uri is None:
        (home / "mlruns").mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    seeds = list(seeds) if seeds is not None else [0, 1, 2]
    routers = list(routers or ROUTERS)
    split_kinds = list(split_kinds or ["question", "subject"])
    key = _key(dataset, root, str(home), tuple(subjects) if subjects else None)

    info = prepare_data(key)
    splits = make_splits(key, seeds, split_kinds)
    prepared = time.perf_counter() - started
    jobs = [(name, split) for split in splits for name in routers]
    with _one_blas_thread():  # process-wide, so set once around all evaluation threads
        futures = evaluate_router.map(unmapped(key), [j[0] for j in jobs], [j[1] for j in jobs])
        results = [f.result() for f in futures]
    evaluated = time.perf_counter() - started - prepared

    header = (
        f"# Replay of {dataset}\n\n{info['n']} recorded requests (sha256 "
        f"{info['sha256'][:12]}), judge `{info['judge']}`, embedder {EMBEDDER}. "
        f"Data and embeddings ready in {prepared:.1f} s; {len(jobs)} router evaluations "
        f"in {evaluated:.1f} s.\n\n" + "".join(f"- {n}\n" for n in info["notes"]) + "\n"
    )
    paths = write_report(results, out, header)
    params = {
        "dataset": dataset,
        "seeds": ",".join(map(str, seeds)),
        "routers": ",".join(routers),
        "split_kinds": ",".join(split_kinds),
        "n_requests": info["n"],
        "sha256": info["sha256"],
        "judge": info["judge"],
        "embedder": EMBEDDER,
        "rar_grid": str(RAR_GRID),
        "out_dir": str(out),
    }
    run_id = log_to_mlflow(tracking_uri, params, results, list(paths.values()))
    wall = time.perf_counter() - started
    logger.info(
        "event=replay_done dataset=%s evaluations=%d seconds=%.1f out=%s run_id=%s",
        dataset,
        len(jobs),
        wall,
        out,
        run_id,
    )
    return {
        "out_dir": str(out),
        **{k: str(v) for k, v in paths.items()},
        "mlflow_run_id": run_id,
        "tracking_uri": tracking_uri,
        "seconds": wall,
        "prepare_seconds": prepared,
        "evaluate_seconds": evaluated,
    }
