"""One request through RAR's five steps with real components: MiniLM, LanceDB memory and the
smallest local model (SmolLM2-135M as both weak and strong). Also the failures: unknown model,
over-long prompt and a provider error leave memory untouched."""

from __future__ import annotations

import pytest

from rar_tasks import llm
from rar_tasks.errors import ModelError
from rar_tasks.judges import make_judge
from rar_tasks.memory import GUIDE_OK, STRONG_NEEDED, WEAK_OK, MemoryRecord
from rar_tasks.pipeline import serve_request
from rar_tasks.requests import make_request
from rar_tasks.routers import LEARN, STRONG, WEAK, Route


def purposes(served) -> list[tuple[str, str]]:
    return [(c.role, c.purpose) for c in served.calls]


@pytest.mark.model
def test_learn_then_serve_weak_from_memory(make_ctx, geography):
    ctx = make_ctx(router={"min_agreeing": 1, "min_similarity": 0.95, "vote": "count"})
    request = geography[3]

    first = serve_request(ctx, request, evaluate=True)

    assert first.route == LEARN and first.reason == "no_similar_memory"
    assert purposes(first) == [("weak", "learn"), ("strong", "serve")]
    # Same model, same prompt, greedy one-letter grammar: the answers agree.
    weak_call, strong_call = (c.generation for c in first.calls)
    assert weak_call.text == strong_call.text and weak_call.text in "ABCD"
    assert first.verdict == WEAK_OK and first.strong_called and first.answer == strong_call.text
    # Costs come from the configured prices: Mixtral for weak, GPT-4-1106 for strong.
    assert weak_call.cost == pytest.approx(
        weak_call.input_tokens * 0.6e-6 + weak_call.output_tokens * 0.6e-6)
    assert strong_call.cost == pytest.approx(
        strong_call.input_tokens * 10e-6 + strong_call.output_tokens * 30e-6)
    assert strong_call.input_tokens > 50 and strong_call.output_tokens == 1
    assert first.cost == pytest.approx(weak_call.cost + strong_call.cost)
    assert first.evaluation["rar_correct"] == (strong_call.text == request.label)
    row = ctx.memory.get(request.id)
    assert ctx.memory.count() == 1
    assert (row["verdict"], row["namespace"], row["weak_model"]) == (
        WEAK_OK, "mmlu", "gguf/smollm2-135m")
    assert row["text"] == request.text

    second = serve_request(ctx, request, evaluate=True)

    assert second.route == WEAK and second.similarity == pytest.approx(1.0, abs=1e-4)
    assert second.reason == "memory_weak_ok good=1 hits=1"
    assert not second.strong_called and second.verdict is None
    assert purposes(second) == [("weak", "serve"), ("strong", "evaluate")]
    assert second.cost == pytest.approx(second.calls[0].generation.cost)  # evaluation is free
    assert second.answer == first.answer
    assert ctx.memory.count() == 1


@pytest.mark.model
def test_weak_route_carries_the_guide_and_evaluates_unguided(make_ctx, embedder, geography):
    ctx = make_ctx(router={"min_agreeing": 1, "min_similarity": 0.95, "vote": "count"})
    request = geography[5]
    vector = embedder.embed([request.text])[0]
    guide = "Recall what each term means in human geography before choosing."
    ctx.memory.upsert([MemoryRecord("earlier", "mmlu", request.text, list(vector), GUIDE_OK,
                                    guide=guide, guide_id="g-earlier")])

    served = serve_request(ctx, request, evaluate=True)

    assert served.route == WEAK and served.guide_id_used == "g-earlier"
    # The guided answer cannot stand for always-weak: an unguided call is made to evaluate.
    assert purposes(served) == [("weak", "serve"), ("weak", "evaluate"), ("strong", "evaluate")]
    assert served.evaluation["weak"] == served.calls[1].generation.text
    assert served.calls[0].generation.input_tokens > served.calls[1].generation.input_tokens
    assert ctx.memory.count() == 1  # a weak route does not write memory


class AlwaysStrong:
    """A router that sends everything to the strong model (as a `strong` route)."""

    name = "always-strong"

    def route(self, request, vector):
        return Route(STRONG, 0.0, "test", vector=vector)

    def learn(self, record):
        raise AssertionError("a strong route must not learn")


