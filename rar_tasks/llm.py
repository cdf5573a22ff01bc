"""Every model call goes through here: LiteLLM, with tokens, cost and latency recorded.

Costs are computed from the prices in configuration (per input and output token), so that
local models stand in for priced ones and hosted models are charged what the team pays.
LiteLLM is imported on first use: its import takes seconds and most commands never call it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field

from rar_tasks.config import ModelConfig, Settings
from rar_tasks.errors import ModelError

log = logging.getLogger("rar.llm")


def letter_grammar(n_choices: int) -> str:
    """A GBNF grammar that lets a local model answer with one choice letter only."""
    return f"root ::= [A-{'ABCDEFGHIJ'[max(n_choices, 1) - 1]}]"


_setup_lock = threading.Lock()
_setup_done: set[int] = set()


@dataclass
class Generation:
    """What one model call produced and cost."""

    model: str
    text: str
    input_tokens: int
    output_tokens: int
    cost: float
    latency_s: float
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str = "stop"  # "length" when max_tokens cut the answer

    def to_dict(self) -> dict:
        return asdict(self)


def ensure_litellm(settings: Settings):
    """Import LiteLLM once, offline, with the local provider registered."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    with _setup_lock:
        if id(settings) not in _setup_done:
            litellm.telemetry = False
            litellm.suppress_debug_info = True
            if any(m.model.startswith("gguf/") for m in (settings.weak, settings.strong)):
                from rar_tasks.local_provider import register

                register(
                    settings.model_cache(),
                    n_threads=settings.local.n_threads,
                    n_ctx=settings.local.n_ctx,
                    seed=settings.local.seed,
                )
            _setup_done.add(id(settings))
    return litellm


def _kwargs(
    cfg: ModelConfig,
    messages: list[dict],
    max_tokens: int | None,
    grammar: str | None,
    tools: list[dict] | None = None,
    tool_choice: str | dict | None = None,
) -> dict:
    kwargs: dict = {
        "model": cfg.model,
        "messages": messages,
        "max_tokens": max_tokens or cfg.max_tokens,
        "temperature": 0.0,
        "timeout": cfg.timeout_s,
    }
    if cfg.api_base:
        kwargs["api_base"] = cfg.api_base
    if cfg.api_key_env:
        kwargs["api_key"] = os.environ.get(cfg.api_key_env)
    if grammar and cfg.model.startswith("gguf/"):
        kwargs["gbnf"] = grammar
    if tools:
        kwargs["tools"] = tools
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
    return kwargs


def _to_generation(cfg: ModelConfig, response, started: float) -> Generation:
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    message = response.choices[0].message
    text = message.content or ""
    cost = tokens_in * cfg.input_cost_per_token + tokens_out * cfg.output_cost_per_token
    gen = Generation(
        cfg.model,
        text,
        tokens_in,
        tokens_out,
        cost,
        time.perf_counter() - started,
        _tool_calls(message),
        response.choices[0].finish_reason or "stop",
    )
    log.debug(
        "event=model_call model=%s tokens_in=%d tokens_out=%d cost=%.6f latency_s=%.3f",
        cfg.model,
        tokens_in,
        tokens_out,
        cost,
        gen.latency_s,
    )
    return gen


def _wrap(cfg: ModelConfig, exc: Exception) -> ModelError:
    if isinstance(exc, ModelError):
        return exc
    name = type(exc).__name__
    return ModelError(f"model call to {cfg.model!r} failed ({name}): {str(exc)[:300]}")


def call_model(
    settings: Settings,
    cfg: ModelConfig,
    messages: list[dict],
    max_tokens: int | None = None,
    grammar: str | None = None,
    tools: list[dict] | None = None,
    tool_choice: str | dict | None = None,
) -> Generation:
    """Call one model through LiteLLM and return its text with tokens and cost.

    Args:
        settings: for provider registration (local models).
        cfg: which model, its prices and limits.
        messages: OpenAI-style chat messages.
        max_tokens: cap on output tokens (default `cfg.max_tokens`).
        grammar: a GBNF grammar that constrains local (`gguf/`) models, e.g.
            `letter_grammar(4)` for a one-letter answer; hosted models get the prompt alone.
        tools: OpenAI-style tool definitions passed through to the model; its tool calls
            come back in `Generation.tool_calls`.
        tool_choice: "auto", "none", "required" or a named function (OpenAI form).

    Raises:
        ModelError: unknown model, provider failure or refused prompt, naming the model.
    """
    litellm = ensure_litellm(settings)
    started = time.perf_counter()
    try:
        response = litellm.completion(
            **_kwargs(cfg, messages, max_tokens, grammar, tools, tool_choice)
        )
    except Exception as exc:  # LiteLLM raises many types; callers get one
        raise _wrap(cfg, exc) from exc
    return _to_generation(cfg, response, started)


