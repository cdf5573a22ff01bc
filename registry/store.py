"""Router versions in the MLflow model registry: log, register, alias, promote, roll back, load.

The registry is any MLflow tracking URI: by default a SQLite file next to memory
(`sqlite:///<data_dir>/mlflow.db`, artifacts in `<data_dir>/mlartifacts`), so everything works
offline; an `http://` MLflow server works the same. Aliases: `champion` serves, `challenger`
is the latest candidate. Each promotion records the champion it replaced, which is where
`rollback` goes back to.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from registry.errors import (
    ArtifactError,
    RegistryError,
    RegistryUnavailableError,
    UnknownVersionError,
)
from registry.router_version import FittedRouter

log = logging.getLogger("rar.registry")

CHAMPION = "champion"
CHALLENGER = "challenger"
ROUTER_ARTIFACT = "router"
MODEL_ARTIFACT = "router_model"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
T = TypeVar("T")


@dataclass
class RegistryConfig:
    """Where router versions live.

    Args:
        tracking_uri: MLflow tracking and registry URI (`sqlite:///abs/path.db`,
            `http://127.0.0.1:5000`, or a `file:` folder).
        name: registered model name.
        experiment: MLflow experiment of the retraining runs.
        http_retries: retries of a failing HTTP call to a remote MLflow (MLflow's own default
            retries for minutes, which would stall serving).
        http_timeout_s: timeout of one HTTP call.
    """

    tracking_uri: str
    name: str = "rar-router"
    experiment: str = "rar-router-retraining"
    http_retries: int = 1
    http_timeout_s: float = 5.0

    @classmethod
    def resolve(cls, data_dir: str | Path | None = None, tracking_uri: str | None = None,
                name: str | None = None, **kwargs: Any) -> RegistryConfig:
        """Take explicit values, then `RAR_REGISTRY_URI` / `RAR_REGISTRY_NAME`, then
        `MLFLOW_TRACKING_URI`, then a SQLite file in `data_dir` (default: the settings')."""
        uri = tracking_uri or os.environ.get("RAR_REGISTRY_URI") or os.environ.get(
            "MLFLOW_TRACKING_URI")
        if not uri:
            if data_dir is None:
                from rar_tasks.config import load_settings

                data_dir = load_settings().data_dir()
            folder = Path(data_dir).expanduser().resolve()
            uri = f"sqlite:///{folder / 'mlflow.db'}"
        return cls(uri, name or os.environ.get("RAR_REGISTRY_NAME") or "rar-router", **kwargs)

    def artifact_root(self) -> str | None:
        """For a SQLite store, `mlartifacts/` next to the database; else the server decides."""
        if self.tracking_uri.startswith("sqlite:///"):
            db = Path(self.tracking_uri[len("sqlite:///"):])
            return (db.parent / "mlartifacts").as_uri()
        return None


@dataclass
class VersionInfo:
    """One registered router version as the CLI and flows show it."""

    version: str
    aliases: list[str]
    run_id: str
    created: str
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]