@pytest.mark.model
def test_strong_route_baselines_use_each_models_own_call(make_ctx, geography):
    ctx = make_ctx()
    ctx.router = AlwaysStrong()

    served = serve_request(ctx, geography[7], evaluate=True)

    assert served.route == STRONG and served.strong_called
    assert purposes(served) == [("strong", "serve"), ("weak", "evaluate")]
    strong_call, weak_call = (c.generation for c in served.calls)
    assert served.evaluation["strong_cost"] == pytest.approx(strong_call.cost)
    # Always-weak is priced at the weak model's rate, not the strong call's.
    assert served.evaluation["weak_cost"] == pytest.approx(weak_call.cost)
    assert served.evaluation["weak_cost"] < served.evaluation["strong_cost"] / 10
    assert ctx.memory.count() == 0


@pytest.mark.model
def test_disagreement_writes_a_guide_and_stores_the_verdict(make_ctx):
    # A two-token weak answer cannot match the strong one: the weak model is not good enough.
    ctx = make_ctx(weak={"max_tokens": 2}, strong={"max_tokens": 12},
                   guide={"max_tokens": 40})
    request = make_request({"text": "Explain in one sentence why maps use a scale."})

    served = serve_request(ctx, request)

    assert served.route == LEARN and served.strong_called
    assert served.verdict in (STRONG_NEEDED, GUIDE_OK)
    assert ("strong", "learn") in purposes(served)  # the guide-writing call
    row = ctx.memory.get(request.id)
    assert row["verdict"] == served.verdict and row["judge"] == "agreement"
    if row["guide"]:
        assert row["guide_source"] == request.id and row["guide_id"] == served.new_guide_id
        assert row["guide_id"].startswith("g-")
        assert purposes(served).count(("weak", "learn")) == 2  # the guide was tried on weak
    else:
        assert served.verdict == STRONG_NEEDED and row["guide_id"] == ""


@pytest.mark.model
def test_llm_judge_answers_yes_or_no_with_one_token(settings, geography):
    judge = make_judge("llm", settings)
    request = geography[0]

    verdict = judge.judge(request, "B", "The answer is B.")

    assert verdict.judge == "llm" and verdict.call is not None
    assert verdict.call.text in ("Y", "N") and verdict.call.output_tokens == 1
    assert verdict.good == (verdict.call.text == "Y")
    assert (verdict.weak_answer, verdict.reference) == ("B", "B")


@pytest.mark.parametrize(
    "model, named",
    [("gguf/no-such-model", "no-such-model"), ("nosuchprovider/some-model", "nosuchprovider")],
)
def test_unknown_model_is_named_and_nothing_is_stored(make_ctx, geography, model, named):
    ctx = make_ctx(weak={"model": model})
    version = ctx.memory.version()

    with pytest.raises(ModelError, match=named) as info:
        serve_request(ctx, geography[0], evaluate=True)

    assert f"model call to '{model}' failed" in str(info.value)
    assert ctx.memory.count() == 0 and ctx.memory.version() == version


@pytest.mark.model
def test_over_long_prompt_is_refused_by_the_model_and_nothing_is_stored(make_ctx):
    # Within the character limit, beyond the model's context (2048 tokens here; 4096 when an
    # earlier test in this process loaded the model with the default settings).
    ctx = make_ctx(max_request_chars=100_000)
    request = make_request({"text": "maps and scales " * 3000}, max_chars=100_000)
    version = ctx.memory.version()

    with pytest.raises(ModelError, match=r"exceed context window of (2048|4096)") as info:
        serve_request(ctx, request)

    assert "'gguf/smollm2-135m'" in str(info.value)
    assert ctx.memory.count() == 0 and ctx.memory.version() == version


@pytest.mark.model
def test_provider_error_of_the_strong_model_stores_nothing(make_ctx, geography, monkeypatch):
    ctx = make_ctx(strong={"model": "openai/gpt-4o-mini"})
    real_kwargs = llm._kwargs

    def kwargs_with_failure(cfg, *args):
        kwargs = real_kwargs(cfg, *args)
        if cfg.model.startswith("openai/"):  # never reaches the network
            kwargs["mock_response"] = "litellm.RateLimitError"
        return kwargs

    monkeypatch.setattr(llm, "_kwargs", kwargs_with_failure)

    with pytest.raises(ModelError, match="'openai/gpt-4o-mini' failed \\(RateLimitError\\)"):
        serve_request(ctx, geography[1])

    assert ctx.memory.count() == 0
