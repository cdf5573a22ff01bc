"""Shared fixtures of the core tests: real settings in a temp data folder, the MiniLM embedder
loaded once per session, real MMLU/GSM8K rows, and a throwaway Prefect API for flow runs.

Every model test uses the smallest local model (SmolLM2-135M) as both weak and strong, with
one thread and few tokens, so the suite stays fast on a shared two-core machine.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before Prefect, LiteLLM or Hugging Face are imported: keep Prefect's state out of the user's
# home, and every library offline.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rar-tests-prefect-"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

SMALL_MODEL = "gguf/smollm2-135m"


def shared_data_root() -> Path:
    """`../shared/data` next to the repository, or `RAR_SHARED_DATA` (read only)."""
    from rar_tasks.config import Settings

    root = Settings().shared_data_root()
    assert (root / "mmlu" / "test").is_dir(), f"shared data not found at {root}"
    return root


def small_overrides(data_dir: Path, **extra) -> dict:
    """Config overrides for tests: SmolLM2 as weak and strong, memory in `data_dir`."""
    overrides = {
        "weak": {"model": SMALL_MODEL, "max_tokens": 8},
        "strong": {"model": SMALL_MODEL, "max_tokens": 8},
        "local": {"n_threads": 1, "n_ctx": 2048},
        "guide": {"max_tokens": 24},
        "memory": {"data_dir": str(data_dir)},
        "data_root": str(shared_data_root()),
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            overrides.setdefault(key, {}).update(value)
        else:
            overrides[key] = value
    return overrides


@pytest.fixture(autouse=True)
def _no_rar_environment(monkeypatch):
    """The developer's own `RAR_*` variables must not leak into a test."""
    for key in list(os.environ):
        if key.startswith("RAR_"):
            monkeypatch.delenv(key)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def small_config(data_dir):
    """`small_config(**extra)`: the test overrides for memory in `data_dir`, plus `extra`."""
    return lambda **extra: small_overrides(data_dir, **extra)


@pytest.fixture
def make_settings(small_config, tmp_path, monkeypatch):
    """`make_settings(**extra)`: Settings with SmolLM2 for both models, memory in a temp
    folder; cwd is temp too, so a developer's `./rar.toml` is not picked up."""
    from rar_tasks.config import load_settings

    monkeypatch.chdir(tmp_path)
    return lambda **extra: load_settings(overrides=small_config(**extra), environ={})


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 embedder, loaded once for the whole session."""
    from rar_tasks.embed import LocalMiniLM

    model = LocalMiniLM(torch_threads=1)
    model.embed(["warm up"])
    return model


@pytest.fixture
def make_ctx(make_settings, embedder):
    """`make_ctx(**extra)`: a real RAR context (LanceDB memory in the temp data folder)."""
    from rar_tasks.context import build_context

    return lambda **extra: build_context(make_settings(**extra), embedder)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return shared_data_root()


@pytest.fixture(scope="session")
def geography(data_root):
    """All real MMLU high-school geography test rows, as requests."""
    from rar_tasks.requests import load_mmlu

    return load_mmlu(data_root, ["high_school_geography"])


@pytest.fixture(scope="session")
def prefect_api():
    """A temporary Prefect API (SQLite in a temp folder), for real flow runs without a server."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
