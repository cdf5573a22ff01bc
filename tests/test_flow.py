"""A real Prefect flow run of `flows.serve.serve_stream` against a temporary Prefect API, with
SmolLM2 for both models: every RAR step is a task run, and memory is written."""

from __future__ import annotations

import json

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.serve import serve_stream
from rar_tasks.errors import ConfigError
from rar_tasks.memory import LanceMemory


def task_run_names(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        assert all(run.state.is_completed() for run in runs)
        return [run.name.rsplit("-", 1)[0] for run in runs]


@pytest.mark.model
def test_serve_stream_flow_run(prefect_api, tmp_path, data_dir, small_config, geography):
    path = tmp_path / "requests.jsonl"
    with path.open("w") as fh:
        for request in geography[10:12]:
            question, *options = request.text.split("\n")
            row = {"text": question, "choices": [o[3:] for o in options], "label": request.label}
            fh.write(json.dumps(row) + "\n")

    state = serve_stream(input_path=str(path), limit=2, seed=1, overrides=small_config(),
                         evaluate=True, return_state=True)

    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["requests_served"] == 2
    assert summary["routes"]["learn"] >= 1  # cold memory: the first request learns
    assert summary["memory_rows"] == summary["routes"]["learn"]
    assert summary["accuracy"]["labelled_requests"] == 2
    assert summary["models"] == {"weak": "gguf/smollm2-135m", "strong": "gguf/smollm2-135m"}
    assert summary["cost_usd"]["always_strong"] > summary["cost_usd"]["always_weak"] > 0
    names = task_run_names(state.state_details.flow_run_id)
    for step in ("predict-route", "weak-generate", "strong-answer", "judge", "memory-update"):
        assert step in names, names
    assert names.count("predict-route") == 2
    assert LanceMemory(data_dir / "memory.lance", 384).count() == summary["memory_rows"]


def test_flow_run_with_bad_config_fails_naming_the_field(prefect_api, data_dir, small_config):
    state = serve_stream(limit=1, overrides=small_config(router={"k": "abc"}), return_state=True)

    assert state.is_failed()
    with pytest.raises(ConfigError, match="'router.k' must be int"):
        state.result()
    assert not (data_dir / "memory.lance").exists()


@pytest.mark.model
def test_cli_flow_engine_writes_every_served_request(prefect_api, tmp_path, data_dir,
                                                     data_root):
    from typer.testing import CliRunner

    from rar_tasks.cli import app

    config = tmp_path / "rar.toml"
    config.write_text(
        f'data_root = "{data_root}"\n[weak]\nmodel = "gguf/smollm2-135m"\n'
        '[strong]\nmodel = "gguf/smollm2-135m"\n[local]\nn_threads = 1\n'
    )
    path = tmp_path / "requests.jsonl"
    path.write_text('{"text": "Which is a continent?", "choices": ["Asia", "Paris"], "label": 0}\n')

    result = CliRunner().invoke(app, ["run", "--engine", "flow", "--input", str(path),
                                      "--config", str(config), "--data-dir", str(data_dir),
                                      "--out", str(tmp_path / "out"), "--no-baselines"])

    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["engine"] == "flow" and summary["requests_served"] == 1
    assert summary["memory_rows"] == 1
    lines = (tmp_path / "out" / "requests.jsonl").read_text().splitlines()
    assert [json.loads(line)["route"] for line in lines] == ["learn"]
