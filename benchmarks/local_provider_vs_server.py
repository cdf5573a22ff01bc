"""In-process `gguf/` provider vs llama-cpp-python's OpenAI-compatible server, through LiteLLM.

Both paths run the same GGUF file with the same threads; the server is started on 127.0.0.1
by this script and reached as `openai/<alias>` with `api_base`. Calls alternate between the
two paths (A B A B ...) on real MMLU questions, so machine drift hits both alike.

Run: .venv/bin/python benchmarks/local_provider_vs_server.py [--model smollm2-135m] [--calls 20]
Needs `pip install sse-starlette starlette-context` for the server.
Writes benchmarks/results/local_provider_vs_server.md and prints the same table.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"server at {url} not ready after {seconds} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from rar_tasks.config import load_settings
    from rar_tasks.llm import call_model, letter_grammar
    from rar_tasks.model_store import model_path
    from rar_tasks.prompts import answer_messages
    from rar_tasks.run import load_stream

    local = load_settings(
        overrides={
            "weak": {"model": f"gguf/{args.model}"},
            "local": {"n_threads": args.threads},
        }
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path(args.model)),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            str(args.threads),
            "--n_ctx",
            "2048",
            "--model_alias",
            args.model,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models", server)
        remote = load_settings(
            overrides={
                "weak": {
                    "model": f"openai/{args.model}",
                    "api_base": f"http://127.0.0.1:{port}/v1",
                    "api_key_env": "RAR_BENCH_DUMMY_KEY",
                },
            }
        )
        os.environ["RAR_BENCH_DUMMY_KEY"] = "not-used"
        requests = load_stream(local, "mmlu", None, None, args.calls + 1, seed=3)
        timings: dict[str, list[float]] = {"in-process": [], "server": []}
        tokens = {"in-process": 0, "server": 0}
        for i, request in enumerate(requests):
            for name, settings in (("in-process", local), ("server", remote)):
                grammar = letter_grammar(request.n_choices) if name == "in-process" else None
                gen = call_model(settings, settings.weak, answer_messages(request), 4, grammar)
                if i:  # the first call of each path loads the model: not counted
                    timings[name].append(gen.latency_s)
                    tokens[name] += gen.input_tokens
    finally:
        server.terminate()
        server.wait(timeout=20)

    lines = [
        f"model {args.model}, {args.threads} threads, {args.calls} calls each, max 4 tokens",
        "",
        "| path | p50 (ms) | p95 (ms) | mean (ms) | prompt tokens |",
        "|---|---|---|---|---|",
    ]
    for name, values in timings.items():
        arr = np.array(values) * 1000
        lines.append(
            f"| {name} | {np.percentile(arr, 50):.0f} | {np.percentile(arr, 95):.0f} | "
            f"{arr.mean():.0f} | {tokens[name]} |"
        )
    table = "\n".join(lines)
    print(table)
    out = Path(__file__).parent / "results" / "local_provider_vs_server.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")


if __name__ == "__main__":
    main()
