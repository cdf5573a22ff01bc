"""Memory in real LanceDB tables: idempotent upserts, persistence across processes, namespaces,
and the same routes from `RARRouter` over LanceMemory and ArrayMemory on a real MMLU stream."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rar_tasks.config import RouterConfig
from rar_tasks.errors import MemoryStoreError, RequestError
from rar_tasks.memory import (
    GUIDE_OK,
    STRONG_NEEDED,
    WEAK_OK,
    ArrayMemory,
    LanceMemory,
    MemoryRecord,
)
from rar_tasks.routers import LEARN, WEAK, RARRouter

DIM = 8


def unit(seed: int, dim: int = DIM) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=dim)
    return list(vector / np.linalg.norm(vector))


def record(request_id: str, seed: int, verdict: str = WEAK_OK, namespace: str = "default",
           guide: str = "") -> MemoryRecord:
    return MemoryRecord(request_id=request_id, namespace=namespace, text=f"text {request_id}",
                        vector=unit(seed), verdict=verdict, guide=guide,
                        guide_id=f"g-{request_id}" if guide else "")


def test_upserting_the_same_request_twice_keeps_one_row(tmp_path):
    memory = LanceMemory(tmp_path / "memory.lance", DIM)

    memory.upsert([record("r1", 1, WEAK_OK)])
    memory.upsert([record("r1", 1, STRONG_NEEDED, guide="Recall the definition first.")])

    assert memory.count() == 1
    row = memory.get("r1")
    assert row["verdict"] == STRONG_NEEDED  # the second write wins
    assert row["guide"] == "Recall the definition first." and memory.guide_count() == 1


def test_upserting_a_batch_twice_is_idempotent(tmp_path):
    memory = LanceMemory(tmp_path / "memory.lance", DIM)
    batch = [record(f"r{i}", i) for i in range(5)]

    memory.upsert(batch)
    memory.upsert(batch)

    assert memory.count() == 5
    assert sorted(memory.table.to_arrow().column("request_id").to_pylist()) == [
        f"r{i}" for i in range(5)
    ]


def test_search_finds_itself_first_and_keeps_namespaces_apart(tmp_path):
    memory = LanceMemory(tmp_path / "memory.lance", DIM)
    memory.upsert([record(f"a{i}", i, namespace="a") for i in range(6)])
    memory.upsert([record("b0", 0, namespace="b")])  # same vector as a0, other namespace

    hits = memory.search(np.array(unit(3)), "a", k=3)

    assert [h.request_id for h in hits][0] == "a3"
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert all(h.request_id.startswith("a") for h in hits) and len(hits) == 3
    assert [h.request_id for h in memory.search(np.array(unit(0)), "b", k=5)] == ["b0"]
    assert memory.search(np.array(unit(0)), "nobody", k=5) == []
    assert memory.count("a") == 6 and memory.count("b") == 1


def test_namespace_with_a_quote_cannot_break_the_filter(tmp_path):
    memory = LanceMemory(tmp_path / "memory.lance", DIM)
    memory.upsert([record("x", 1, namespace="a"), record("y", 2, namespace="b")])

    assert memory.search(np.array(unit(1)), "a' OR namespace = 'b", k=5) == []
    assert memory.count("a' OR '1' = '1") == 0


def test_record_of_wrong_size_or_verdict_is_refused_and_nothing_stored(tmp_path):
    memory = LanceMemory(tmp_path / "memory.lance", DIM)
    memory.upsert([record("keep", 1)])
    version = memory.version()

    with pytest.raises(RequestError, match="vector"):
        memory.upsert([record("ok", 2), MemoryRecord("short", "default", "t", [1.0, 0.0], WEAK_OK)])
    with pytest.raises(RequestError, match="verdict"):
        record("bad", 3, verdict="meh")

    assert memory.count() == 1 and memory.get("ok") is None and memory.version() == version


def test_table_of_another_dimension_is_refused(tmp_path):
    LanceMemory(tmp_path / "memory.lance", DIM).upsert([record("r", 1)])

    with pytest.raises(MemoryStoreError, match="8-d vectors, the embedder gives 384-d"):
        LanceMemory(tmp_path / "memory.lance", 384)


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from rar_tasks.memory import LanceMemory, MemoryRecord
    memory = LanceMemory(sys.argv[1], 8)
    vectors = np.eye(8, dtype=np.float32)
    memory.upsert([MemoryRecord(f"p{i}", "mmlu", f"question {i}", list(vectors[i]),
                                "guide_ok" if i % 2 else "weak_ok", guide="Think." * (i % 2))
                   for i in range(4)])
    print(memory.count())
    """
)

