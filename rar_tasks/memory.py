"""RAR's memory: past requests with their verdicts and guides, searched by embedding.

`LanceMemory` keeps them in a LanceDB table (a local folder by default; any LanceDB URI).
`ArrayMemory` holds the same records in NumPy arrays for replay evaluation, where thousands
of requests are routed in seconds and nothing needs to persist. Both answer the same calls.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

from rar_tasks.errors import MemoryStoreError, RequestError

log = logging.getLogger("rar.memory")

# Verdicts: the weak model alone was good enough; it was good enough with a guide; it was not.
WEAK_OK = "weak_ok"
GUIDE_OK = "guide_ok"
STRONG_NEEDED = "strong_needed"
VERDICTS = (WEAK_OK, GUIDE_OK, STRONG_NEEDED)


@dataclass
class MemoryRecord:
    """One past request as memory keeps it."""

    request_id: str
    namespace: str
    text: str
    vector: list[float]
    verdict: str
    judge: str = ""
    guide: str = ""
    guide_id: str = ""
    guide_source: str = ""
    weak_model: str = ""
    strong_model: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    guide_uses: int = 0
    guide_successes: int = 0

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise RequestError("verdict", f"must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass
class Neighbour:
    """A memory hit: the stored request, how similar it is (cosine) and what it taught."""

    request_id: str
    similarity: float
    verdict: str
    guide: str
    guide_id: str
    guide_source: str = ""


class Memory(Protocol):
    def search(self, vector: np.ndarray, namespace: str, k: int) -> list[Neighbour]: ...

    def upsert(self, records: list[MemoryRecord]) -> None: ...

    def count(self, namespace: str | None = None) -> int: ...


def _schema(dim: int):
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("request_id", pa.string(), nullable=False),
            pa.field("namespace", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
            pa.field("verdict", pa.string()),
            pa.field("judge", pa.string()),
            pa.field("guide", pa.string()),
            pa.field("guide_id", pa.string()),
            pa.field("guide_source", pa.string()),
            pa.field("weak_model", pa.string()),
            pa.field("strong_model", pa.string()),
            pa.field("created_at", pa.timestamp("us", tz="UTC")),
            pa.field("guide_uses", pa.int64()),
            pa.field("guide_successes", pa.int64()),
        ]
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceMemory:
    """Memory in a LanceDB table; upserts by `request_id` are idempotent.

    Args:
        uri: folder (made absolute) or LanceDB URI.
        dim: embedding size; the table is created with it, and an existing table of
            another size is refused rather than mixed.
        table: table name.
    """

    def __init__(self, uri: str | Path, dim: int, table: str = "memory"):
        import lancedb

        self.uri = str(Path(uri).expanduser().resolve()) if "://" not in str(uri) else str(uri)
        self.dim = dim
        self.table_name = table
        self._write_lock = threading.Lock()
        try:
            self._db = lancedb.connect(self.uri, read_consistency_interval=timedelta(0))
            try:
                # Opened as it is, so that a table of another vector size reaches the check
                # below rather than failing on LanceDB's own schema comparison.
                self._table = self._db.open_table(table)
            except ValueError:
                self._table = self._db.create_table(table, schema=_schema(dim), exist_ok=True)
        except Exception as exc:
            raise MemoryStoreError(
                f"cannot open memory table {table!r} at {self.uri}: {exc}"
            ) from exc
        stored = self._table.schema.field("vector").type.list_size
        if stored != dim:
            raise MemoryStoreError(
                f"memory table {table!r} at {self.uri} holds {stored}-d vectors, the embedder "
                f"gives {dim}-d; use another table or data folder for this embedder"
            )

    @property
    def table(self):
        return self._table

    def version(self) -> int:
        return int(self._table.version)

    def search(self, vector: np.ndarray, namespace: str, k: int) -> list[Neighbour]:
        if self._table.count_rows() == 0:
            return []
        rows = (
            self._table.search(np.asarray(vector, dtype=np.float32), vector_column_name="vector")
            .distance_type("cosine")
            .where(f"namespace = {_quote(namespace)}", prefilter=True)
            .select(["request_id", "verdict", "guide", "guide_id", "guide_source", "_distance"])
            .limit(k)
            .to_list()
        )
        # LanceDB's cosine distance is 1 - cos.
        return [
            Neighbour(
                r["request_id"],
                1.0 - float(r["_distance"]),
                r["verdict"],
                r["guide"] or "",
                r["guide_id"] or "",
                r["guide_source"] or "",
            )
            for r in rows
        ]

    def upsert(self, records: list[MemoryRecord]) -> None:
        if not records:
            return
        for rec in records:
            if len(rec.vector) != self.dim:
                raise RequestError("vector", f"has {len(rec.vector)} values, expected {self.dim}")
        rows = [asdict(r) for r in records]
        for row in rows:
            row["vector"] = [float(x) for x in row["vector"]]
        import pyarrow as pa

        data = pa.Table.from_pylist(rows, schema=_schema(self.dim))
        with self._write_lock:
            try:
                (
                    self._table.merge_insert("request_id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(data)
                )
            except Exception as exc:
                raise MemoryStoreError(f"memory upsert failed: {exc}") from exc
        log.debug("event=memory_upsert rows=%d", len(rows))

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return int(self._table.count_rows())
        return int(self._table.count_rows(f"namespace = {_quote(namespace)}"))

    def get(self, request_id: str) -> dict | None:
        rows = self._table.search().where(f"request_id = {_quote(request_id)}").limit(1).to_list()
        return rows[0] if rows else None

    def guide_count(self) -> int:
        return int(self._table.count_rows("guide != ''"))

    def record_guide_use(self, guide_id: str, helped: bool) -> None:
        """Count one judged use of guide `guide_id` on every entry carrying it; memory
        maintenance retires guides that rarely help."""
        if not guide_id:
            return
        values = {"guide_uses": "guide_uses + 1"}
        if helped:
            values["guide_successes"] = "guide_successes + 1"
        with self._write_lock:
            try:
                self._table.update(where=f"guide_id = {_quote(guide_id)}", values_sql=values)
            except Exception as exc:
                raise MemoryStoreError(f"guide use count failed for {guide_id!r}: {exc}") from exc


class ArrayMemory:
    """The same memory in NumPy arrays, for replay: fast, in-process, not persisted."""

    def __init__(self, dim: int):
        self.dim = dim
        self._vectors = np.zeros((64, dim), dtype=np.float32)  # grows by doubling
        self._records: list[MemoryRecord] = []
        self._index: dict[str, int] = {}
        self._namespaces: list[str] = []
        self._codes: dict[str, int] = {}
        self._namespace_codes = np.zeros(64, dtype=np.int32)

    def search(self, vector: np.ndarray, namespace: str, k: int) -> list[Neighbour]:
        n = len(self._records)
        code = self._codes.get(namespace)
        if not n or code is None:
            return []
        sims = self._vectors[:n] @ np.asarray(vector, dtype=np.float32)
        sims = np.where(self._namespace_codes[:n] == code, sims, -np.inf)
        # argpartition keeps a search over thousands of rows at O(n); only k rows are sorted.
        top = np.argpartition(-sims, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-sims[top], kind="stable")]
        return [
            Neighbour(
                self._records[i].request_id,
                float(sims[i]),
                self._records[i].verdict,
                self._records[i].guide,
                self._records[i].guide_id,
                self._records[i].guide_source,
            )
            for i in top
            if np.isfinite(sims[i])
        ]

    def upsert(self, records: list[MemoryRecord]) -> None:
        for rec in records:
            row = np.asarray(rec.vector, dtype=np.float32)[None, :]
            if rec.request_id in self._index:
                i = self._index[rec.request_id]
                self._records[i] = rec
                self._vectors[i] = row
                self._namespaces[i] = rec.namespace
                self._namespace_codes[i] = self._code(rec.namespace)
            else:
                n = len(self._records)
                if n == len(self._vectors):
                    self._vectors = np.vstack([self._vectors, np.zeros_like(self._vectors)])
                    self._namespace_codes = np.concatenate(
                        [self._namespace_codes, np.zeros_like(self._namespace_codes)]
                    )
                self._vectors[n] = row
                self._namespace_codes[n] = self._code(rec.namespace)
                self._index[rec.request_id] = n
                self._records.append(rec)
                self._namespaces.append(rec.namespace)

    def _code(self, namespace: str) -> int:
        return self._codes.setdefault(namespace, len(self._codes))

    def record_guide_use(self, guide_id: str, helped: bool) -> None:
        for rec in self._records:
            if guide_id and rec.guide_id == guide_id:
                rec.guide_uses += 1
                rec.guide_successes += int(helped)

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return len(self._records)
        return sum(ns == namespace for ns in self._namespaces)
