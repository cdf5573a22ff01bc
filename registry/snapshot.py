"""A pinned, read-only copy of memory in NumPy arrays, and its time-ordered train/holdout split.

Retraining reads memory at one LanceDB table version (optionally tagged, so the version stays
reachable after compaction), which is what a router version records as its lineage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rar_tasks.errors import MemoryStoreError
from rar_tasks.memory import GUIDE_OK, VERDICTS, WEAK_OK

COLUMNS = ["request_id", "namespace", "vector", "verdict", "guide", "guide_id", "created_at"]


@dataclass
class MemorySnapshot:
    """Memory rows at one table version, ordered by `created_at` (oldest first)."""

    uri: str
    table: str
    version: int
    tag: str
    request_ids: np.ndarray
    namespaces: np.ndarray
    vectors: np.ndarray
    verdicts: np.ndarray
    guides: np.ndarray
    guide_ids: np.ndarray
    created_at: np.ndarray

    def __len__(self) -> int:
        return len(self.request_ids)

    @property
    def weak_good(self) -> np.ndarray:
        """The label a router version learns: the weak model was good enough (with or without
        a guide)."""
        return np.isin(self.verdicts, (WEAK_OK, GUIDE_OK))

    def subset(self, index: np.ndarray) -> MemorySnapshot:
        index = np.asarray(index, dtype=int)
        return MemorySnapshot(
            self.uri, self.table, self.version, self.tag, self.request_ids[index],
            self.namespaces[index], self.vectors[index], self.verdicts[index],
            self.guides[index], self.guide_ids[index], self.created_at[index],
        )

    def fingerprint(self) -> str:
        """sha256 (first 16 hex) of the request ids, in order: which data, not which version."""
        digest = hashlib.sha256("\n".join(self.request_ids.tolist()).encode())
        return digest.hexdigest()[:16]

    def time_range(self) -> tuple[str, str]:
        if len(self) == 0:
            return "", ""
        return str(self.created_at[0]), str(self.created_at[-1])


def read_memory(uri: str | Path, table: str = "memory", namespace: str | None = None,
                version: int | str | None = None, tag: str | None = None) -> MemorySnapshot:
    """Read memory rows (all namespaces unless `namespace`) at one table version.

    Args:
        uri: the LanceDB folder (e.g. `<data_dir>/memory.lance`) or URI.
        table: table name.
        namespace: keep only this namespace.
        version: a table version number or tag to read; default the latest.
        tag: if given, tag the version read under this name (a write to the table's
            metadata only; rows are untouched). Not allowed together with `version`.

    Raises:
        MemoryStoreError: the table cannot be opened, the version is unknown, or tagging fails.
    """
    import lancedb

    uri = str(Path(uri).expanduser().resolve()) if "://" not in str(uri) else str(uri)
    try:
        db = lancedb.connect(uri)
        tbl = db.open_table(table)
    except Exception as exc:
        raise MemoryStoreError(f"cannot open memory table {table!r} at {uri}: {exc}") from exc
    if version is not None:
        try:
            tbl.checkout(version)
        except Exception as exc:
            raise MemoryStoreError(
                f"memory table {table!r} at {uri} has no version or tag {version!r}: {exc}"
            ) from exc
    pinned = int(tbl.version)
    if tag:
        if version is not None:
            raise MemoryStoreError("tag: cannot tag while reading an older version; omit one")
        try:
            tbl.tags.create(tag, pinned)
        except Exception as exc:
            existing = _tag_version(tbl, tag)
            if existing != pinned:
                raise MemoryStoreError(
                    f"cannot tag memory version {pinned} as {tag!r} (tag points at "
                    f"{existing}): {exc}"
                ) from exc
    try:
        data = tbl.to_arrow().select(COLUMNS)
    except Exception as exc:
        raise MemoryStoreError(f"cannot read memory table {table!r} at {uri}: {exc}") from exc
    if namespace:
        import pyarrow.compute as pc

        data = data.filter(pc.equal(data.column("namespace"), namespace))
    return _from_arrow(data, uri, table, pinned, tag or "")


def _tag_version(tbl, tag: str) -> int | None:
    try:
        found = tbl.tags.list().get(tag)
    except Exception:
        return None
    if found is None:
        return None
    return int(found["version"] if isinstance(found, dict) else found.version)


def _from_arrow(data, uri: str, table: str, version: int, tag: str) -> MemorySnapshot:
    n = data.num_rows
    created = data.column("created_at").to_numpy(zero_copy_only=False)
    order = np.argsort(created, kind="stable")
    if n:
        vectors = np.asarray(data.column("vector").combine_chunks().flatten().to_numpy(),
                             dtype=np.float32).reshape(n, -1)
    else:
        vectors = np.zeros((0, 0), dtype=np.float32)

    def col(name: str) -> np.ndarray:
        return np.asarray([v or "" for v in data.column(name).to_pylist()], dtype=object)

    verdicts = col("verdict")
    bad = set(verdicts.tolist()) - set(VERDICTS)
    if bad:
        raise MemoryStoreError(f"memory table {table!r} holds unknown verdicts {sorted(bad)}")
    snap = MemorySnapshot(uri, table, version, tag, col("request_id"), col("namespace"), vectors,
                          verdicts, col("guide"), col("guide_id"), created)
    return snap.subset(order)


def time_split(snapshot: MemorySnapshot, holdout_fraction: float
               ) -> tuple[MemorySnapshot, MemorySnapshot]:
    """The oldest `1 - holdout_fraction` of rows to train on, the newest to hold out.

    A time-ordered split evaluates a version on requests that came after everything it
    learned from, as serving will.

    Raises:
        ValueError: `holdout_fraction` outside (0, 1).
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    cut = int(round(len(snapshot) * (1.0 - holdout_fraction)))
    index = np.arange(len(snapshot))
    return snapshot.subset(index[:cut]), snapshot.subset(index[cut:])
