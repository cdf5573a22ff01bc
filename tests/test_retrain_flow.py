"""The retraining and maintenance flows as real Prefect flow runs (temporary Prefect API) on
LanceDB memories, with a real MLflow registry in a SQLite file."""

from __future__ import annotations

import numpy as np

from flows.maintain import maintain_memory, near_duplicates
from flows.retrain import retrain_router
from rar_tasks.memory import MemoryRecord
from registry.snapshot import read_memory, time_split
from registry.store import RegistryConfig, RouterRegistry
from tests.retrain_support import write_memory


def _overrides(data_dir) -> dict:
    return {"memory": {"data_dir": str(data_dir)}}


def test_time_split_holds_out_the_newest_entries(data_dir):
    write_memory(data_dir, n=50)
    snapshot = read_memory(data_dir / "memory.lance")
    train, holdout = time_split(snapshot, 0.2)
    assert (len(train), len(holdout)) == (40, 10)
    assert train.created_at.max() < holdout.created_at.min()
    assert holdout.request_ids.tolist() == [f"r{i}" for i in range(40, 50)]


def test_retraining_registers_promotes_then_gates(prefect_api, data_dir):
    write_memory(data_dir, n=300)
    uri = f"sqlite:///{data_dir / 'mlflow.db'}"

    first = retrain_router(overrides=_overrides(data_dir), registry_uri=uri)
    assert first["status"] == "promoted" and first["reason"] == "no_champion"
    assert abs(first["candidate"]["strong_call_rate"] - 0.3) < 0.12
    assert first["candidate"]["auc"] > 0.7

    registry = RouterRegistry(RegistryConfig(uri))
    info = registry.show("champion")
    assert info.version == "1" and set(info.aliases) == {"champion", "challenger"}
    assert info.tags["memory_version"] == str(first["memory_version"])
    assert info.tags["memory_tag"].startswith("router-train-")
    assert info.params["target_strong_rate"] == "0.3"
    import lancedb

    table = lancedb.connect(str(data_dir / "memory.lance")).open_table("memory")
    assert info.tags["memory_tag"] in table.tags.list()

    # A gate no candidate can pass: registered as challenger, champion unchanged.
    second = retrain_router(overrides=_overrides(data_dir), registry_uri=uri,
                            max_strong_rate_increase=-1.0)
    assert second["status"] == "challenger" and second["champion"] is not None
    assert registry.resolve("champion") == "1" and registry.resolve("challenger") == "2"
    assert registry.show("2").tags["gate_passed"] == "False"


def test_too_little_memory_skips_retraining(prefect_api, data_dir):
    write_memory(data_dir, n=10)
    result = retrain_router(overrides=_overrides(data_dir),
                            registry_uri=f"sqlite:///{data_dir / 'mlflow.db'}")
    assert result["status"] == "skipped" and "min_entries=30" in result["reason"]


def test_maintenance_dedupes_retires_guides_and_indexes(prefect_api, data_dir):
    memory = write_memory(data_dir, n=120)
    twin = np.array(memory.get("r5")["vector"]) + 0.005
    memory.upsert([MemoryRecord("r5-again", "default", "request 5, asked again",
                                (twin / np.linalg.norm(twin)).tolist(), "weak_ok")])
    for helped in (True, False, False, False, False):
        memory.record_guide_use("g0", helped)  # helped 1 time in 5
    memory.record_guide_use("g7", True)  # too few uses to judge

    snapshot = read_memory(data_dir / "memory.lance")
    assert near_duplicates(snapshot, 0.98) == ["r5"]  # the newer entry stays

    result = maintain_memory(overrides=_overrides(data_dir), index_min_rows=100)
    assert result["duplicates_removed"] == 1 and result["guides_retired"] == 1
    assert result["index"] == "built" and result["rows_after"] == 120
    assert memory.get("r5") is None and memory.get("r5-again") is not None
    assert memory.get("r0")["guide"] == "" and memory.get("r7")["guide"] != ""
    assert memory.get("r0")["guide_uses"] == 5


def test_maintenance_dry_run_writes_nothing(prefect_api, data_dir):
    write_memory(data_dir, n=40)
    result = maintain_memory(overrides=_overrides(data_dir), index_min_rows=10, dry_run=True)
    assert result["index"] == "would_build" and result["rows_after"] == 40


def test_gate_keeps_the_champion_on_a_quality_drop_or_more_strong_calls():
    from registry.evaluate import Gate

    champion = {"n": 100, "quality": 0.85, "strong_call_rate": 0.30}
    gate = Gate(max_quality_drop=0.0, max_strong_rate_increase=0.02, min_holdout=20)
    assert gate.decide({"n": 100, "quality": 0.86, "strong_call_rate": 0.25}, champion)[0]
    assert gate.decide({"n": 100, "quality": 0.90, "strong_call_rate": 0.30}, None) == (
        True, "no_champion")
    dropped = gate.decide({"n": 100, "quality": 0.84, "strong_call_rate": 0.20}, champion)
    assert dropped[0] is False and dropped[1].startswith("quality_drop=0.0100")
    costlier = gate.decide({"n": 100, "quality": 0.90, "strong_call_rate": 0.35}, champion)
    assert costlier[0] is False and costlier[1].startswith("strong_rate_rise")
    assert gate.decide({"n": 5, "quality": 0.9, "strong_call_rate": 0.1}, champion)[0] is False
