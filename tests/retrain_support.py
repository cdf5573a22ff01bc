"""Helpers of the registry, retraining and deployment tests: synthetic memories whose verdicts
follow the embedding, so a fitted router has something real to learn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from rar_tasks.memory import GUIDE_OK, STRONG_NEEDED, WEAK_OK, LanceMemory, MemoryRecord


def synthetic_records(n: int, dim: int = 16, seed: int = 0,
                      guide_every: int = 7) -> list[MemoryRecord]:
    """`n` records, oldest first; the weak model is good where the first coordinate is high."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    good = vectors[:, 0] + 0.3 * rng.normal(size=n) > -0.2
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = []
    for i in range(n):
        verdict, guide, guide_id = (WEAK_OK, "", "") if good[i] else (STRONG_NEEDED, "", "")
        if good[i] and guide_every and i % guide_every == 0:
            verdict, guide, guide_id = GUIDE_OK, f"hint for request {i}", f"g{i}"
        records.append(MemoryRecord(f"r{i}", "default", f"request {i}", vectors[i].tolist(),
                                    verdict, guide=guide, guide_id=guide_id,
                                    created_at=start + timedelta(minutes=i)))
    return records


def write_memory(data_dir: Path, n: int = 200, dim: int = 16, seed: int = 0) -> LanceMemory:
    memory = LanceMemory(Path(data_dir) / "memory.lance", dim)
    memory.upsert(synthetic_records(n, dim, seed))
    return memory
