"""`rar eval`: evaluations of routing; `rar eval replay` replays recorded model outcomes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from rar_tasks.errors import RARError

eval_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Evaluate routers without calling models."
)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@eval_app.command("replay")
def replay_command(
    dataset: str = typer.Option(
        "routellm-mmlu", help="routellm-mmlu, routellm-gsm8k or routellm-mtbench."
    ),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds (split and stream order)."),
    routers: str = typer.Option("", help="Comma-separated routers; default: all."),
    splits: str = typer.Option("question,subject", help="question and/or subject."),
    subjects: str = typer.Option("", help="MMLU subjects to load; default: all 57."),
    data_dir: Path | None = typer.Option(
        None, help="Embedding cache and default output home (default: config)."
    ),
    out: Path | None = typer.Option(None, help="Output folder of the table and plots."),
    tracking_uri: str | None = typer.Option(
        None, help="MLflow tracking URI (default: sqlite under <data-dir>/mlruns)."
    ),
) -> None:
    """Replay all routers on recorded strong/weak outcomes; write a table, plots and MLflow."""
    from rar_tasks.logs import setup_logging
    from rar_tasks.replay.data import DATASETS
    from rar_tasks.replay.evaluate import ROUTERS

    setup_logging("INFO")
    try:
        if dataset not in DATASETS:
            raise RARError(f"dataset: must be one of {', '.join(DATASETS)}, got {dataset!r}")
        router_list = _split(routers) or list(ROUTERS)
        unknown = [r for r in router_list if r not in ROUTERS]
        if unknown:
            raise RARError(f"routers: unknown {unknown[0]!r}; known: {', '.join(ROUTERS)}")
        try:
            seed_list = [int(s) for s in _split(seeds)]
        except ValueError:
            raise RARError(f"seeds: must be comma-separated integers, got {seeds!r}") from None
        split_list = _split(splits)
        bad = [s for s in split_list if s not in ("question", "subject")]
        if bad or not split_list:
            raise RARError(f"splits: must be 'question' and/or 'subject', got {splits!r}")
        from flows.replay import replay

        summary = replay(
            dataset=dataset,
            seeds=seed_list,
            routers=router_list,
            split_kinds=split_list,
            subjects=_split(subjects) or None,
            data_dir=str(data_dir) if data_dir else None,
            out_dir=str(out) if out else None,
            tracking_uri=tracking_uri,
        )
    except RARError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(Path(summary["table"]).read_text(), err=True)
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
