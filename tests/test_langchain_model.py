"""RARChatModel with real local models (SmolLM2 as weak and strong) and a real LanceDB memory.

Background learning is off in most tests so that an answer's metadata already holds every
call made for it; `test_background_learning_*` checks the default mode.
"""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from rar_tasks.chat import ChatService, routing_text
from rar_tasks.langchain_model import RARChatModel
from tests.conftest import SMALL_MODEL

pytestmark = pytest.mark.model


def make_model(data_dir, embedder, background: bool = False, **overrides) -> RARChatModel:
    """A RARChatModel on SmolLM2 whose service reuses the session's loaded embedder."""
    from rar_tasks.config import load_settings

    serve = {"max_tokens": 8, "background_learning": background, **overrides.pop("serve", {})}
    tree = {
        "local": {"n_threads": 1},
        "guide": {"max_tokens": 16},
        "serve": serve,
        **overrides,
    }
    model = RARChatModel(
        weak_model=overrides.get("weak", {}).get("model", SMALL_MODEL),
        strong_model=overrides.get("strong", {}).get("model", SMALL_MODEL),
        memory_dir=str(data_dir),
        overrides=tree,
    )
    settings = load_settings(None, model._overrides(), environ={})
    model._service = ChatService(settings, embedder=embedder)
    return model


class Recorder(BaseCallbackHandler):
    """Collects the names of chat model runs and how many ended."""

    def __init__(self):
        self.started: list[str] = []
        self.ended = 0

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.started.append(kwargs.get("name") or serialized.get("name"))

    def on_llm_end(self, response, **kwargs):
        self.ended += 1


def test_chain_with_prompt_and_parser_reports_route_and_inner_calls(data_dir, embedder, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You answer in one short sentence."), ("human", "What is {thing}?")]
    )
    recorder = Recorder()

    text = (prompt | model | StrOutputParser()).invoke(
        {"thing": "a volcano"}, config={"callbacks": [recorder]}
    )
    message = (prompt | model).invoke({"thing": "a volcano"})

    assert isinstance(text, str) and text.strip()
    meta = message.response_metadata
    assert meta["routed_model"] == SMALL_MODEL
    assert meta["route"] in ("weak", "learn")
    assert meta["router_version"].startswith("rar/memory-v")
    assert all({"input_tokens", "output_tokens", "cost"} <= set(c) for c in meta["calls"])
    assert meta["cost"] == pytest.approx(sum(c["cost"] for c in meta["calls"]))
    assert message.usage_metadata["output_tokens"] > 0
    # The first call found an empty memory, so it learned and served the strong answer;
    # the callbacks saw the outer run and each inner model call.
    assert recorder.started[0] == "RARChatModel"
    assert "rar-strong-serve" in recorder.started and "rar-weak-learn" in recorder.started
    assert recorder.ended == len(recorder.started)
    assert model.service.ctx.memory.count() == 1


def test_multi_turn_keeps_system_prompt_and_routes_on_last_turn(data_dir, embedder, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder)
    history = [
        SystemMessage("You are a geography tutor."),
        HumanMessage("Tell me about France."),
        AIMessage("France is a country in Western Europe."),
        HumanMessage("What is its capital?"),
    ]
    request = model._request(history, {})
    reply = model.invoke(history)

    assert request.text.endswith("What is its capital?")
    assert "France is a country" in request.text and "geography tutor" not in request.text
    assert request.chat.messages[0] == {"role": "system", "content": "You are a geography tutor."}
    assert reply.content
    assert routing_text([{"role": "user", "content": "Hi"}], 400) == "Hi"


def test_async_batch_of_eight(data_dir, embedder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder)
    questions = [f"Name one animal that lives in habitat number {i}." for i in range(8)]

    answers = asyncio.run(model.abatch(questions))

    assert len(answers) == 8 and all(a.content for a in answers)
    assert {a.response_metadata["request_id"] for a in answers} == {
        model._request([HumanMessage(q)], {}).id for q in questions
    }
    # Calls run concurrently; a late one may find enough similar memory to go weak. Every
    # learning route's memory write must be there.
    learned = [a for a in answers if a.response_metadata["route"] == "learn"]
    assert learned and all(a.response_metadata["learned"] for a in learned)
    assert model.service.ctx.memory.count() == len(learned)


def test_stream_and_astream_yield_pieces_then_metadata(data_dir, embedder, tmp_path,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder)

    chunks = list(model.stream("Count from one to five."))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk

    async def collect():
        return [c async for c in model.astream("Name two colours.")]

    async_chunks = asyncio.run(collect())

    assert len([c for c in chunks if c.content]) >= 2
    assert merged.response_metadata["routed_model"] == SMALL_MODEL
    assert merged.response_metadata["learning"] == "done"
    assert merged.usage_metadata["output_tokens"] >= 1
    assert "".join(c.content for c in async_chunks).strip()
    assert async_chunks[-1].response_metadata["route"] in ("weak", "learn")


def test_tool_bound_call_returns_tool_call_and_is_not_learned(data_dir, embedder, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder)

    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    bound = model.bind_tools([get_weather], tool_choice="get_weather")
    message = bound.invoke("What is the weather in Paris right now?")

    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    assert "city" in message.tool_calls[0]["args"]
    meta = message.response_metadata
    assert meta["finish_reason"] == "tool_calls"
    # Routed as usual (empty memory: learn), served by the strong model with the tools,
    # and not learned from: memory stays empty.
    assert meta["route"] == "learn" and meta["learning"] == "skipped_tools"
    assert [c["purpose"] for c in meta["calls"]] == ["serve"]
    assert model.service.ctx.memory.count() == 0


def test_with_fallbacks_and_retry(data_dir, embedder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    broken = make_model(
        tmp_path / "broken", embedder, serve={"fallback": False},
        weak={"model": "gguf/no-such-model"}, strong={"model": "gguf/no-such-model"},
    )
    good = make_model(data_dir, embedder)

    message = broken.with_retry(stop_after_attempt=2).with_fallbacks([good]).invoke("Say hi.")

    assert message.content
    assert message.response_metadata["routed_model"] == SMALL_MODEL


def test_model_fallback_inside_rar(data_dir, embedder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder, strong={"model": "gguf/no-such-model"})

    message = model.invoke("Say hello.")

    meta = message.response_metadata
    assert meta["fallback_from"] == "strong" and meta["routed_model"] == SMALL_MODEL
    assert meta["learning"] == "skipped_fallback"


def test_background_learning_writes_memory_after_answer(data_dir, embedder, tmp_path,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = make_model(data_dir, embedder, background=True)

    message = model.invoke("What is the boiling point of water?")

    assert message.response_metadata["learning"] == "background"
    assert model.wait_for_learning(timeout=60) == 0
    assert model.service.ctx.memory.count() == 1
    assert model.service.learned(message.response_metadata["request_id"])["verdict"]
