"""Prefect flow that keeps memory small and useful: remove near-identical entries, retire guides
that did not help, and build a vector index once the table is large enough to need one.

Near-duplicates are found by exact cosine similarity in blocks, which is quadratic in the rows
of a namespace: about a minute at 100k rows of 384-d on one core; larger memories need an
approximate method that this flow does not have yet.
"""

from __future__ import annotations

import math
import time

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rar_tasks.config import load_settings
from rar_tasks.memory import GUIDE_OK
from registry.snapshot import MemorySnapshot, read_memory

BLOCK_ROWS = 2048


def near_duplicates(snapshot: MemorySnapshot, min_similarity: float) -> list[str]:
    """Request ids to delete so that no two kept entries of a namespace are at least
    `min_similarity` alike.

    Of each near-identical group, the entry kept is the one with a helping guide, else the
    newest (it carries the latest verdict).
    """
    drop: set[str] = set()
    for namespace in np.unique(snapshot.namespaces):
        idx = np.flatnonzero(snapshot.namespaces == namespace)
        # Visit the entries to keep first: guide-helped, then newest.
        has_guide = (snapshot.verdicts[idx] == GUIDE_OK) & (snapshot.guides[idx] != "")
        order = idx[np.lexsort((-np.arange(len(idx)), ~has_guide))]
        vectors = snapshot.vectors[order]
        removed = np.zeros(len(order), dtype=bool)
        for start in range(0, len(order), BLOCK_ROWS):
            block = slice(start, min(start + BLOCK_ROWS, len(order)))
            sims = vectors[block] @ vectors.T
            for row, i in enumerate(range(block.start, block.stop)):
                if removed[i]:
                    continue
                close = np.flatnonzero(sims[row, i + 1:] >= min_similarity) + i + 1
                removed[close] = True
        drop.update(snapshot.request_ids[order[removed]].tolist())
    return sorted(drop)


def unhelpful_guides(table, min_uses: int, min_success_rate: float) -> list[str]:
    """Guide ids used at least `min_uses` times whose weak answers were judged good less than
    `min_success_rate` of the time (counts are the largest any entry carrying the guide has)."""
    data = table.to_arrow().select(["guide_id", "guide", "guide_uses", "guide_successes"])
    stats: dict[str, tuple[int, int]] = {}
    for gid, guide, uses, wins in zip(*(data.column(c).to_pylist() for c in data.column_names),
                                      strict=True):
        if not gid or not guide:
            continue
        best = stats.get(gid, (0, 0))
        if (uses or 0) > best[0]:
            stats[gid] = (uses or 0, wins or 0)
    return sorted(gid for gid, (uses, wins) in stats.items()
                  if uses >= min_uses and wins / uses < min_success_rate)


@task(name="dedupe-memory", cache_policy=NO_CACHE)
def dedupe_memory(table, snapshot: MemorySnapshot, min_similarity: float, dry_run: bool) -> int:
    ids = near_duplicates(snapshot, min_similarity)
    if ids and not dry_run:
        for start in range(0, len(ids), 500):
            quoted = ", ".join(f"'{i}'" for i in ids[start:start + 500])
            table.delete(f"request_id IN ({quoted})")
    return len(ids)


@task(name="retire-guides", cache_policy=NO_CACHE)
def retire_guides(table, min_uses: int, min_success_rate: float, dry_run: bool) -> int:
    """Blank the text of unhelpful guides; ids and counters stay for the record, and routers
    skip entries whose guide text is empty."""
    ids = unhelpful_guides(table, min_uses, min_success_rate)
    if ids and not dry_run:
        quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
        table.update(where=f"guide_id IN ({quoted})", values={"guide": ""})
    return len(ids)


@task(name="build-vector-index", cache_policy=NO_CACHE)
def build_vector_index(table, min_rows: int, dry_run: bool) -> str:
    """Build an IVF-PQ cosine index past `min_rows`, or fold new rows into an existing one."""
    rows = table.count_rows()
    has_index = any("vector" in (getattr(ix, "columns", None) or [])
                    for ix in table.list_indices())
    if has_index:
        if not dry_run:
            table.optimize()
        return "optimized"
    if rows < min_rows:
        return f"not_needed rows={rows} min_rows={min_rows}"
    if dry_run:
        return "would_build"
    dim = table.schema.field("vector").type.list_size
    from lancedb.index import IvfPq

    table.create_index("vector", config=IvfPq(distance_type="cosine",
                                              num_partitions=max(1, int(math.sqrt(rows))),
                                              num_sub_vectors=_sub_vectors(dim)))
    return "built"


def _sub_vectors(dim: int) -> int:
    for size in (8, 4, 2, 1):  # dimensions per PQ sub-vector
        if dim % size == 0 and dim // size >= 1:
            return dim // size
    return 1


@flow(name="rar-maintain-memory")
def maintain_memory(
    config_path: str | None = None,
    overrides: dict | None = None,
    dedupe_similarity: float = 0.98,
    retire_min_uses: int = 5,
    retire_min_success_rate: float = 0.3,
    index_min_rows: int = 20_000,
    dry_run: bool = False,
) -> dict:
    """Deduplicate memory, retire unhelpful guides, build a vector index when large.

    Args:
        config_path, overrides: configuration, as for `rar run`.
        dedupe_similarity: cosine at or above which two entries of a namespace are one.
        retire_min_uses: judged uses before a guide can be retired.
        retire_min_success_rate: guides helping less often than this are retired.
        index_min_rows: build an index from this many rows (measured brute-force search: 21 ms
            at 10k rows, 278 ms at 100k; an IVF-PQ index: 4 and 10 ms).
        dry_run: count what would change, write nothing.

    Returns:
        Counts of removed entries and retired guides, the index action, rows before/after.

    Example:
        >>> from flows.maintain import maintain_memory
        >>> maintain_memory(dry_run=True)
    """
    import lancedb

    logger = get_run_logger()
    started = time.perf_counter()
    settings = load_settings(config_path, overrides)
    uri = settings.data_dir() / "memory.lance"
    snapshot = read_memory(uri, settings.memory.table)
    table = lancedb.connect(str(uri)).open_table(settings.memory.table)
    rows_before = table.count_rows()
    removed = dedupe_memory(table, snapshot, dedupe_similarity, dry_run)
    retired = retire_guides(table, retire_min_uses, retire_min_success_rate, dry_run)
    index = build_vector_index(table, index_min_rows, dry_run)
    result = {"rows_before": rows_before, "rows_after": table.count_rows(),
              "duplicates_removed": removed, "guides_retired": retired, "index": index,
              "dry_run": dry_run, "seconds": time.perf_counter() - started}
    logger.info("event=memory_maintained rows_before=%d rows_after=%d duplicates=%d "
                "guides_retired=%d index=%s dry_run=%s", rows_before, result["rows_after"],
                removed, retired, index, dry_run)
    return result
