"""Each replay router on a real MMLU slice (200 questions, real MiniLM embeddings), and one
real Prefect flow run of the replay logging to an MLflow store in a temporary folder."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from rar_tasks.config import RouterConfig, Settings
from rar_tasks.embed import LocalMiniLM
from rar_tasks.errors import RequestError
from rar_tasks.memory import STRONG_NEEDED, WEAK_OK, ArrayMemory
from rar_tasks.replay.baselines import (
    AlwaysStrong,
    AlwaysWeak,
    FrugalGPTCascade,
    HybridLLMRouter,
    KNNRouter,
    LogisticRouter,
    Oracle,
    RandomBlend,
    TabiCascade,
    fit_logistic,
)
from rar_tasks.replay.cache import cache_path, cached_embeddings
from rar_tasks.replay.data import load_routellm_mmlu
from rar_tasks.replay.engine import record_for, replay_stream
from rar_tasks.replay.evaluate import ROUTERS, evaluate
from rar_tasks.replay.splits import split_by_question
from rar_tasks.routers import LEARN, STRONG, WEAK, RARRouter

SUBJECTS = ["business_ethics", "medical_genetics"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("replay-home")


@pytest.fixture(scope="module")
def mmlu():
    return load_routellm_mmlu(Settings().shared_data_root(), SUBJECTS)


@pytest.fixture(scope="module")
def vectors(mmlu, home):
    """Real MiniLM vectors of the 200 questions, written where the flow's cache looks."""
    path = cache_path(home, mmlu.name, mmlu.sha256, LocalMiniLM.name, len(mmlu))
    return cached_embeddings(mmlu.texts, path, LocalMiniLM(torch_threads=2))


@pytest.fixture(scope="module")
def split(mmlu):
    return split_by_question(mmlu.texts, seed=0)


def _kinds(router, mmlu, vectors, index):
    return replay_stream(router, mmlu, vectors, index)


