"""Serving follows the registry: `rar registry promote/rollback` changes the router version the
predict-route step uses, without a restart; registry and file failures keep the current one."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from typer.testing import CliRunner

from rar_tasks.cli import app
from rar_tasks.predict_route import predict_route
from rar_tasks.requests import make_request
from registry.classifier import WeakGoodClassifier
from registry.router_version import FittedRouter, GuideBank, VersionConfig
from registry.serving import ChampionRouter, use_champion
from registry.store import RegistryConfig, RouterRegistry


def _router(threshold: float, dim: int = 384) -> FittedRouter:
    clf = WeakGoodClassifier()
    clf.coef_ = np.zeros(dim, dtype=np.float32)
    clf.intercept_, clf.threshold_ = 0.0, threshold  # every score is 0.5
    bank = GuideBank(np.zeros((0, dim), dtype=np.float32), [], [], [])
    return FittedRouter(clf, bank, VersionConfig("local/all-MiniLM-L6-v2", dim, 0.3))


@pytest.fixture(scope="module")
def _module_registry(tmp_path_factory) -> RouterRegistry:
    folder = tmp_path_factory.mktemp("serving")
    reg = RouterRegistry(RegistryConfig(f"sqlite:///{folder / 'mlflow.db'}", name="serving"))
    reg.log_version(_router(0.0), {}, {}, {})
    reg.log_version(_router(0.9), {}, {}, {})
    return reg


@pytest.fixture
def registry(_module_registry) -> RouterRegistry:
    """Version 1 routes everything weak, version 2 everything to learn; 1 is champion."""
    _module_registry.set_alias("champion", "1")
    return _module_registry


def _cli(registry: RouterRegistry, *args: str):
    result = CliRunner().invoke(app, ["registry", *args, "--registry-uri",
                                      registry.config.tracking_uri, "--name", registry.name])
    return result


def test_promote_and_rollback_change_what_serving_uses(make_ctx, registry):
    ctx = make_ctx()
    router = use_champion(ctx, registry.config, check_every_requests=1)
    request = make_request({"text": "Which river is the longest in Africa?"})

    first = predict_route.fn(ctx, request)
    assert (first.kind, router.version) == ("weak", "1")
    assert "version=1" in first.reason

    result = _cli(registry, "promote", "2", "--reason", "test")
    assert result.exit_code == 0, result.output
    assert "1 -> 2" in result.output
    second = predict_route.fn(ctx, request)
    assert (second.kind, router.version) == ("learn", "2")

    result = _cli(registry, "rollback", "--reason", "too many strong calls")
    assert result.exit_code == 0, result.output
    third = predict_route.fn(ctx, request)
    assert (third.kind, router.version) == ("weak", "1")
    assert registry.show("2").tags["rollback_reason"] == "too many strong calls"


def test_cli_reports_unknown_versions_and_lists_aliases(registry):
    result = _cli(registry, "promote", "9")
    assert result.exit_code == 2
    assert "no version or alias '9'" in result.output
    listed = _cli(registry, "list")
    assert listed.exit_code == 0 and "champion" in listed.output
    shown = _cli(registry, "show", "champion")
    assert shown.exit_code == 0 and '"version": "1"' in shown.output


def test_alias_is_checked_every_n_requests_or_seconds(registry):
    now = [0.0]
    router = ChampionRouter(registry, check_every_requests=3, check_every_s=60,
                            clock=lambda: now[0])
    request = make_request({"text": "x"})
    vector = np.zeros(384, dtype=np.float32)
    registry.promote("2")
    router.route(request, vector)
    router.route(request, vector)
    assert router.version == "1"  # two requests: not due yet
    router.route(request, vector)
    assert router.version == "2"  # third request: checked

    registry.promote("1")
    now[0] = 61.0
    router.route(request, vector)
    assert router.version == "1"  # a minute passed: checked


def test_failures_keep_the_current_version(registry):
    router = ChampionRouter(registry, check_every_requests=1)
    assert router.version == "1"

    # The alias moves to a version whose files are gone.
    version = registry.log_version(_router(0.5), {}, {}, {})
    run_id = registry.show(version).run_id
    run_files = Path(urlparse(registry._client.get_run(run_id).info.artifact_uri).path)
    shutil.rmtree(run_files / "router_model" / "artifacts")
    registry.promote(version)
    assert router.refresh() is False
    assert router.version == "1"
    assert "cannot download files of router version 3" in router.stats.last_error

    # The registry becomes unreachable.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    router.registry = RouterRegistry(RegistryConfig(f"http://127.0.0.1:{port}", name="serving",
                                                    http_retries=0))
    assert router.refresh() is False
    assert router.version == "1" and router.stats.errors == 2


def test_unknown_alias_serves_with_the_fallback(registry):
    class Fallback:
        def route(self, request, vector):
            return "fallback-route"

    router = ChampionRouter(registry, fallback=Fallback(), alias="no-such-alias")
    assert router.version is None
    assert router.route(make_request({"text": "x"}), np.zeros(384)) == "fallback-route"
    assert "no version or alias 'no-such-alias'" in router.stats.last_error


def test_alias_check_cost_is_small(registry):
    router = ChampionRouter(registry, check_every_requests=1)
    checks_before, seconds_before = router.stats.checks, router.stats.check_seconds
    started = time.perf_counter()
    for _ in range(50):
        router.refresh()
    per_check_ms = 1000 * (time.perf_counter() - started) / 50
    assert router.stats.checks - checks_before == 50
    mean_ms = 1000 * (router.stats.check_seconds - seconds_before) / 50
    print(f"alias check: {per_check_ms:.2f} ms wall, {mean_ms:.2f} ms measured (SQLite)")
    assert per_check_ms < 100
