"""Embeddings of a replay dataset, computed once and kept as .npy under the data folder.

The file name carries the dataset's sha256 (of its source files), the embedder and the
number of texts, so a changed recording or embedder never reuses stale vectors.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from rar_tasks.embed import Embedder, LocalMiniLM

log = logging.getLogger("rar.replay")


def cache_path(
    data_dir: Path, name: str, sha256: str, embedder_name: str, n: int, part: str = "requests"
) -> Path:
    safe = embedder_name.replace("/", "_")
    return data_dir / "replay" / "embeddings" / f"{name}-{part}-{sha256[:16]}-{safe}-{n}.npy"


def cached_embeddings(
    texts: list[str], path: Path, embedder: Embedder | None = None, batch: int = 256
) -> np.ndarray:
    """Vectors of `texts` (unit rows, float32), read from `path` or computed and saved there.

    Args:
        texts: what to embed, in dataset order.
        path: the .npy file (see `cache_path`).
        embedder: default all-MiniLM-L6-v2 on 2 torch threads.
        batch: texts per embedder call, so progress can be logged.
    """
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors
        log.warning(
            "event=embedding_cache_mismatch path=%s rows=%d texts=%d",
            path,
            vectors.shape[0],
            len(texts),
        )
    embedder = embedder or LocalMiniLM(torch_threads=2)
    started = time.perf_counter()
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(embedder.embed(texts[start : start + batch]))
        log.info("event=embedding_progress done=%d total=%d", start + len(parts[-1]), len(texts))
    vectors = np.vstack(parts).astype(np.float32) if parts else np.zeros((0, embedder.dim))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    log.info(
        "event=embeddings_cached path=%s rows=%d seconds=%.1f",
        path,
        len(texts),
        time.perf_counter() - started,
    )
    return vectors