def test_embedding_cache_is_reused(mmlu, vectors, home):
    path = cache_path(home, mmlu.name, mmlu.sha256, LocalMiniLM.name, len(mmlu))
    assert path.exists() and vectors.shape == (200, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    class Refuses:
        name, dim = "none", 384

        def embed(self, texts):
            raise AssertionError("the cache should have answered")

    assert np.array_equal(cached_embeddings(mmlu.texts, path, Refuses()), vectors)


def test_constant_routers(mmlu, vectors, split):
    weak = _kinds(AlwaysWeak(), mmlu, vectors, split.test)
    strong = _kinds(AlwaysStrong(), mmlu, vectors, split.test)
    assert set(weak.kinds) == {WEAK} and weak.strong_call_rate == 0.0
    assert set(strong.kinds) == {STRONG} and strong.strong_call_rate == 1.0
    assert weak.mean_quality == pytest.approx(mmlu.weak_quality[split.test].mean())
    assert strong.cost_per_request == pytest.approx(mmlu.strong_cost[split.test].mean())


def test_random_blend_share_and_bounds(mmlu, vectors):
    everything = np.arange(len(mmlu))
    result = _kinds(RandomBlend(strong_share=0.3, seed=1), mmlu, vectors, everything)
    assert 0.2 < result.strong_call_rate < 0.4
    assert _kinds(RandomBlend(0.0), mmlu, vectors, everything).strong_call_rate == 0.0
    assert _kinds(RandomBlend(1.0), mmlu, vectors, everything).strong_call_rate == 1.0
    with pytest.raises(RequestError, match="strong_share"):
        RandomBlend(1.5)


def test_oracle_is_an_upper_bound(mmlu, vectors, split):
    enough = mmlu.weak_quality >= mmlu.strong_quality
    oracle = Oracle({r.id: bool(e) for r, e in zip(mmlu.requests, enough, strict=True)})
    result = _kinds(oracle, mmlu, vectors, split.test)
    best = np.maximum(mmlu.weak_quality, mmlu.strong_quality)[split.test].mean()
    assert result.mean_quality == pytest.approx(best)
    assert result.strong_call_rate == pytest.approx(1 - enough[split.test].mean())
    with pytest.raises(RequestError, match="request.id"):
        Oracle({}).route(mmlu.requests[0], vectors[0])


def test_logistic_fits_separable_data_and_refuses_one_class():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(float)
    w, b = fit_logistic(x, y, l2=0.1)
    assert w[0] > 2 * abs(w[1]) and w[0] > 2 * abs(w[2])
    with pytest.raises(RequestError, match="labels"):
        fit_logistic(x, np.ones(200))
    with pytest.raises(RequestError, match="labels"):
        fit_logistic(x, y[:10])


def test_predictive_routers_on_real_slice(mmlu, vectors, split):
    train, labels = split.train, mmlu.weak_good[split.train].astype(float)
    for router in (
        LogisticRouter().fit(vectors[train], labels),
        KNNRouter(k=5).fit(vectors[train], labels),
    ):
        result = _kinds(router, mmlu, vectors, split.test)
        assert ((result.scores >= 0) & (result.scores <= 1)).all()
        assert set(result.kinds) <= {WEAK, STRONG}
        assert (result.kinds[result.scores < router.threshold] == STRONG).all()
    # kNN with k=1 on a training question returns that question's own verdict.
    knn = KNNRouter(k=1).fit(vectors[train], labels)
    i = train[0]
    assert knn.route(mmlu.requests[i], vectors[i]).score == labels[0]
    with pytest.raises(RequestError, match="k"):
        KNNRouter(k=0)


def test_hybrid_llm_balances_its_gap_labels(mmlu, vectors, split):
    train = split.train
    router = HybridLLMRouter().fit_gap(
        vectors[train], mmlu.weak_quality[train], mmlu.strong_quality[train]
    )
    gap = mmlu.strong_quality[train] - mmlu.weak_quality[train]
    share = np.mean(gap <= router.t_)
    assert 0 < share < 1
    others = [np.mean(gap <= t) for t in np.unique(gap) if 0 < np.mean(gap <= t) < 1]
    assert abs(share - 0.5) == min(abs(s - 0.5) for s in others)


def test_cascades_pay_both_calls_when_escalating(mmlu, vectors, split):
    train, labels = split.train, mmlu.weak_good[split.train].astype(float)
    cascade = FrugalGPTCascade(lambda request: None).fit(vectors[train], labels)
    cascade.threshold = 1.1  # escalate everything
    result = _kinds(cascade, mmlu, vectors, split.test)
    assert set(result.kinds) == {LEARN}
    both = (mmlu.weak_cost + mmlu.strong_cost)[split.test].mean()
    assert result.cost_per_request == pytest.approx(both)

    tabi = TabiCascade(threshold=0.7)
    request = mmlu.requests[0]
    with pytest.raises(RequestError, match="weak_confidence"):
        tabi.route(request, vectors[0])
    request.meta["weak_confidence"] = 0.9
    assert tabi.route(request, vectors[0]).kind == WEAK
    request.meta["weak_confidence"] = 0.2
    assert tabi.route(request, vectors[0]).kind == LEARN
    request.meta["weak_confidence"] = 1.7
    with pytest.raises(RequestError, match="weak_confidence"):
        tabi.route(request, vectors[0])
    del request.meta["weak_confidence"]


def test_rar_beta_vote_scores_a_posterior_and_sweeps_smoothly(mmlu, vectors, split):
    from rar_tasks.memory import Neighbour

    def near(similarity, verdict):
        return Neighbour(f"{similarity}-{verdict}", similarity, verdict, "", "")

    config = RouterConfig(
        k=4, min_similarity=0.5, min_agreeing=1, vote="beta", similarity_gamma=0.0,
        prior_weight=2.0, uncertainty_z=0.0,
    )
    router = RARRouter(ArrayMemory(3), config)
    hits = [near(0.9, WEAK_OK), near(0.8, WEAK_OK), near(0.6, STRONG_NEEDED)]
    found = hits + [near(0.2, STRONG_NEEDED)]
    # Prior: 2 weak-good of 4 found, smoothed (2+1)/(4+2) = 0.5, worth 2 hits; hits 2 of 3.
    score, weight = router.beta_score(found, hits)
    assert weight == pytest.approx(3.0)
    assert score == pytest.approx((2 + 2 * 0.5) / (3 + 2))
    # Uncertainty lowers the score; similarity weighting favours the closer weak-good hits.
    router.config = dataclasses.replace(config, uncertainty_z=1.0)
    assert router.beta_score(found, hits)[0] < score
    router.config = dataclasses.replace(config, similarity_gamma=10.0)
    assert router.beta_score(found, hits)[0] > score

    # On a real stream a higher score threshold never lowers the strong-call rate much, and
    # cold start learns first.
    rates = []
    for threshold in (0.5, 0.7, 0.9):
        cfg = dataclasses.replace(config, k=20, min_similarity=0.3, min_weak_score=threshold)
        result = replay_stream(RARRouter(ArrayMemory(384), cfg), mmlu, vectors, split.test)
        assert result.kinds[0] == LEARN
        rates.append(result.strong_call_rate)
    assert rates[0] < rates[2] and rates == sorted(rates)


def test_rar_learns_in_stream_order(mmlu, vectors, split):
    memory = ArrayMemory(384)
    router = RARRouter(
        memory,
        RouterConfig(
            k=5, min_similarity=0.2, min_agreeing=2, min_agree_share=0.5, vote="count"
        ),
    )
    result = replay_stream(router, mmlu, vectors, split.test)
    assert result.kinds[0] == LEARN  # nothing in memory yet
    assert memory.count() == int((result.kinds == LEARN).sum())
    assert set(result.kinds) <= {WEAK, LEARN}
    # Learning routes are strong calls and serve the strong answer at both models' cost.
    learn = result.kinds == LEARN
    assert result.strong_call_rate == pytest.approx(learn.mean())
    assert (result.quality[learn] == mmlu.strong_quality[split.test][learn]).all()

    # Two weak_ok verdicts on the same question make the next one route weak; a strong_needed
    # neighbour on a fresh memory keeps it learning.
    i = int(np.flatnonzero(mmlu.weak_good)[0])
    fresh = RARRouter(
        ArrayMemory(384), RouterConfig(k=5, min_similarity=0.9, min_agreeing=2, vote="count")
    )
    record = record_for(mmlu, i, vectors[i])
    assert record.verdict == WEAK_OK
    fresh.learn(record)
    assert fresh.route(mmlu.requests[i], vectors[i]).kind == LEARN
    record.request_id += "-again"
    fresh.learn(record)
    assert fresh.route(mmlu.requests[i], vectors[i]).kind == WEAK
    j = int(np.flatnonzero(~mmlu.weak_good)[0])
    assert record_for(mmlu, j, vectors[j]).verdict == STRONG_NEEDED


def test_evaluate_every_router(mmlu, vectors, split):
    for name in ROUTERS:
        result = evaluate(name, mmlu, vectors, split)
        if name == "tabi":
            assert result.skipped and "confidence" in result.note
            continue
        assert not result.skipped, name
        assert 0.0 <= result.strong_rate <= 1.0
        assert len(result.strong_flags) == len(split.test)
        if name not in ("always-weak", "always-strong"):
            assert 0.0 <= result.metrics["apgr"] <= 1.5, name
    with pytest.raises(RequestError, match="routers"):
        evaluate("magic", mmlu, vectors, split)


def test_replay_flow_writes_report_and_mlflow(mmlu, vectors, home, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The throwaway API server needs longer than the default 20 s on a busy two-core machine.
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.replay import replay

    tracking = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    summary = replay(
        dataset="routellm-mmlu",
        seeds=[0, 1],
        subjects=SUBJECTS,
        data_dir=str(home),
        out_dir=str(tmp_path / "out"),
        tracking_uri=tracking,
    )
    table = Path(summary["table"]).read_text()
    assert "split by question" in table and "split by subject" in table
    for name in ("rar", "oracle", "logistic", "knn", "hybrid-llm", "frugalgpt"):
        assert f"| {name} |" in table
    assert "not run: no weak-model confidence" in table
    assert os.path.getsize(summary["curves"]) > 10_000
    assert os.path.getsize(summary["stream"]) > 10_000
    results = json.loads(Path(summary["results"]).read_text())
    assert {r["seed"] for r in results} == {0, 1}

    import mlflow

    client = mlflow.MlflowClient(tracking)
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.data.params["dataset"] == "routellm-mmlu"
    assert "question.rar.strong_rate" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"replay.md", "cost_quality.png", "stream.png", "results.json"} <= artifacts
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == len(ROUTERS) * 2 * 2


def test_relative_replay_learns_weak_as_good_as_strong(mmlu, vectors, split):
    """`rar-beta-rel` stores weak_ok when weak was right or strong wrong too; what is served,
    scored and counted is unchanged."""
    both_wrong = np.flatnonzero((mmlu.weak_quality == 0) & (mmlu.strong_quality == 0))
    weak_only_wrong = np.flatnonzero((mmlu.weak_quality == 0) & (mmlu.strong_quality == 1))
    weak_right = np.flatnonzero(mmlu.weak_quality == 1)
    assert len(both_wrong) and len(weak_only_wrong) and len(weak_right)

    for i, plain, relative in (
        (both_wrong[0], STRONG_NEEDED, WEAK_OK),
        (weak_only_wrong[0], STRONG_NEEDED, STRONG_NEEDED),
        (weak_right[0], WEAK_OK, WEAK_OK),
    ):
        assert record_for(mmlu, i, vectors[i]).verdict == plain
        record = record_for(mmlu, i, vectors[i], relative=True)
        assert record.verdict == relative
        assert record.judge == "ground_truth_relative"
    assert (mmlu.relative_good == (mmlu.weak_good | (mmlu.strong_quality == 0))).all()

    config = RouterConfig(k=10, min_similarity=0.3, vote="beta", min_weak_score=0.8)
    stream = split.test[:300]
    result = replay_stream(RARRouter(ArrayMemory(384), config), mmlu, vectors, stream, True)
    learn = result.kinds == LEARN
    weak = result.kinds == WEAK
    assert result.strong_call_rate == pytest.approx(learn.mean())
    assert (result.quality[learn] == mmlu.strong_quality[stream][learn]).all()
    assert (result.quality[weak] == mmlu.weak_quality[stream][weak]).all()
    assert (result.cost[learn] == (mmlu.weak_cost + mmlu.strong_cost)[stream][learn]).all()

    rel = evaluate("rar-beta-rel-warm", mmlu, vectors, split)
    assert rel.router == "rar-beta-rel-warm" and "strong wrong" in rel.note
    assert rel.tuned["vote"] == "beta" and 0.0 <= rel.strong_rate <= 1.0
