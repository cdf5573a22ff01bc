"""`rar registry ...` and `rar retrain`: inspect, promote and roll back router versions, and run
the retraining flow once."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rar_tasks.errors import RARError

registry_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Router versions in the MLflow registry.")

URI_HELP = ("MLflow tracking/registry URI (default: RAR_REGISTRY_URI, MLFLOW_TRACKING_URI, or "
            "sqlite:///<data-dir>/mlflow.db).")


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg="red", err=True)
    raise typer.Exit(code=2)


def _registry(uri: str | None, name: str | None, config: Path | None, data_dir: Path | None):
    from rar_tasks.config import load_settings
    from registry.store import RegistryConfig, RouterRegistry

    overrides = {"memory": {"data_dir": str(data_dir.resolve())}} if data_dir else None
    settings = load_settings(config, overrides)
    return RouterRegistry(RegistryConfig.resolve(settings.data_dir(), uri, name))


# Options shared by every registry command.
_URI = typer.Option(None, "--registry-uri", help=URI_HELP)
_NAME = typer.Option(None, "--name", help="Registered model name (default rar-router).")
_CONFIG = typer.Option(None, "--config", help="TOML configuration file.")
_DATA = typer.Option(None, "--data-dir", help="Memory and registry folder (default: config).")


@registry_app.command("list")
def list_versions(registry_uri: str | None = _URI, name: str | None = _NAME,
                  config: Path | None = _CONFIG, data_dir: Path | None = _DATA) -> None:
    """List router versions, newest first, with aliases and holdout metrics."""
    from rich.console import Console
    from rich.table import Table

    try:
        reg = _registry(registry_uri, name, config, data_dir)
        versions = reg.versions()
    except RARError as exc:
        _fail(exc)
    table = Table(title=f"router versions of {reg.name}")
    for column in ("version", "aliases", "created", "memory version", "quality",
                   "strong-call rate", "auc", "gate"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v.version, ",".join(v.aliases), v.created, v.tags.get("memory_version", ""),
            _fmt(v.metrics.get("candidate_quality")),
            _fmt(v.metrics.get("candidate_strong_call_rate")),
            _fmt(v.metrics.get("candidate_auc")), v.tags.get("gate_reason", ""),
        )
    Console().print(table)
    if not versions:
        typer.echo("no versions yet; run `rar retrain` to register one in "
                   f"{reg.config.tracking_uri}")


@registry_app.command("show")
def show(version: str = typer.Argument(..., help="Version number or alias."),
         registry_uri: str | None = _URI, name: str | None = _NAME,
         config: Path | None = _CONFIG, data_dir: Path | None = _DATA) -> None:
    """Print everything recorded about one version as JSON."""
    from dataclasses import asdict

    try:
        info = _registry(registry_uri, name, config, data_dir).show(version)
    except RARError as exc:
        _fail(exc)
    typer.echo(json.dumps(asdict(info), indent=2, sort_keys=True))


@registry_app.command("promote")
def promote(version: str = typer.Argument(..., help="Version number or alias to promote."),
            reason: str = typer.Option("manual", help="Recorded on the version."),
            registry_uri: str | None = _URI, name: str | None = _NAME,
            config: Path | None = _CONFIG, data_dir: Path | None = _DATA) -> None:
    """Make VERSION the champion (serving follows within its check interval)."""
    try:
        reg = _registry(registry_uri, name, config, data_dir)
        previous = reg.champion_version()
        promoted = reg.promote(version, reason=reason)
    except RARError as exc:
        _fail(exc)
    typer.echo(f"champion: {previous or 'none'} -> {promoted}")


@registry_app.command("rollback")
def rollback(reason: str = typer.Option(..., help="Why; recorded as a tag on the demoted "
                                                  "version."),
             registry_uri: str | None = _URI, name: str | None = _NAME,
             config: Path | None = _CONFIG, data_dir: Path | None = _DATA) -> None:
    """Move `champion` back to the version the current champion replaced."""
    try:
        demoted, champion = _registry(registry_uri, name, config, data_dir).rollback(reason)
    except RARError as exc:
        _fail(exc)
    typer.echo(f"champion: {demoted} -> {champion} (rolled back: {reason})")


def retrain(
    config: Path | None = _CONFIG,
    data_dir: Path | None = _DATA,
    registry_uri: str | None = _URI,
    name: str | None = _NAME,
    target_strong_rate: float = typer.Option(0.3, help="Strong-call rate to calibrate to."),
    holdout_fraction: float = typer.Option(0.2, help="Newest share of memory held out."),
    max_quality_drop: float = typer.Option(0.0, help="Gate: allowed holdout quality drop."),
    max_strong_rate_increase: float = typer.Option(0.02, help="Gate: allowed strong-call "
                                                              "rate rise."),
    namespace: str | None = typer.Option(None, help="Train on one namespace only."),
) -> None:
    """Run the retraining flow once: fit, evaluate, register, and promote if the gate passes."""
    from flows.retrain import retrain_router

    overrides = {"memory": {"data_dir": str(data_dir.resolve())}} if data_dir else None
    try:
        result = retrain_router(
            config_path=str(config) if config else None, overrides=overrides,
            registry_uri=registry_uri, registry_name=name, namespace=namespace,
            holdout_fraction=holdout_fraction, target_strong_rate=target_strong_rate,
            max_quality_drop=max_quality_drop, max_strong_rate_increase=max_strong_rate_increase,
        )
    except RARError as exc:
        _fail(exc)
    typer.echo(json.dumps(result, indent=2, default=str))


def _fmt(value) -> str:
    return "" if value is None else f"{value:.3f}"