class RouterRegistry:
    """Router versions of one registered model name.

    Example:
        >>> reg = RouterRegistry(RegistryConfig.resolve(data_dir="/tmp/rar"))
        >>> version = reg.log_version(router, params={}, metrics={}, tags={})
        >>> reg.promote(version, reason="first")
        >>> router = reg.load("champion")
    """

    def __init__(self, config: RegistryConfig):
        self.config = config
        self.name = config.name
        if config.tracking_uri.startswith("sqlite:///"):
            folder = Path(config.tracking_uri[len("sqlite:///"):]).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RegistryUnavailableError(
                    f"registry {config.tracking_uri}: cannot create folder {folder}: {exc}; "
                    "pass a writable --registry-uri or --data-dir"
                ) from exc
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(config.http_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(config.http_timeout_s)))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        self._client = MlflowClient(config.tracking_uri, config.tracking_uri)

    # -- reading ---------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """The version number that `ref` (a number or an alias) names.

        Raises:
            UnknownVersionError: no such version or alias.
            RegistryUnavailableError: the registry cannot be reached.
        """
        ref = str(ref).strip()
        if ref.isdigit():
            self._call(lambda: self._client.get_model_version(self.name, ref), ref)
            return ref
        mv = self._call(lambda: self._client.get_model_version_by_alias(self.name, ref), ref)
        return str(mv.version)

    def champion_version(self) -> str | None:
        """The version aliased `champion`, or None when none is."""
        try:
            return self.resolve(CHAMPION)
        except UnknownVersionError:
            return None

    def show(self, ref: str) -> VersionInfo:
        """Everything recorded about one version (number or alias)."""
        version = self.resolve(ref)
        mv = self._call(lambda: self._client.get_model_version(self.name, version), ref)
        return self._info(mv, self._aliases())

    def versions(self) -> list[VersionInfo]:
        """All versions, newest first."""
        found = self._call(
            lambda: self._client.search_model_versions(f"name = '{self.name}'"), self.name)
        aliases = self._aliases() if found else {}
        return [self._info(mv, aliases) for mv in sorted(found, key=lambda mv: -int(mv.version))]

    def _aliases(self) -> dict[str, list[str]]:
        """Version number -> its aliases (version search results do not carry them)."""
        model = self._call(lambda: self._client.get_registered_model(self.name), self.name)
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        return by_version

    def _info(self, mv, aliases: dict[str, list[str]]) -> VersionInfo:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if mv.run_id:
            try:
                run = self._client.get_run(mv.run_id)
                metrics, params = dict(run.data.metrics), dict(run.data.params)
            except Exception as exc:  # a deleted run should not hide the version
                log.warning("event=run_unreadable run_id=%s error=%s", mv.run_id, exc)
        created = time.strftime("%Y-%m-%d %H:%M:%S",
                                time.localtime((mv.creation_timestamp or 0) / 1000))
        return VersionInfo(str(mv.version), sorted(aliases.get(str(mv.version), [])),
                           mv.run_id or "", created, dict(mv.tags or {}), metrics, params)

    # -- writing ---------------------------------------------------------------------------

    def log_version(self, router: FittedRouter, params: dict[str, Any],
                    metrics: dict[str, float], tags: dict[str, str],
                    artifacts: dict[str, str | Path] | None = None,
                    run_name: str | None = None) -> str:
        """Log `router` as a pyfunc model in a new run, register it, and return its version.

        Args:
            router: the fitted router version.
            params: run parameters (configuration, training settings).
            metrics: run metrics (e.g. holdout metrics of the candidate and champion).
            tags: set on the run and on the registered version (lineage).
            artifacts: extra files logged with the run, by artifact path.
            run_name: MLflow run name.

        Raises:
            RegistryUnavailableError: the store cannot be reached or written.
        """
        import mlflow.pyfunc
        from mlflow.entities import Metric, Param
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", "text"),
                           ColSpec("string", "namespace", required=False)]),
            outputs=Schema([ColSpec("string", "route"), ColSpec("double", "score"),
                            ColSpec("string", "guide_id")]),
        )
        experiment_id = self._experiment_id()
        client = self._client
        try:
            run = client.create_run(experiment_id, run_name=run_name, tags=tags)
            run_id = run.info.run_id
            with tempfile.TemporaryDirectory(prefix="rar-router-") as tmp:
                files = router.save(Path(tmp) / ROUTER_ARTIFACT)
                # Saved locally and uploaded with the client: no process-wide MLflow state.
                mlflow.pyfunc.save_model(
                    path=str(Path(tmp) / MODEL_ARTIFACT),
                    python_model=str(PYFUNC_CODE),
                    artifacts={ROUTER_ARTIFACT: str(files)},
                    signature=signature,
                    pip_requirements=["mlflow", "numpy", "pandas", "prefect-rar"],
                )
                client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
            for path, local in (artifacts or {}).items():
                client.log_artifact(run_id, str(local), artifact_path=path)
            client.log_batch(
                run_id,
                params=[Param(k, _param(v)) for k, v in params.items()],
                metrics=[Metric(k, float(v), int(time.time() * 1000), 0)
                         for k, v in metrics.items() if _finite(v)],
            )
            client.set_terminated(run_id)
            self._ensure_registered_model()
            mv = client.create_model_version(self.name, f"runs:/{run_id}/{MODEL_ARTIFACT}",
                                             run_id=run_id, tags={**tags, "run_id": run_id})
            version = str(mv.version)
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryUnavailableError(
                f"cannot log router version to {self.config.tracking_uri}: {exc}") from exc
        log.info("event=router_version_logged name=%s version=%s run_id=%s", self.name, version,
                 run_id)
        return version

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(self.name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            self._client.create_registered_model(self.name)

    def set_alias(self, alias: str, ref: str) -> str:
        """Point `alias` at version `ref` (number or alias); return the version number."""
        version = self.resolve(ref)
        self._call(lambda: self._client.set_registered_model_alias(self.name, alias, version),
                   ref)
        log.info("event=alias_set name=%s alias=%s version=%s", self.name, alias, version)
        return version

    def promote(self, ref: str, reason: str = "manual") -> str:
        """Make version `ref` the champion, recording the champion it replaces.

        Returns:
            The promoted version number.

        Raises:
            UnknownVersionError: `ref` names no version.
        """
        version = self.resolve(ref)
        previous = self.champion_version()
        if previous == version:
            return version
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        tags = {"promoted_at": stamp, "promote_reason": reason}
        if previous is not None:
            tags["previous_champion"] = previous
        for key, value in tags.items():
            self._call(lambda k=key, v=value: self._client.set_model_version_tag(
                self.name, version, k, v), ref)
        self.set_alias(CHAMPION, version)
        log.info("event=champion_promoted name=%s version=%s previous=%s", self.name, version,
                 previous)
        return version

    def rollback(self, reason: str) -> tuple[str, str]:
        """Move `champion` back to the version it replaced; tag the demoted one with `reason`.

        Returns:
            (demoted version, new champion version).

        Raises:
            UnknownVersionError: there is no champion, or it replaced no earlier version.
        """
        if not reason.strip():
            raise RegistryError("reason: a rollback needs a reason, e.g. --reason 'quality drop'")
        current = self.champion_version()
        if current is None:
            raise UnknownVersionError(f"model {self.name!r} has no champion to roll back")
        previous = self.show(current).tags.get("previous_champion")
        if not previous:
            raise UnknownVersionError(
                f"champion version {current} of {self.name!r} replaced no earlier version; "
                "promote a version explicitly instead"
            )
        self.resolve(previous)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        for key, value in (("rolled_back_at", stamp), ("rollback_reason", reason)):
            self._call(lambda k=key, v=value: self._client.set_model_version_tag(
                self.name, current, k, v), current)
        self.set_alias(CHAMPION, previous)
        log.info("event=champion_rolled_back name=%s from=%s to=%s", self.name, current,
                 previous)
        return current, previous

    # -- loading ---------------------------------------------------------------------------

    def load(self, ref: str = CHAMPION, memory=None) -> FittedRouter:
        """Download version `ref` (number or alias) and return its router.

        Raises:
            UnknownVersionError, RegistryUnavailableError, ArtifactError.
        """
        version = self.resolve(ref)
        import mlflow

        source = self._call(
            lambda: self._client.get_model_version_download_uri(self.name, version), ref)
        # The files are read into memory, so the downloaded copy can go right away.
        with tempfile.TemporaryDirectory(prefix="rar-router-load-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{source.rstrip('/')}/artifacts/{ROUTER_ARTIFACT}",
                    tracking_uri=self.config.tracking_uri, dst_path=tmp,
                )
            except Exception as exc:
                raise ArtifactError(
                    f"cannot download files of router version {version} of {self.name!r} "
                    f"from {source}: {exc}"
                ) from exc
            return FittedRouter.load(Path(local), version, memory)

    def _experiment_id(self) -> str:
        def get_or_create() -> str:
            found = self._client.get_experiment_by_name(self.config.experiment)
            if found is not None:
                return found.experiment_id
            return self._client.create_experiment(self.config.experiment,
                                                  artifact_location=self.config.artifact_root())

        return self._call(get_or_create, self.config.experiment)

    def _call(self, fn: Callable[[], T], ref: str) -> T:
        """Run one registry call, turning MLflow's errors into ours."""
        from mlflow.exceptions import MlflowException

        try:
            return fn()
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
                    code == "INVALID_PARAMETER_VALUE" and "alias" in str(exc).lower()):
                raise UnknownVersionError(
                    f"model {self.name!r} has no version or alias {ref!r}; "
                    "see `rar registry list`"
                ) from None
            text = str(exc)
            if "Max retries exceeded" in text or "Connection" in text:
                raise RegistryUnavailableError(
                    f"registry {self.config.tracking_uri} cannot be reached (is the MLflow "
                    f"server running?): {text[:200]}"
                ) from exc
            raise RegistryUnavailableError(
                f"registry {self.config.tracking_uri} failed on {ref!r}: {text[:300]}"
            ) from exc
        except Exception as exc:
            raise RegistryUnavailableError(
                f"registry {self.config.tracking_uri} cannot be reached: {str(exc)[:300]}"
            ) from exc


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 500 else text[:497] + "..."


def _finite(value: Any) -> bool:
    try:
        return float(value) == float(value) and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False
