"""The OpenAI-compatible endpoint, served on loopback by the test and called with the official
`openai` client; real SmolLM2 models and a real LanceDB memory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import openai
import pytest

from rar_tasks.chat import ChatService
from tests.conftest import SMALL_MODEL, small_overrides

pytestmark = pytest.mark.model


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(data_dir, embedder, **extra):
    """The app under uvicorn in a thread on 127.0.0.1; yields (base URL, service)."""
    import uvicorn

    from rar_tasks.config import load_settings
    from rar_tasks.http_server import create_app

    serve = {"max_tokens": 8, "max_body_bytes": 20_000, **extra.pop("serve", {})}
    settings = load_settings(overrides=small_overrides(data_dir, serve=serve, **extra), environ={})
    service = ChatService(settings, embedder=embedder)
    app = create_app(settings, service)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        service.close()


@pytest.fixture
def server(data_dir, embedder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with running_server(data_dir, embedder) as running:
        yield running


def client(base: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)


def test_openai_client_plain_and_streamed(server):
    base, service = server
    api = client(base)

    models = [m.id for m in api.models.list()]
    answer = api.chat.completions.create(
        model="rar",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of Italy?"},
        ],
    )
    stream = api.chat.completions.create(
        model="rar",
        messages=[{"role": "user", "content": "Name a planet."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert models == ["rar"]
    assert answer.model == "rar" and answer.choices[0].message.content
    rar = answer.model_extra["rar"]
    assert rar["routed_model"] == SMALL_MODEL and rar["route"] == "learn"
    assert rar["cost"] > 0 and rar["calls"][0]["purpose"] == "serve"
    assert answer.usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.model_extra["rar"]["routed_model"] == SMALL_MODEL
    assert chunks[-1].usage.completion_tokens > 0
    health = httpx.get(base + "/health").json()
    assert health["status"] == "ok" and health["model"] == "rar"


def test_sixteen_concurrent_requests_all_memory_writes_present(server):
    base, service = server
    api = client(base)
    topics = [
        "rivers",
        "volcanoes",
        "deserts",
        "glaciers",
        "islands",
        "forests",
        "tides",
        "earthquakes",
        "monsoons",
        "canyons",
        "reefs",
        "plateaus",
        "deltas",
        "tundra",
        "savannas",
        "fjords",
    ]

    def ask(topic: str):
        return api.chat.completions.create(
            model="rar", messages=[{"role": "user", "content": f"One fact about {topic}."}]
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(ask, topics))
    deadline = time.monotonic() + 120
    while httpx.get(base + "/health").json()["learning_pending"]:
        assert time.monotonic() < deadline, "background learning did not finish"
        time.sleep(0.2)

    metas = [a.model_extra["rar"] for a in answers]
    assert all(a.choices[0].message.content for a in answers)
    learned = {m["request_id"] for m in metas if m["route"] == "learn"}
    assert len(learned) >= 8  # at least the first half found no similar memory
    stored = {
        row["request_id"]
        for row in service.ctx.memory.table.search().select(["request_id"]).limit(100).to_list()
    }
    assert learned <= stored
    assert service.ctx.memory.count() == len(learned)
    assert all(service.learned(rid)["verdict"] for rid in learned)


def test_bad_requests_get_openai_style_errors(server):
    base, _ = server
    api = client(base)
    url = base + "/v1/chat/completions"
    user = [{"role": "user", "content": "hi"}]

    cases = {
        "missing messages": ({"model": "rar"}, 400, "messages"),
        "messages not a list": ({"model": "rar", "messages": "hi"}, 400, "messages"),
        "bad role": (
            {"model": "rar", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role",
        ),
        "content wrong type": (
            {"model": "rar", "messages": [{"role": "user", "content": 3}]},
            400,
            "messages[0].content",
        ),
        "stream wrong type": ({"model": "rar", "messages": user, "stream": "yes"}, 400, "stream"),
        "max_tokens wrong type": (
            {"model": "rar", "messages": user, "max_tokens": "many"},
            400,
            "max_tokens",
        ),
        "unknown model": ({"model": "gpt-4o", "messages": user}, 404, "model"),
    }
    for name, (body, status, param) in cases.items():
        response = httpx.post(url, json=body)
        error = response.json()["error"]
        assert response.status_code == status, name
        assert error["param"] == param and error["message"] and error["type"], name
    oversized = httpx.post(
        url, json={"model": "rar", "messages": [{"role": "user", "content": "x" * 30_000}]}
    )
    not_json = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="gpt-4o", messages=user)

    assert oversized.status_code == 413 and oversized.json()["error"]["code"] == "request_too_large"
    assert not_json.status_code == 400


def test_upstream_failure_falls_back_else_502(data_dir, embedder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = [{"role": "user", "content": "Say hello."}]
    with running_server(data_dir, embedder, strong={"model": "gguf/no-such-model"}) as (base, _):
        answer = client(base).chat.completions.create(model="rar", messages=user)
    with running_server(
        tmp_path / "b", embedder, strong={"model": "gguf/no-such-model"}, serve={"fallback": False}
    ) as (base, _):
        failed = httpx.post(base + "/v1/chat/completions", json={"model": "rar", "messages": user})
        streamed = httpx.post(
            base + "/v1/chat/completions", json={"model": "rar", "messages": user, "stream": True}
        )

    rar = answer.model_extra["rar"]
    assert rar["fallback_from"] == "strong" and rar["routed_model"] == SMALL_MODEL
    assert failed.status_code == 502 and streamed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "upstream_failed" and "no-such-model" in error["message"]


def test_api_key_is_checked_when_configured(data_dir, embedder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAR_TEST_API_KEY", "s3cret")
    with running_server(data_dir, embedder, serve={"api_key_env": "RAR_TEST_API_KEY"}) as (base, _):
        with pytest.raises(openai.AuthenticationError):
            client(base, "wrong").models.list()
        models = client(base, "s3cret").models.list()
        health = httpx.get(base + "/health")

    assert [m.id for m in models] == ["rar"]
    assert health.status_code == 200  # health stays open for load balancers


def test_rar_serve_command_on_loopback(data_dir, tmp_path):
    """`rar serve` as a user starts it: a separate process bound to 127.0.0.1."""
    config = tmp_path / "rar.toml"
    config.write_text(
        f'[weak]\nmodel = "{SMALL_MODEL}"\nmax_tokens = 8\n'
        f'[strong]\nmodel = "{SMALL_MODEL}"\nmax_tokens = 8\n'
        f'[local]\nn_threads = 1\n[memory]\ndata_dir = "{data_dir}"\n'
        "[serve]\nmax_tokens = 8\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAR_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rar_tasks.cli",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "rar serve did not come up"
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        answer = client(base).chat.completions.create(
            model="rar", messages=[{"role": "user", "content": "Say yes."}]
        )
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert answer.choices[0].message.content
    assert json.loads(answer.model_dump_json())["rar"]["routed_model"] == SMALL_MODEL


def test_answer_cut_by_max_tokens_reports_length(server):
    base, _ = server
    api = client(base)
    question = [{"role": "user", "content": "Describe the water cycle in detail."}]

    answer = api.chat.completions.create(model="rar", messages=question, max_tokens=3)
    chunks = list(
        api.chat.completions.create(model="rar", messages=question, max_tokens=3, stream=True)
    )

    assert answer.usage.completion_tokens == 3
    assert answer.choices[0].finish_reason == "length"
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["length"]
