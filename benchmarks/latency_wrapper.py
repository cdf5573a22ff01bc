"""Added latency of RAR's drop-in paths over a direct LiteLLM call to the same local model.

Paths: `litellm` (one `litellm.completion` to the model), `langchain` (`RARChatModel.invoke`),
`http` (the official `openai` client against `create_app` under uvicorn on 127.0.0.1, in this
process). Weak and strong are the same model, so every path runs the same model call; the
extra is routing (embedding, memory search), request building, metadata and, for `http`,
HTTP and JSON. Learning is background work; it is waited for between requests and not timed.
Each RAR path has its own empty memory, so it routes `learn` and then `weak` as memory fills.
The paths take turns on each prompt, as other processes load the machine unevenly.

Measures per path: median wall time; median of (wall minus the direct call's wall on the same
prompt); and median added time, i.e. wall time minus the serving model call's own latency as
`rar.calls` reports it, which does not depend on how fast the model happened to run. For the
direct path the added time is zero by definition.

Run: .venv/bin/python benchmarks/latency_wrapper.py [--requests 12] [--model gguf/smollm2-135m]
Writes benchmarks/results/latency_wrapper.md and .json, and prints the same table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

PROMPTS = [
    "What is the capital of Japan?",
    "Name a mammal that can fly.",
    "What gas do plants take in?",
    "How many legs does a spider have?",
    "What is the largest ocean?",
    "Which planet is called the red planet?",
    "What is frozen water called?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?",
    "Name a primary colour.",
    "What is the chemical symbol for gold?",
    "How many continents are there?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--model", default="gguf/smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from rar_tasks.logs import setup_logging

    setup_logging("WARNING")
    prompts = [
        PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" ({i})")
        for i in range(args.requests)
    ]
    paths = [
        ("litellm (direct)", direct_path(args.model, args.max_tokens)),
        ("langchain RARChatModel.invoke", langchain_path(args.model, args.max_tokens)),
        ("http /v1/chat/completions (openai client)", http_path(args.model, args.max_tokens)),
    ]
    # Paths take turns on each prompt, so that load from other processes hits all alike.
    timings: dict[str, list[tuple[float, float, str]]] = {name: [] for name, _ in paths}
    for prompt in prompts:
        for name, ask in paths:
            timings[name].append(ask(prompt))
    direct = [wall for wall, _, _ in timings[paths[0][0]]]
    rows = [summary(name, timings[name], direct) for name, _ in paths]
    table = render(rows, args)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency_wrapper.md").write_text(table + "\n")
    (args.out / "latency_wrapper.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out / 'latency_wrapper.md'} and {args.out / 'latency_wrapper.json'}")


def overrides(model: str, max_tokens: int, data_dir: str) -> dict:
    return {
        "weak": {"model": model, "max_tokens": max_tokens},
        "strong": {"model": model, "max_tokens": max_tokens},
        "local": {"n_threads": 1},
        "guide": {"max_tokens": 24},
        "memory": {"data_dir": data_dir},
        "serve": {"max_tokens": max_tokens},
    }


def direct_path(model: str, max_tokens: int):
    """One `litellm.completion`; returns (wall, model time = wall, route)."""
    from rar_tasks.config import load_settings
    from rar_tasks.llm import _litellm

    settings = load_settings(None, overrides(model, max_tokens, tempfile.mkdtemp()), environ={})
    litellm = _litellm(settings)  # registers the local provider, as RAR does

    def ask(prompt: str) -> tuple[float, float, str]:
        started = time.perf_counter()
        litellm.completion(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0.0,
        )
        wall = time.perf_counter() - started
        return wall, wall, "-"

    ask("warm up")
    return ask


def langchain_path(model: str, max_tokens: int):
    from rar_tasks.langchain_model import RARChatModel

    tree = overrides(model, max_tokens, tempfile.mkdtemp())
    chat = RARChatModel(weak_model=model, strong_model=model, overrides=tree)

    def ask(prompt: str) -> tuple[float, float, str]:
        started = time.perf_counter()
        message = chat.invoke(prompt)
        wall = time.perf_counter() - started
        chat.wait_for_learning()
        meta = message.response_metadata
        return wall, serving_latency(meta), meta["route"]

    ask("warm up")
    return ask


def http_path(model: str, max_tokens: int):
    import httpx
    import openai
    import uvicorn

    from rar_tasks.config import load_settings
    from rar_tasks.http_server import create_app

    settings = load_settings(None, overrides(model, max_tokens, tempfile.mkdtemp()), environ={})
    app = create_app(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()  # ends with the process
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)

    def ask(prompt: str) -> tuple[float, float, str]:
        started = time.perf_counter()
        answer = client.chat.completions.create(
            model="rar", messages=[{"role": "user", "content": prompt}]
        )
        wall = time.perf_counter() - started
        while httpx.get(base + "/health").json()["learning_pending"]:
            time.sleep(0.05)
        meta = answer.model_extra["rar"]
        return wall, serving_latency(meta), meta["route"]

    ask("warm up")
    return ask


def serving_latency(meta: dict) -> float:
    return sum(c["latency_s"] for c in meta["calls"] if c["purpose"] == "serve")


def summary(path: str, timings: list[tuple[float, float, str]], direct: list[float]) -> dict:
    walls = [wall for wall, _, _ in timings]
    added = sorted(wall - model_s for wall, model_s, _ in timings)
    routes = [route for _, _, route in timings if route != "-"]
    return {
        "path": path,
        "requests": len(walls),
        "wall_ms_p50": 1000 * statistics.median(walls),
        "paired_over_direct_ms_p50": 1000
        * statistics.median(w - d for w, d in zip(walls, direct, strict=True)),
        "added_ms_p50": 1000 * statistics.median(added),
        "added_ms_p90": 1000 * added[min(len(added) - 1, int(0.9 * len(added)))],
        "routes": {r: routes.count(r) for r in sorted(set(routes))},
    }


def render(rows: list[dict], args) -> str:
    lines = [
        f"Added latency over a direct LiteLLM call; model {args.model} (weak = strong), "
        f"max_tokens {args.max_tokens}, {args.requests} requests per path, 1 llama.cpp thread.",
        "",
        "| path | wall p50 (ms) | minus direct, same prompt, p50 (ms) | added p50 (ms) "
        "| added p90 (ms) | routes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        routes = ", ".join(f"{k} {v}" for k, v in row["routes"].items()) or "-"
        lines.append(
            f"| {row['path']} | {row['wall_ms_p50']:.1f} | {row['paired_over_direct_ms_p50']:+.1f} "
            f"| {row['added_ms_p50']:.1f} | {row['added_ms_p90']:.1f} | {routes} |"
        )
    lines.append("")
    lines.append(
        "added = wall time minus the serving model call's own latency (routing, "
        "request building, metadata, HTTP)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