READER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from rar_tasks.memory import LanceMemory
    memory = LanceMemory(sys.argv[1], 8)
    hits = memory.search(np.eye(8, dtype=np.float32)[3], "mmlu", 2)
    print(json.dumps({"count": memory.count(), "top": hits[0].request_id,
                      "similarity": hits[0].similarity, "verdict": hits[0].verdict,
                      "guide": hits[0].guide}))
    """
)


def _python(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_memory_persists_across_processes(tmp_path):
    uri = str(tmp_path / "memory.lance")

    assert _python(WRITER, uri) == "4"
    assert _python(WRITER, uri) == "4"  # a second process re-writing the same ids adds none
    seen = json.loads(_python(READER, uri))

    assert seen["count"] == 4
    assert seen["top"] == "p3" and seen["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert seen["verdict"] == GUIDE_OK and seen["guide"] == "Think."
    assert LanceMemory(uri, 8).count("mmlu") == 4  # and this process sees it too


def _mixtral_was_right(data_root, subject: str) -> list[bool]:
    path = data_root / "routellm" / "mmlu_responses" / f"mmlu_{subject}.csv"
    with path.open(newline="") as fh:
        return [row["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True" for row in csv.DictReader(fh)]


BETA = RouterConfig(
    k=12, min_similarity=0.35, min_agreeing=1, vote="beta", uncertainty_z=0.25, min_weak_score=0.6
)


@pytest.mark.parametrize(
    "config",
    [
        RouterConfig(k=4, min_similarity=0.35, min_agreeing=2, min_agree_share=0.6, vote="count"),
        BETA,
    ],
    ids=["count", "beta"],
)
def test_lance_and_array_memory_give_the_same_routes(
    tmp_path, embedder, geography, data_root, config
):
    """Route a real MMLU stream through both memories, learning what the recorded weak model
    (Mixtral) did on each question; every route must match."""
    weak_right = _mixtral_was_right(data_root, "high_school_geography")
    assert len(weak_right) == len(geography)
    stream = geography[:60]
    vectors = embedder.embed([r.text for r in stream])
    lance = RARRouter(LanceMemory(tmp_path / "memory.lance", embedder.dim), config)
    array = RARRouter(ArrayMemory(embedder.dim), config)

    kinds = []
    for i, (request, vector) in enumerate(zip(stream, vectors, strict=True)):
        from_lance, from_array = lance.route(request, vector), array.route(request, vector)

        assert (from_lance.kind, from_lance.reason, from_lance.guide_id) == (
            from_array.kind, from_array.reason, from_array.guide_id), request.id
        assert [n.request_id for n in from_lance.neighbours] == [
            n.request_id for n in from_array.neighbours]
        assert from_lance.score == pytest.approx(from_array.score)
        kinds.append(from_lance.kind)
        if from_lance.kind == LEARN:
            verdict = WEAK_OK if weak_right[i] else STRONG_NEEDED
            rec = MemoryRecord(request.id, request.namespace, request.text, list(vector), verdict)
            lance.learn(rec)
            array.learn(rec)

    assert kinds[0] == LEARN  # cold start
    assert WEAK in kinds and kinds.count(LEARN) > 1  # the stream exercised both routes
    assert lance.memory.count() == array.memory.count() == kinds.count(LEARN)


def test_router_passes_the_guide_of_the_closest_guided_hit(tmp_path):
    memory = LanceMemory(tmp_path / "memory.lance", 3)
    memory.upsert([
        MemoryRecord("near", "n", "t", [1.0, 0.0, 0.0], GUIDE_OK, guide="Use the map scale.",
                     guide_id="g-near"),
        MemoryRecord("nearer", "n", "t", [0.99, 0.141, 0.0], WEAK_OK),
        MemoryRecord("far", "n", "t", [0.0, 1.0, 0.0], STRONG_NEEDED),
    ])
    router = RARRouter(memory, RouterConfig(k=3, min_similarity=0.8, min_agreeing=2, vote="count"))
    request = type("R", (), {"namespace": "n"})()

    route = router.route(request, np.array([0.995, 0.0998, 0.0], dtype=np.float32))
    cold = router.route(request, np.array([0.0, 0.0, 1.0], dtype=np.float32))

    assert route.kind == WEAK and route.guide == "Use the map scale." and route.guide_id == "g-near"
    assert route.reason == "memory_weak_ok good=2 hits=2"
    assert cold.kind == LEARN and cold.reason == "no_similar_memory" and cold.guide == ""
