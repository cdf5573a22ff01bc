"""Prefect flow that retrains the router: a new router version from memory, registered in
MLflow, compared with the champion on the same held-out requests, and promoted through a gate.

Steps: read (and tag) a memory snapshot; split it by time; fit and calibrate the candidate;
score candidate and champion on the newest entries; register the candidate as `challenger`;
promote it to `champion` when the gate passes; publish a Markdown artifact of both.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rar_tasks.config import Settings, load_settings
from registry.errors import ArtifactError, NotEnoughDataError
from registry.evaluate import Gate, holdout_metrics
from registry.router_version import FittedRouter
from registry.snapshot import MemorySnapshot, read_memory, time_split
from registry.store import CHALLENGER, RegistryConfig, RouterRegistry

METRIC_NAMES = ("quality", "strong_call_rate", "weak_precision", "missed_strong", "auc", "apgr",
                "quality_at_champion_rate")


@task(name="read-memory-snapshot", cache_policy=NO_CACHE)
def read_memory_snapshot(settings: Settings, namespace: str | None,
                         tag_snapshot: bool) -> MemorySnapshot:
    """Read memory at its current version, tagging that version so it stays reachable."""
    tag = time.strftime("router-train-%Y%m%dT%H%M%S", time.gmtime()) if tag_snapshot else None
    return read_memory(settings.data_dir() / "memory.lance", settings.memory.table, namespace,
                       tag=tag)


@task(name="fit-candidate", cache_policy=NO_CACHE)
def fit_candidate(train: MemorySnapshot, settings: Settings, target_strong_rate: float,
                  l2: float) -> FittedRouter:
    from registry.training import fit_router_version

    return fit_router_version(train, settings, target_strong_rate, l2)


@task(name="load-champion", cache_policy=NO_CACHE)
def load_champion(registry: RouterRegistry) -> FittedRouter | None:
    """The current champion, or None when there is none yet."""
    if registry.champion_version() is None:
        return None
    return registry.load("champion")


@task(name="evaluate-on-holdout", cache_policy=NO_CACHE)
def evaluate_on_holdout(router: FittedRouter, holdout: MemorySnapshot) -> dict:
    scores = router.scores(holdout.vectors)
    return holdout_metrics(scores, router.classifier.threshold_, holdout.weak_good)


def quality_at_rate(router: FittedRouter, holdout: MemorySnapshot, strong_rate: float) -> float:
    """Holdout quality of `router` thresholded to send `strong_rate` of the holdout to the
    strong model: compares two score functions at one operating point. The threshold uses
    the scores only, not the verdicts."""
    from registry.classifier import threshold_for_rate

    scores = router.scores(holdout.vectors)
    return holdout_metrics(scores, threshold_for_rate(scores, strong_rate),
                           holdout.weak_good)["quality"]


@task(name="register-candidate", cache_policy=NO_CACHE)
def register_candidate(registry: RouterRegistry, router: FittedRouter, params: dict,
                       metrics: dict, tags: dict, lineage: dict) -> str:
    """Log and register the candidate, alias it `challenger`, and return its version."""
    with tempfile.TemporaryDirectory(prefix="rar-lineage-") as tmp:
        path = Path(tmp) / "lineage.json"
        path.write_text(json.dumps(lineage))
        version = registry.log_version(router, params, metrics, tags,
                                       artifacts={"lineage": path},
                                       run_name=f"retrain-{tags['memory_version']}")
    registry.set_alias(CHALLENGER, version)
    return version


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(markdown: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=markdown, key="router-retraining",
                             description="Candidate and champion router versions on the "
                                         "same held-out memory entries")


@flow(name="rar-retrain-router")
def retrain_router(
    config_path: str | None = None,
    overrides: dict | None = None,
    registry_uri: str | None = None,
    registry_name: str | None = None,
    namespace: str | None = None,
    holdout_fraction: float = 0.2,
    target_strong_rate: float = 0.3,
    l2: float = 1.0,
    max_quality_drop: float = 0.0,
    max_strong_rate_increase: float = 0.02,
    min_holdout: int = 20,
    min_entries: int = 30,
    tag_snapshot: bool = True,
) -> dict:
    """Fit, evaluate, register and (if it passes the gate) promote a new router version.

    Args:
        config_path: TOML configuration (memory location, models, embedder); `overrides`
            is applied on top, as in `rar run`.
        registry_uri: MLflow tracking URI (default `sqlite:///<data_dir>/mlflow.db`).
        registry_name: registered model name (default `rar-router`).
        namespace: train on one namespace only; default all.
        holdout_fraction: newest share of memory held out for evaluation.
        target_strong_rate: strong-call rate the candidate is calibrated to.
        l2: L2 penalty of the classifier.
        max_quality_drop, max_strong_rate_increase, min_holdout: the promotion gate.
        min_entries: fewer memory entries than this skip retraining (status `skipped`).
        tag_snapshot: tag the memory version read, so it survives compaction.

    Returns:
        `status` (`promoted`, `challenger` or `skipped`), `version`, `reason`, both versions'
        holdout metrics and the memory version.

    Example:
        >>> from flows.retrain import retrain_router
        >>> result = retrain_router(target_strong_rate=0.25)
    """
    logger = get_run_logger()
    started = time.perf_counter()
    settings = load_settings(config_path, overrides)
    registry = RouterRegistry(RegistryConfig.resolve(settings.data_dir(), registry_uri,
                                                     registry_name))
    gate = Gate(max_quality_drop, max_strong_rate_increase, min_holdout)

    snapshot = read_memory_snapshot(settings, namespace, tag_snapshot)
    if len(snapshot) < min_entries:
        reason = f"memory has {len(snapshot)} entries, fewer than min_entries={min_entries}"
        logger.warning("event=retrain_skipped reason=%r", reason)
        return {"status": "skipped", "reason": reason, "memory_version": snapshot.version}

    train, holdout = time_split(snapshot, holdout_fraction)
    try:
        candidate = fit_candidate(train, settings, target_strong_rate, l2)
    except NotEnoughDataError as exc:
        logger.warning("event=retrain_skipped reason=%r", str(exc))
        return {"status": "skipped", "reason": str(exc), "memory_version": snapshot.version}
    read_fit_seconds = time.perf_counter() - started

    champion_version = registry.champion_version()
    try:
        champion = load_champion(registry)
    except ArtifactError as exc:
        # A champion that cannot be loaded cannot serve either; the candidate is judged alone.
        logger.warning("event=champion_unloadable version=%s error=%s", champion_version, exc)
        champion = None
    if champion is not None and champion.config.dim != candidate.config.dim:
        logger.warning("event=champion_incomparable champion_dim=%d candidate_dim=%d",
                       champion.config.dim, candidate.config.dim)
        champion = None
    cand_metrics = evaluate_on_holdout(candidate, holdout)
    champ_metrics = evaluate_on_holdout(champion, holdout) if champion is not None else None
    if champ_metrics is not None:
        cand_metrics["quality_at_champion_rate"] = quality_at_rate(
            candidate, holdout, champ_metrics["strong_call_rate"])
        champ_metrics["quality_at_champion_rate"] = champ_metrics["quality"]
    promote, reason = gate.decide(cand_metrics, champ_metrics)

    lineage = _lineage(snapshot, train, holdout)
    version = register_candidate(
        registry, candidate,
        params=_params(settings, holdout_fraction, target_strong_rate, l2, gate, namespace),
        metrics={**_prefixed("candidate", cand_metrics), **_prefixed("champion", champ_metrics),
                 "read_fit_seconds": read_fit_seconds, "n_train": len(train),
                 "n_holdout": len(holdout)},
        tags={**{k: str(v) for k, v in lineage.items() if not isinstance(v, list)},
              "champion_at_training": champion_version or "", "gate_passed": str(promote),
              "gate_reason": reason},
        lineage=lineage,
    )
    if promote:
        registry.promote(version, reason=f"retrain gate: {reason}")
    report = render_report(version, champion_version, cand_metrics, champ_metrics, promote,
                           reason, snapshot, len(train), len(holdout))
    publish_report(report)
    status = "promoted" if promote else "challenger"
    logger.info("event=retrain_done version=%s status=%s reason=%r memory_version=%d "
                "n_train=%d n_holdout=%d seconds=%.1f", version, status, reason,
                snapshot.version, len(train), len(holdout), time.perf_counter() - started)
    return {"status": status, "version": version, "reason": reason,
            "champion_before": champion_version, "candidate": cand_metrics,
            "champion": champ_metrics, "memory_version": snapshot.version,
            "memory_tag": snapshot.tag, "n_train": len(train), "n_holdout": len(holdout),
            "seconds": time.perf_counter() - started}


def _prefixed(prefix: str, metrics: dict | None) -> dict:
    if metrics is None:
        return {}
    return {f"{prefix}_{k}": v for k, v in metrics.items() if k in METRIC_NAMES}


def _params(settings: Settings, holdout_fraction: float, target_strong_rate: float, l2: float,
            gate: Gate, namespace: str | None) -> dict:
    return {
        "target_strong_rate": target_strong_rate, "holdout_fraction": holdout_fraction,
        "l2": l2, "namespace": namespace or "*", "embedder": settings.embedder.model,
        "weak_model": settings.weak.model, "strong_model": settings.strong.model,
        "judge": settings.judge, "router_k": settings.router.k,
        "router_min_similarity": settings.router.min_similarity,
        "gate_max_quality_drop": gate.max_quality_drop,
        "gate_max_strong_rate_increase": gate.max_strong_rate_increase,
        "gate_min_holdout": gate.min_holdout,
    }


def _lineage(snapshot: MemorySnapshot, train: MemorySnapshot, holdout: MemorySnapshot) -> dict:
    train_from, train_to = train.time_range()
    holdout_from, holdout_to = holdout.time_range()
    return {
        "memory_uri": snapshot.uri, "memory_table": snapshot.table,
        "memory_version": snapshot.version, "memory_tag": snapshot.tag,
        "memory_rows": len(snapshot),
        "train_fingerprint": train.fingerprint(), "holdout_fingerprint": holdout.fingerprint(),
        "train_from": train_from, "train_to": train_to,
        "holdout_from": holdout_from, "holdout_to": holdout_to,
        "holdout_request_ids": holdout.request_ids.tolist(),
    }


def render_report(version: str, champion_version: str | None, candidate: dict,
                  champion: dict | None, promoted: bool, reason: str,
                  snapshot: MemorySnapshot, n_train: int, n_holdout: int) -> str:
    """Markdown: both versions' holdout metrics side by side, and the gate's decision."""
    def cell(metrics: dict | None, name: str) -> str:
        if metrics is None:
            return "n/a"
        value = metrics.get(name, float("nan"))
        return "n/a" if value != value else f"{value:.3f}"

    champ_label = f"champion v{champion_version}" if champion_version else "champion (none)"
    lines = [
        f"# Router retraining: candidate v{version}",
        "",
        f"Memory `{snapshot.table}` version {snapshot.version} ({snapshot.tag or 'untagged'}): "
        f"{n_train} entries to train, the newest {n_holdout} held out.",
        "",
        f"| metric | candidate v{version} | {champ_label} |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {cell(candidate, name)} | {cell(champion, name)} |"
              for name in METRIC_NAMES]
    decision = "promoted to champion" if promoted else "kept as challenger"
    lines += ["", f"Gate: **{decision}** ({reason})."]
    return "\n".join(lines) + "\n"

