"""Router versions in a real MLflow registry (SQLite file): fit, log, register, promote, roll
back, load by alias, and the errors for unknown versions, broken files and unreachable stores."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from registry.classifier import WeakGoodClassifier
from registry.errors import ArtifactError, RegistryUnavailableError, UnknownVersionError
from registry.router_version import CLASSIFIER_FILE, FittedRouter, GuideBank, VersionConfig
from registry.store import RegistryConfig, RouterRegistry
from tests.retrain_support import synthetic_records


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _router(threshold: float, dim: int = 16, embedder: str = "local/all-MiniLM-L6-v2"
            ) -> FittedRouter:
    rng = np.random.default_rng(0)
    clf = WeakGoodClassifier()
    clf.coef_ = rng.normal(size=dim).astype(np.float32)
    clf.intercept_, clf.threshold_ = 0.0, threshold
    bank = GuideBank(np.eye(dim, dtype=np.float32)[:1], ["g1"], ["a hint"], ["default"])
    return FittedRouter(clf, bank, VersionConfig(embedder, dim, 0.3))


def test_classifier_is_calibrated_to_the_target_strong_call_rate():
    records = synthetic_records(400)
    x = np.array([r.vector for r in records], dtype=np.float32)
    y = np.array([r.verdict != "strong_needed" for r in records])
    clf = WeakGoodClassifier().fit(x, y).calibrate(x, 0.25)
    assert abs(np.mean(~clf.predict_weak(x)) - 0.25) < 0.01
    assert np.corrcoef(clf.score(x), x[:, 0])[0, 1] > 0.5


def test_router_files_round_trip_and_broken_files_are_named(tmp_path):
    router = _router(0.5)
    folder = router.save(tmp_path / "v")
    loaded = FittedRouter.load(folder, "7")
    assert loaded.classifier.threshold_ == 0.5 and loaded.guides.guide_ids == ["g1"]

    (folder / CLASSIFIER_FILE).write_bytes(b"not a numpy file")
    with pytest.raises(ArtifactError, match="classifier file .* corrupt"):
        FittedRouter.load(folder, "7")
    (folder / CLASSIFIER_FILE).unlink()
    with pytest.raises(ArtifactError, match="lacks classifier.npz"):
        FittedRouter.load(folder, "7")


def test_promote_and_rollback_move_the_champion_and_record_why(tracking_uri):
    reg = RouterRegistry(RegistryConfig(tracking_uri, name="promote-rollback"))
    lineage = {"memory_version": "5", "memory_tag": "router-train-x"}
    v1 = reg.log_version(_router(0.0), {"target_strong_rate": 0.3}, {"candidate_quality": 0.9},
                         lineage)
    v2 = reg.log_version(_router(2.0), {"target_strong_rate": 0.3}, {"candidate_quality": 0.8},
                         lineage)
    assert (v1, v2) == ("1", "2")
    assert reg.champion_version() is None

    reg.promote(v1, reason="first")
    reg.promote(v2, reason="retrain gate")
    assert reg.champion_version() == "2"
    shown = reg.show("champion")
    assert shown.tags["previous_champion"] == "1"
    assert shown.tags["memory_version"] == "5" and shown.params["target_strong_rate"] == "0.3"
    assert shown.metrics["candidate_quality"] == 0.8

    assert reg.rollback("quality dropped in production") == ("2", "1")
    assert reg.champion_version() == "1"
    assert reg.show("2").tags["rollback_reason"] == "quality dropped in production"
    with pytest.raises(UnknownVersionError, match="replaced no earlier version"):
        reg.rollback("again")
    assert [v.version for v in reg.versions()] == ["2", "1"]
    assert reg.versions()[1].aliases == ["champion"]


def test_unknown_versions_and_aliases_are_clear_errors(tracking_uri):
    reg = RouterRegistry(RegistryConfig(tracking_uri, name="unknowns"))
    reg.log_version(_router(0.5), {}, {}, {})
    with pytest.raises(UnknownVersionError, match="no version or alias '42'"):
        reg.promote("42")
    with pytest.raises(UnknownVersionError, match="no version or alias 'staging'"):
        reg.load("staging")
    with pytest.raises(UnknownVersionError, match="has no champion"):
        reg.rollback("no champion yet")


def test_missing_artifacts_are_an_artifact_error(tracking_uri, tmp_path):
    import shutil
    from pathlib import Path
    from urllib.parse import urlparse

    reg = RouterRegistry(RegistryConfig(tracking_uri, name="missing-files"))
    version = reg.log_version(_router(0.5), {}, {}, {})
    run_id = reg.show(version).run_id
    run_files = Path(urlparse(reg._client.get_run(run_id).info.artifact_uri).path)
    shutil.rmtree(run_files / "router_model" / "artifacts")
    with pytest.raises(ArtifactError, match=f"router version {version}"):
        reg.load(version)


def test_an_unreachable_registry_fails_fast_with_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    reg = RouterRegistry(RegistryConfig(f"http://127.0.0.1:{port}", name="x", http_retries=0))
    started = time.perf_counter()
    with pytest.raises(RegistryUnavailableError, match=f"127.0.0.1:{port}"):
        reg.resolve("champion")
    assert time.perf_counter() - started < 30


def test_pyfunc_model_loads_by_alias_and_routes_request_text(tracking_uri, embedder,
                                                              monkeypatch):
    import mlflow
    import pandas as pd

    reg = RouterRegistry(RegistryConfig(tracking_uri, name="pyfunc"))
    version = reg.log_version(_router(2.0, dim=384), {}, {}, {})
    reg.promote(version)
    # `models:/` resolves through the process-wide URIs (versions in the registry, their
    # files through the tracking store).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", tracking_uri)
    model = mlflow.pyfunc.load_model("models:/pyfunc@champion")
    out = model.predict(pd.DataFrame({"text": ["What is the capital of France?", "2+2?"]}))
    assert list(out.columns) == ["route", "score", "guide_id"]
    assert out["route"].tolist() == ["learn", "learn"]  # threshold above any probability
    assert out["score"].between(0, 1).all()
