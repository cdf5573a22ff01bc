"""`rar run` through Typer's CliRunner: a real run on a JSONL file with SmolLM2 writes the
summary and plot, a second run starts warm from persisted memory, and bad configuration or
input fails with the field named and memory untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rar_tasks.cli import app
from rar_tasks.memory import WEAK_OK, LanceMemory, MemoryRecord

CONFIG = """
[weak]
model = "gguf/smollm2-135m"
max_tokens = 8

[strong]
model = "gguf/smollm2-135m"
max_tokens = 8

[local]
n_threads = 1

[router]
min_similarity = 0.95
min_agreeing = 1
"""


@pytest.fixture
def config(tmp_path, data_root):
    path = tmp_path / "rar.toml"
    path.write_text(f'data_root = "{data_root}"\n' + CONFIG)
    return path


@pytest.fixture
def requests_file(tmp_path, geography):
    """Four real MMLU geography questions as a user's JSONL (choices and labels)."""
    path = tmp_path / "requests.jsonl"
    with path.open("w") as fh:
        for request in geography[20:24]:
            question, *options = request.text.split("\n")
            row = {"text": question, "choices": [o[3:] for o in options], "label": request.label}
            fh.write(json.dumps(row) + "\n")
    return path


def rar(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, ["run", *args], env=env, catch_exceptions=False)


def seeded_memory(data_dir) -> LanceMemory:
    memory = LanceMemory(data_dir / "memory.lance", 384)
    vector = np.zeros(384, dtype=np.float32)
    vector[0] = 1.0
    memory.upsert([MemoryRecord("seen", "default", "an earlier request", list(vector), WEAK_OK)])
    return memory


@pytest.mark.model
def test_run_writes_summary_and_plot_then_starts_warm(tmp_path, config, requests_file,
                                                      data_dir):
    common = ["--input", str(requests_file), "--limit", "3", "--config", str(config),
              "--data-dir", str(data_dir)]

    first = rar(*common, "--out", str(tmp_path / "run1"))

    assert first.exit_code == 0, first.output
    summary = json.loads((tmp_path / "run1" / "summary.json").read_text())
    assert summary == {**json.loads(first.stdout), "strong_called_sequence": [1, 1, 1]}
    assert summary["requests_served"] == 3 and summary["routes"]["learn"] == 3
    assert summary["strong_call_rate"] == 1.0 and summary["memory_rows"] == 3
    assert summary["accuracy"]["labelled_requests"] == 3
    assert 0.0 <= summary["accuracy"]["rar"] <= 1.0
    assert summary["cost_usd"]["rar"] > summary["cost_usd"]["always_strong"] > 0
    assert summary["engine"] == "light" and summary["judge"] == "agreement"
    assert summary["routing_overhead_ms"]["p95"] >= summary["routing_overhead_ms"]["p50"] > 0
    png = (tmp_path / "run1" / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    lines = (tmp_path / "run1" / "requests.jsonl").read_text().splitlines()
    assert [json.loads(line)["route"] for line in lines] == ["learn"] * 3

    second = rar(*common, "--out", str(tmp_path / "run2"), "--no-baselines")

    assert second.exit_code == 0, second.output
    warm = json.loads((tmp_path / "run2" / "summary.json").read_text())
    # The same three requests, each found in memory: all weak, no strong call, no new rows.
    assert warm["routes"] == {"weak": 3, "learn": 0, "strong": 0}
    assert warm["strong_call_rate"] == 0.0 and warm["memory_rows"] == 3
    assert warm["cost_usd"]["rar"] < summary["cost_usd"]["rar"] / 10
    assert warm["cost_usd"]["always_strong"] is None  # no baselines asked for


@pytest.mark.parametrize(
    "toml, env, field",
    [
        ("[router]\nk = 'abc'\n", {}, "router.k"),
        ("[router\n", {}, "not valid TOML"),
        ("[router]\nkay = 3\n", {}, "router.kay"),
        ("", {"RAR_ROUTER__K": "abc"}, "router.k"),
        ("", {"RAR_WEAK__MAX_TOKENS": "lots"}, "weak.max_tokens"),
    ],
)
def test_bad_config_fails_naming_the_field_and_memory_is_untouched(tmp_path, data_dir,
                                                                   requests_file, toml, env,
                                                                   field):
    memory = seeded_memory(data_dir)
    version = memory.version()
    path = tmp_path / "bad.toml"
    path.write_text(toml)

    result = rar("--input", str(requests_file), "--config", str(path), "--data-dir",
                 str(data_dir), env=env)

    assert result.exit_code == 2
    assert "error: " in result.stderr and field in result.stderr
    assert LanceMemory(data_dir / "memory.lance", 384).count() == 1
    assert LanceMemory(data_dir / "memory.lance", 384).version() == version
    assert not (data_dir / "runs").exists()


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"text": ""}', "line 2.text: must not be empty"),
        ('{"text": 7}', "line 2.text: must be a string"),
        ('{"text": "' + "x" * 13_000 + '"}', "line 2.text: is 13000 characters"),
        ('{"text": "q", "kind": "choice"}', "line 2.choices"),
        ("not json", "line 2: is not valid JSON"),
    ],
)
def test_bad_request_line_fails_naming_it_and_memory_is_untouched(tmp_path, data_dir, config,
                                                                  line, field):
    memory = seeded_memory(data_dir)
    version = memory.version()
    path = tmp_path / "requests.jsonl"
    path.write_text('{"text": "A fine question?"}\n' + line + "\n")

    result = rar("--input", str(path), "--config", str(config), "--data-dir", str(data_dir))

    assert result.exit_code == 2
    assert field in result.stderr
    assert LanceMemory(data_dir / "memory.lance", 384).version() == version


@pytest.mark.model
def test_unknown_model_fails_naming_it_and_nothing_is_stored(tmp_path, data_dir, config,
                                                             requests_file):
    path = tmp_path / "unknown.toml"
    path.write_text(config.read_text().replace('model = "gguf/smollm2-135m"',
                                               'model = "gguf/tinyllama-9000"', 1))

    result = rar("--input", str(requests_file), "--limit", "1", "--config", str(path),
                 "--data-dir", str(data_dir))

    assert result.exit_code == 2
    assert "'gguf/tinyllama-9000'" in result.stderr and "unknown local model" in result.stderr
    assert LanceMemory(data_dir / "memory.lance", 384).count() == 0


def test_bad_engine_and_limit_are_named(data_dir, config, requests_file):
    engine = rar("--input", str(requests_file), "--engine", "turbo", "--config", str(config))
    limit = rar("--input", str(requests_file), "--limit", "0", "--config", str(config),
                "--data-dir", str(data_dir))

    assert engine.exit_code == 2 and "engine: must be 'light' or 'flow'" in engine.stderr
    assert limit.exit_code == 2 and "limit: must be >= 1, got 0" in limit.stderr
