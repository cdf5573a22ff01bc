"""Replay data loading, splits and metrics on real recordings; no embedder needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rar_tasks.config import Settings
from rar_tasks.errors import RequestError
from rar_tasks.memory import WEAK_OK, ArrayMemory, MemoryRecord
from rar_tasks.replay import metrics
from rar_tasks.replay.data import load_dataset, load_routellm_mmlu
from rar_tasks.replay.splits import split_by_group, split_by_question

SUBJECTS = ["business_ethics", "medical_genetics"]


@pytest.fixture(scope="module")
def root():
    return Settings().shared_data_root()


@pytest.fixture(scope="module")
def mmlu(root):
    return load_routellm_mmlu(root, SUBJECTS)


def test_mmlu_slice_matches_recording(mmlu):
    assert len(mmlu) == 200
    assert set(mmlu.groups.tolist()) == set(SUBJECTS)
    assert not any(r.text.endswith("Answer:") for r in mmlu.requests)
    # The replay judge on MMLU is ground truth: the verdict is the weak model's correctness.
    assert np.array_equal(mmlu.weak_good, mmlu.weak_quality.astype(bool))
    assert (mmlu.strong_cost > 10 * mmlu.weak_cost).all()


def test_unknown_subject_and_dataset_are_named(root):
    with pytest.raises(RequestError, match="subjects"):
        load_routellm_mmlu(root, ["astrology"])
    with pytest.raises(RequestError, match="dataset"):
        load_dataset("routellm-trivia", root)


def test_gsm8k_agreement_judge_uses_both_responses(root):
    ds = load_dataset("routellm-gsm8k", root)
    assert len(ds) == 1319 and ds.judge == "agreement"
    # Agreement is not correctness: both wrong with the same number agrees, for instance.
    assert (ds.weak_good != ds.weak_quality.astype(bool)).any()
    assert ds.weak_output_tokens.min() > 0 and ds.strong_output_tokens.min() > 0


def test_mtbench_has_two_turn_scores(root):
    ds = load_dataset("routellm-mtbench", root)
    assert len(ds) == 80
    assert 1 <= ds.weak_quality.min() and ds.strong_quality.max() <= 10
    assert len(set(ds.groups.tolist())) == 8


def test_question_split_has_no_overlap(mmlu):
    texts = mmlu.texts + mmlu.texts[:10]  # duplicated questions must stay on one side
    split = split_by_question(texts, seed=3)
    parts = [set(split.train), set(split.dev), set(split.test)]
    assert sum(map(len, parts)) == len(texts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    side_texts = [{texts[i] for i in p} for p in parts]
    assert not (side_texts[0] & side_texts[2] or side_texts[1] & side_texts[2])
    assert not side_texts[0] & side_texts[1]
    assert split_by_question(texts, seed=3).test.tolist() == split.test.tolist()
    assert split_by_question(texts, seed=4).test.tolist() != split.test.tolist()


def test_subject_split_holds_whole_subjects_out(mmlu):
    split = split_by_group(mmlu.texts, mmlu.groups, seed=0, test=0.5)
    held = set(split.held_out)
    assert len(held) == 1
    assert set(mmlu.groups[split.test].tolist()) == held
    assert not set(mmlu.groups[np.concatenate([split.train, split.dev])].tolist()) & held
    with pytest.raises(RequestError, match="split"):
        split_by_group(mmlu.texts, np.array(["one"] * len(mmlu)), seed=0)
    with pytest.raises(RequestError, match="split"):
        split_by_question(mmlu.texts, seed=0, dev=0.5, test=0.5)


def test_curve_from_scores_counts_ties_and_cascade_cost():
    weak_q = np.array([0.0, 1.0, 0.0, 1.0])
    strong_q = np.array([1.0, 1.0, 1.0, 0.0])
    weak_c, strong_c = np.full(4, 1.0), np.full(4, 10.0)
    scores = np.array([0.1, 0.5, 0.1, 0.9])  # two tied lowest scores move together
    curve = metrics.curve_from_scores(scores, weak_q, strong_q, weak_c, strong_c)
    assert curve.strong_rate.tolist() == [0.0, 0.5, 0.75, 1.0]
    assert curve.quality.tolist() == [0.5, 1.0, 1.0, 0.75]
    assert curve.cost.tolist() == [1.0, 5.5, 7.75, 10.0]
    cascade = metrics.curve_from_scores(scores, weak_q, strong_q, weak_c, strong_c, True)
    assert cascade.cost.tolist() == [1.0, 6.0, 8.5, 11.0]
    assert curve.thresholds.tolist() == [0.1, 0.5, 0.9, math.inf]


def test_apgr_cpt_aiq_on_known_curves():
    random_line = metrics.curve_from_points([0.25, 0.5, 0.75], [0.55, 0.6, 0.65], [2, 3, 4])
    assert metrics.apgr(random_line, 0.5, 0.7) == pytest.approx(0.5)
    assert metrics.cpt(random_line, 0.5, 0.5, 0.7) == pytest.approx(0.5)
    assert metrics.cpt(random_line, 0.8, 0.5, 0.7) == pytest.approx(0.8)
    assert metrics.aiq(random_line, 0.5, 0.7, 1.0, 5.0) == pytest.approx(0.6)
    perfect = metrics.curve_from_points([0.2], [0.7], [1.8])
    assert metrics.apgr(perfect, 0.5, 0.7) == pytest.approx(0.9)
    assert metrics.cpt(perfect, 0.5, 0.5, 0.7) == pytest.approx(0.1)
    # A point above the straight line lifts AIQ through the upper hull.
    assert metrics.aiq(perfect, 0.5, 0.7, 1.0, 5.0) > 0.6
    worse = metrics.curve_from_points([0.5], [0.4], [3.0])
    assert metrics.rate_to_reach(worse, 0.69, 0.5, 0.7) > 0.9
    never = metrics.curve_from_points([0.5], [0.6], [3.0])
    assert math.isnan(metrics.rate_to_reach(never, 0.8, 0.5, 0.7))


def test_auc_and_rolling_rate():
    assert metrics.auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert metrics.auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert math.isnan(metrics.auc(np.array([0.1, 0.2]), np.array([1, 1])))
    rates = metrics.rolling_rate(np.array([1, 1, 0, 0]), window=2)
    assert rates.tolist() == [1.0, 1.0, 0.5, 0.0]


def test_array_memory_search_keeps_namespaces_and_order():
    memory = ArrayMemory(2)
    vectors = {"a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.0, 1.0]}
    for rid, vec in vectors.items():
        memory.upsert([MemoryRecord(rid, "ns", "", vec, WEAK_OK)])
    memory.upsert([MemoryRecord("other", "elsewhere", "", [1.0, 0.0], WEAK_OK)])
    hits = memory.search(np.array([1.0, 0.0], dtype=np.float32), "ns", k=2)
    assert [h.request_id for h in hits] == ["a", "b"]
    assert [h.request_id for h in memory.search(np.array([1.0, 0.0]), "ns", k=10)] == [
        "a",
        "b",
        "c",
    ]
    assert memory.search(np.array([1.0, 0.0]), "missing", k=3) == []
    for i in range(100):  # grow past the initial capacity
        memory.upsert([MemoryRecord(f"x{i}", "ns", "", [0.0, -1.0], WEAK_OK)])
    assert memory.count("ns") == 103 and memory.count("elsewhere") == 1
    assert memory.search(np.array([1.0, 0.0]), "elsewhere", k=3)[0].request_id == "other"