async def acall_model(
    settings: Settings,
    cfg: ModelConfig,
    messages: list[dict],
    max_tokens: int | None = None,
    grammar: str | None = None,
    tools: list[dict] | None = None,
    tool_choice: str | dict | None = None,
) -> Generation:
    """Async twin of `call_model` (same arguments, result and errors)."""
    litellm = ensure_litellm(settings)
    started = time.perf_counter()
    try:
        response = await litellm.acompletion(
            **_kwargs(cfg, messages, max_tokens, grammar, tools, tool_choice)
        )
    except Exception as exc:
        raise _wrap(cfg, exc) from exc
    return _to_generation(cfg, response, started)


def _tool_calls(message) -> list[dict]:
    calls = getattr(message, "tool_calls", None) or []
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function.name, "arguments": call.function.arguments},
        }
        for call in calls
    ]


def _stream_kwargs(cfg: ModelConfig, messages: list[dict], max_tokens: int | None) -> dict:
    kwargs = _kwargs(cfg, messages, max_tokens, None)
    kwargs["stream"] = True
    kwargs["stream_options"] = {"include_usage": True}
    return kwargs


class _StreamTally:
    """Collects the pieces and usage of a streamed call into one `Generation`."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg
        self.started = time.perf_counter()
        self.pieces: list[str] = []
        self.usage = None
        self.finish_reason = "stop"

    def add(self, chunk) -> str:
        self.usage = getattr(chunk, "usage", None) or self.usage
        if not chunk.choices:
            return ""
        self.finish_reason = chunk.choices[0].finish_reason or self.finish_reason
        piece = chunk.choices[0].delta.content or ""
        if piece:
            self.pieces.append(piece)
        return piece

    def generation(self) -> Generation:
        cfg = self.cfg
        tokens_in = int(getattr(self.usage, "prompt_tokens", 0) or 0)
        # Without reported usage, each piece counts as one output token.
        tokens_out = int(getattr(self.usage, "completion_tokens", 0) or len(self.pieces))
        cost = tokens_in * cfg.input_cost_per_token + tokens_out * cfg.output_cost_per_token
        latency = time.perf_counter() - self.started
        text = "".join(self.pieces)
        return Generation(
            cfg.model, text, tokens_in, tokens_out, cost, latency, [], self.finish_reason
        )


def stream_model(
    settings: Settings, cfg: ModelConfig, messages: list[dict], max_tokens: int | None = None
) -> Iterator[str | Generation]:
    """Call one model with streaming: yield its text pieces as they come, then one `Generation`
    for the whole call (text, tokens, cost, latency).

    Raises:
        ModelError: as `call_model`, before or during the stream.

    Example:
        >>> for item in stream_model(settings, settings.strong, messages):
        ...     print(item if isinstance(item, str) else item.cost)
    """
    litellm = ensure_litellm(settings)
    tally = _StreamTally(cfg)
    try:
        for chunk in litellm.completion(**_stream_kwargs(cfg, messages, max_tokens)):
            piece = tally.add(chunk)
            if piece:
                yield piece
    except Exception as exc:
        raise _wrap(cfg, exc) from exc
    yield tally.generation()


async def astream_model(
    settings: Settings, cfg: ModelConfig, messages: list[dict], max_tokens: int | None = None
) -> AsyncIterator[str | Generation]:
    """Async twin of `stream_model` (same arguments, items and errors)."""
    litellm = ensure_litellm(settings)
    tally = _StreamTally(cfg)
    try:
        async for chunk in await litellm.acompletion(**_stream_kwargs(cfg, messages, max_tokens)):
            piece = tally.add(chunk)
            if piece:
                yield piece
    except Exception as exc:
        raise _wrap(cfg, exc) from exc
    yield tally.generation()
