"""`deployments/prefect.yaml` names real flows, parameters they take, and valid schedules."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import yaml
from prefect.client.schemas.schedules import CronSchedule

REPO = Path(__file__).resolve().parent.parent


def _load_flow(entrypoint: str):
    path, name = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(Path(path).stem, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_prefect_yaml_deployments_match_the_flows():
    config = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    names = {d["name"] for d in config["deployments"]}
    assert names == {"nightly-retrain", "nightly-maintenance"}
    for deployment in config["deployments"]:
        flow = _load_flow(deployment["entrypoint"])
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(deployment["parameters"]) <= accepted, deployment["name"]
        assert deployment["work_pool"]["name"] == "rar-process"
        for schedule in deployment["schedules"]:
            CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])


def test_deploy_module_uses_the_same_entrypoints():
    from deployments import deploy

    config = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in config["deployments"]}
    assert entrypoints == {deploy.RETRAIN_ENTRYPOINT, deploy.MAINTAIN_ENTRYPOINT}
