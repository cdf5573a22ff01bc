"""LiteLLM provider `gguf/<alias>`: local GGUF models run in-process by llama-cpp-python.

In-process was chosen over llama-cpp-python's OpenAI-compatible server: no second process to
start, watch and stop, no HTTP hop, and models are loaded once per process and shared by both
the per-request path and flows. The cost is that one process holds the weights (0.3-2 GiB per
model) and calls to one model are serialised by a lock, as llama.cpp contexts are not
thread-safe. For parallel serving, run several processes or point `api_base` at a server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk, ModelResponse

from rar_tasks.errors import ModelError

log = logging.getLogger("rar.local")

PROVIDER = "gguf"


class GGUFProvider(CustomLLM):
    """Serves `gguf/<alias>` completions from models in the local model cache."""

    def __init__(self, cache_dir, n_threads: int = 2, n_ctx: int = 2048, seed: int = 0):
        super().__init__()
        self.cache_dir = cache_dir
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.seed = seed
        self._models: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def load(self, alias: str):
        """Load (once) and return the llama.cpp model for `alias`, with its lock."""
        with self._guard:
            if alias not in self._models:
                from llama_cpp import Llama

                from rar_tasks.model_store import model_path

                path = model_path(alias, self.cache_dir)
                started = time.perf_counter()
                self._models[alias] = Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    seed=self.seed,
                    verbose=False,
                )
                self._locks[alias] = threading.Lock()
                log.info(
                    "event=local_model_loaded alias=%s seconds=%.2f",
                    alias,
                    time.perf_counter() - started,
                )
            return self._models[alias], self._locks[alias]

    def _chat(self, model: str, messages: list, optional_params: dict, stream: bool):
        alias = model.split("/", 1)[-1]
        llm, lock = self.load(alias)
        kwargs: dict[str, Any] = {
            "messages": messages,
            "max_tokens": int(optional_params.get("max_tokens") or 64),
            "temperature": float(optional_params.get("temperature") or 0.0),
            "stream": stream,
        }
        grammar = (optional_params.get("extra_body") or {}).get("gbnf") or optional_params.get(
            "gbnf"
        )
        if grammar:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
        if optional_params.get("stop"):
            kwargs["stop"] = optional_params["stop"]
        # llama.cpp returns tool calls only for a named `tool_choice` (arguments constrained by
        # the tool's JSON schema); with "auto" the tools reach the chat template, text comes back.
        if optional_params.get("tools"):
            kwargs["tools"] = optional_params["tools"]
            if isinstance(optional_params.get("tool_choice"), dict):
                kwargs["tool_choice"] = optional_params["tool_choice"]
        return llm, lock, kwargs

    def completion(
        self,
        model,
        messages,
        api_base,
        custom_prompt_dict,
        model_response,
        print_verbose,
        encoding,
        api_key,
        logging_obj,
        optional_params,
        acompletion=None,
        litellm_params=None,
        logger_fn=None,
        headers=None,
        timeout=None,
        client=None,
    ) -> ModelResponse:
        llm, lock, kwargs = self._chat(model, messages, optional_params, stream=False)
        try:
            with lock:
                out = llm.create_chat_completion(**kwargs)
        except ValueError as exc:  # llama.cpp raises ValueError when the prompt is too long
            raise ModelError(f"local model {model!r} refused the request: {exc}") from exc
        choice = out["choices"][0]
        model_response.choices[0].message.content = choice["message"]["content"] or ""
        model_response.choices[0].finish_reason = choice.get("finish_reason") or "stop"
        if choice["message"].get("tool_calls"):
            model_response.choices[0].message.tool_calls = _tool_calls(choice["message"])
        usage = out["usage"]
        model_response.usage = _usage(usage["prompt_tokens"], usage["completion_tokens"])
        model_response.model = model
        return model_response

    async def acompletion(self, *args, **kwargs) -> ModelResponse:
        import asyncio

        return await asyncio.to_thread(self.completion, *args, **kwargs)

    def streaming(
        self,
        model,
        messages,
        api_base,
        custom_prompt_dict,
        model_response,
        print_verbose,
        encoding,
        api_key,
        logging_obj,
        optional_params,
        acompletion=None,
        litellm_params=None,
        logger_fn=None,
        headers=None,
        timeout=None,
        client=None,
    ) -> Iterator[GenericStreamingChunk]:
        llm, lock, kwargs = self._chat(model, messages, optional_params, stream=True)
        prompt_tokens = 0
        produced = 0
        with lock:
            for part in llm.create_chat_completion(**kwargs):
                delta = part["choices"][0].get("delta", {}).get("content") or ""
                finish = part["choices"][0].get("finish_reason")
                if delta:
                    produced += 1
                if finish:
                    # The context holds the chat-formatted prompt and the answer once done.
                    prompt_tokens = max(int(llm.n_tokens) - produced, 0)
                yield GenericStreamingChunk(
                    text=delta,
                    is_finished=finish is not None,
                    finish_reason=finish or "",
                    index=0,
                    tool_use=None,
                    usage={
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": produced,
                        "total_tokens": prompt_tokens + produced,
                    }
                    if finish
                    else None,
                )

    async def astreaming(self, *args, **kwargs) -> AsyncIterator[GenericStreamingChunk]:
        """Async twin of `streaming`: each chunk is produced in a worker thread."""
        import asyncio

        chunks = self.streaming(*args, **kwargs)
        done = object()
        try:
            while True:
                chunk = await asyncio.to_thread(next, chunks, done)
                if chunk is done:
                    return
                yield chunk
        finally:
            # Closing the generator releases the model lock when the caller stops early.
            await asyncio.to_thread(chunks.close)


def _tool_calls(message: dict) -> list:
    from litellm.types.utils import ChatCompletionMessageToolCall, Function

    return [
        ChatCompletionMessageToolCall(
            id=call.get("id"),
            type="function",
            function=Function(
                name=call["function"]["name"], arguments=call["function"]["arguments"]
            ),
        )
        for call in message["tool_calls"]
    ]


def _usage(prompt: int, completion: int):
    from litellm.types.utils import Usage

    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


_registered: GGUFProvider | None = None


def register(cache_dir, n_threads: int, n_ctx: int, seed: int = 0) -> GGUFProvider:
    """Register the `gguf` provider with LiteLLM once per process and return it.

    Known shortcoming: models are loaded once per process, so the first settings win; a
    later call with another cache, thread count or context size is logged and ignored.
    """
    global _registered
    import litellm

    if _registered is not None:
        wanted = (str(cache_dir), n_threads, n_ctx)
        have = (str(_registered.cache_dir), _registered.n_threads, _registered.n_ctx)
        if wanted != have:
            log.warning(
                "event=local_settings_ignored reason=provider_already_loaded "
                "n_threads=%d n_ctx=%d kept_n_threads=%d kept_n_ctx=%d",
                n_threads, n_ctx, _registered.n_threads, _registered.n_ctx,
            )
    if _registered is None:
        _registered = GGUFProvider(cache_dir, n_threads=n_threads, n_ctx=n_ctx, seed=seed)
        litellm.custom_provider_map = [
            item for item in litellm.custom_provider_map if item["provider"] != PROVIDER
        ] + [{"provider": PROVIDER, "custom_handler": _registered}]
    return _registered
