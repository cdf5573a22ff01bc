"""Chat serving for drop-in use: OpenAI-style messages in, a routed answer out, learning after.

The LangChain chat model and the HTTP endpoint both go through `ChatService`, so they route,
answer, fall back and learn the same way. A learning route returns (or streams) the strong
answer first; judge, guide and memory update then run on one background worker per service,
or before returning when `serve.background_learning` is off.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rar_tasks.config import Settings
from rar_tasks.context import RARContext, build_context
from rar_tasks.errors import ModelError, RequestError
from rar_tasks.llm import Generation, call_model, stream_model
from rar_tasks.pipeline import LIGHT, Call, Served, serve_request
from rar_tasks.prompts import answer_messages, guide_messages, judge_messages
from rar_tasks.requests import Chat, Request, request_id_for
from rar_tasks.routers import LEARN, STRONG, WEAK, Route

log = logging.getLogger("rar.chat")

ROLES = ("system", "developer", "user", "assistant", "tool")

# Learning outcomes kept per service for `ChatService.learned` (oldest dropped first).
_KEEP_OUTCOMES = 1000

# What `ChatReply.learning` can say.
LEARNING_NONE = "none"  # weak (or strong) route: nothing to learn
LEARNING_BACKGROUND = "background"  # scheduled after the answer was returned
LEARNING_DONE = "done"  # finished before the answer was returned
LEARNING_SKIPPED_TOOLS = "skipped_tools"  # tool-bound request: never learned from
LEARNING_SKIPPED_FALLBACK = "skipped_fallback"  # the serving model failed; the other answered


class Tracer(Protocol):
    """Sees every model call a chat request makes (LangChain callbacks implement it)."""

    def start(self, role: str, purpose: str, model: str, messages: list[dict]) -> Any: ...

    def end(self, token: Any, generation: Generation) -> None: ...

    def error(self, token: Any, exc: BaseException) -> None: ...


@dataclass
class ChatReply:
    """The answer to one chat request, with its route and every call made so far."""

    request_id: str
    text: str
    tool_calls: list[dict]
    model: str
    route: str
    reason: str
    similarity: float | None
    guide_id: str
    router_version: str
    calls: list[Call] = field(default_factory=list)
    learning: str = LEARNING_NONE
    fallback_from: str = ""
    verdict: str | None = None
    new_guide_id: str = ""
    finish_reason: str = "stop"

    @property
    def serving_call(self) -> Generation:
        """The call whose answer the caller received."""
        return next(c.generation for c in reversed(self.calls) if c.purpose == "serve")

    @property
    def cost(self) -> float:
        return sum(c.generation.cost for c in self.calls)

    def metadata(self) -> dict[str, Any]:
        """What the caller is told: LangChain `response_metadata`, the HTTP `rar` field."""
        return {
            "routed_model": self.model,
            "route": self.route,
            "route_reason": self.reason,
            "memory_similarity": self.similarity,
            "guide_id": self.guide_id,
            "router_version": self.router_version,
            "request_id": self.request_id,
            "learning": self.learning,
            "learned": self.learning == LEARNING_DONE,
            "fallback_from": self.fallback_from,
            "verdict": self.verdict,
            "new_guide_id": self.new_guide_id,
            "cost": self.cost,
            "calls": [
                {
                    "role": c.role,
                    "purpose": c.purpose,
                    "model": c.generation.model,
                    "input_tokens": c.generation.input_tokens,
                    "output_tokens": c.generation.output_tokens,
                    "cost": c.generation.cost,
                    "latency_s": round(c.generation.latency_s, 4),
                }
                for c in self.calls
            ],
        }


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    raise RequestError("content", f"must be a string or a list of parts, got {type(content)}")


def validate_messages(messages: Any) -> list[dict]:
    """Check OpenAI-style chat messages; return them as a list of dicts.

    Raises:
        RequestError: naming the message index and field, e.g. `messages[1].role`.
    """
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "must be a non-empty list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{i}]", f"must be an object, got {type(message).__name__}")
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(f"messages[{i}].role", f"must be one of {ROLES}, got {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise RequestError(
                f"messages[{i}].content",
                f"must be a string or a list, got {type(content).__name__}",
            )
    if not any(m["role"] == "user" for m in messages):
        raise RequestError("messages", "must hold at least one user message")
    return messages


def routing_text(messages: list[dict], context_chars: int) -> str:
    """The last user turn, preceded by up to `context_chars` of the turns just before it.

    System prompts are left out: they are usually the same for every request of an
    application and would make all requests look alike to the embedder.
    """
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    text = content_text(messages[last]["content"]).strip()
    context: list[str] = []
    budget = context_chars
    for message in reversed(messages[:last]):
        if budget <= 0:
            break
        if message["role"] not in ("user", "assistant"):
            continue
        turn = content_text(message.get("content")).strip()
        if not turn:
            continue
        turn = turn[-budget:]
        budget -= len(turn)
        context.insert(0, f"{message['role']}: {turn}")
    return "\n".join(context + [text]) if context else text


class ChatService:
    """Routes and answers chat requests for one configuration, and learns from them.

    Args:
        settings: models, memory, router thresholds and the `serve` section.
        registry_alias: route with this registered router version (e.g. `champion`) instead
            of RAR's memory router; memory still learns from learning routes.
        embedder: an embedder already loaded (default: built from settings, once per process).

    Example:
        >>> service = ChatService.shared(load_settings())
        >>> reply = service.reply(service.request_for([{"role": "user", "content": "Hi"}]))
    """

    _shared: dict[str, ChatService] = {}
    _shared_lock = threading.Lock()

    def __init__(self, settings: Settings, registry_alias: str | None = None, embedder=None):
        self.settings = settings
        self.registry_alias = registry_alias or None
        self._embedder = embedder
        self._ctx: RARContext | None = None
        self._router_version = ""
        self._ctx_lock = threading.Lock()
        # Embedding and memory search are serialised: the embedder is not known to be
        # thread-safe, and they take milliseconds next to a model call.
        self._route_lock = threading.Lock()
        self._learner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rar-learn")
        self._pending: set[Future] = set()
        self._pending_lock = threading.Lock()
        self._outcomes: OrderedDict[str, dict] = OrderedDict()

    @classmethod
    def shared(cls, settings: Settings, registry_alias: str | None = None) -> ChatService:
        """One service per configuration per process, so that all users of one memory share
        its write lock and learning worker."""
        key = json.dumps([repr(settings), registry_alias], sort_keys=True)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(settings, registry_alias)
            return cls._shared[key]

    @property
    def ctx(self) -> RARContext:
        """The RAR context, built on first use (loads the embedder, opens memory)."""
        with self._ctx_lock:
            if self._ctx is None:
                ctx = build_context(self.settings, self._embedder or _embedder(self.settings))
                if self.registry_alias:
                    ctx.router = _registry_router(self.settings, self.registry_alias, ctx)
                    self._router_version = f"{ctx.router.name}/{ctx.router.version}"
                self._ctx = ctx
            return self._ctx

    def router_version(self) -> str:
        """A registered version (`router-version/<n>`), or RAR with its memory table version."""
        ctx = self.ctx
        return self._router_version or f"rar/memory-v{ctx.memory.version()}"

    def request_for(
        self,
        messages: Any,
        tools: list[dict] | None = None,
        tool_choice: str | dict | None = None,
        max_tokens: int | None = None,
        namespace: str | None = None,
    ) -> Request:
        """A chat `Request`: embedded and remembered by its routing text, answered with
        `messages` (system prompts kept).

        Raises:
            RequestError: bad messages, tools, max_tokens or namespace, naming the field.
        """
        messages = validate_messages(messages)
        if tools is not None and (
            not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
        ):
            raise RequestError("tools", "must be a list of tool objects")
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise RequestError("max_tokens", f"must be a positive integer, got {max_tokens!r}")
        namespace = namespace or self.settings.memory.namespace
        text = routing_text(messages, self.settings.serve.context_chars)
        if not text:
            raise RequestError("messages", "the last user message has no text")
        limit = self.settings.max_request_chars
        if len(text) > limit:
            raise RequestError("messages", f"last turn is {len(text)} characters, over {limit}")
        chat = Chat(
            list(messages),
            tools or None,
            tool_choice if tools else None,
            max_tokens or self.settings.serve.max_tokens,
        )
        return Request(request_id_for(namespace, text), text, namespace, chat=chat)

    def reply(self, request: Request, tracer: Tracer | None = None) -> ChatReply:
        """Route `request`, answer it, and learn (now or in the background) when routed so.

        Raises:
            ModelError: the serving model failed and fallback is off or failed too.
        """
        started = time.perf_counter()
        route = self._route(request)
        reply = self._answer(request, route, tracer)
        self._log(reply, started)
        return reply

    def stream(self, request: Request, tracer: Tracer | None = None) -> Iterator[str | ChatReply]:
        """Like `reply`, streaming: yield the answer's text pieces, then the `ChatReply`.

        Tool-bound requests are answered by one non-streamed call (tool calls arrive whole).
        A failure before the first piece falls back to the other model when configured; a
        failure after it ends the stream with `ModelError`.
        """
        started = time.perf_counter()
        route = self._route(request)
        if request.chat.tools:
            reply = self._answer(request, route, tracer)
            if reply.text:
                yield reply.text
            self._log(reply, started)
            yield reply
            return
        side = _serving_side(route)
        gen, fallback_from = None, ""
        try:
            for item in self._stream_call(side, request, route, tracer):
                if isinstance(item, Generation):
                    gen = item
                else:
                    yield item
        except ModelError as exc:
            if gen is not None or not self.settings.serve.fallback:
                raise
            gen, fallback_from = self._fallback(side, request, route, tracer, exc), side
            if gen.text:
                yield gen.text
        reply = self._reply(request, route, gen, fallback_from)
        self._after_answer(reply, request, route, gen, tracer)
        self._log(reply, started)
        yield reply

    def wait_for_learning(self, timeout: float | None = None) -> int:
        """Wait for background learning to finish; return how many jobs are still pending."""
        with self._pending_lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout)
        return self.pending_learning()

    def pending_learning(self) -> int:
        with self._pending_lock:
            return sum(not f.done() for f in self._pending)

    def learned(self, request_id: str) -> dict | None:
        """What learning did for a recent request: verdict, guide id, calls; None if unknown."""
        with self._pending_lock:
            return self._outcomes.get(request_id)

    def close(self) -> None:
        """Finish background learning and stop the worker."""
        self._learner.shutdown(wait=True)

    # The steps of one request.

    def _route(self, request: Request) -> Route:
        ctx = self.ctx
        with self._route_lock:
            return LIGHT.predict_route(ctx, request)

    def _call(
        self, side: str, purpose: str, request: Request, route: Route, tracer: Tracer | None
    ) -> Generation:
        ctx = self.ctx
        cfg = getattr(self.settings, side)
        guide = route.guide if side == WEAK else ""
        messages = answer_messages(request, guide)
        chat = request.chat
        return _traced(
            tracer,
            side,
            purpose,
            cfg.model,
            messages,
            lambda: call_model(
                ctx.settings, cfg, messages, chat.max_tokens, None, chat.tools, chat.tool_choice
            ),
        )

    def _stream_call(
        self, side: str, request: Request, route: Route, tracer: Tracer | None
    ) -> Iterator[str | Generation]:
        cfg = getattr(self.settings, side)
        messages = answer_messages(request, route.guide if side == WEAK else "")
        token = tracer.start(side, "serve", cfg.model, messages) if tracer else None
        try:
            for item in stream_model(self.settings, cfg, messages, request.chat.max_tokens):
                if isinstance(item, Generation) and tracer:
                    tracer.end(token, item)
                yield item
        except ModelError as exc:
            if tracer:
                tracer.error(token, exc)
            raise

    def _fallback(
        self, side: str, request: Request, route: Route, tracer: Tracer | None, exc: ModelError
    ) -> Generation:
        if not self.settings.serve.fallback:
            raise exc
        other = STRONG if side == WEAK else WEAK
        log.warning(
            "event=model_fallback request_id=%s failed=%s to=%s error=%s",
            request.id,
            getattr(self.settings, side).model,
            getattr(self.settings, other).model,
            type(exc.__cause__ or exc).__name__,
        )
        try:
            return self._call(other, "serve", request, route, tracer)
        except ModelError as second:
            raise ModelError(f"both models failed: {exc}; then {second}") from second

    def _answer(self, request: Request, route: Route, tracer: Tracer | None) -> ChatReply:
        side = _serving_side(route)
        try:
            gen, fallback_from = self._call(side, "serve", request, route, tracer), ""
        except ModelError as exc:
            gen, fallback_from = self._fallback(side, request, route, tracer, exc), side
        reply = self._reply(request, route, gen, fallback_from)
        self._after_answer(reply, request, route, gen, tracer)
        return reply

    def _reply(
        self, request: Request, route: Route, gen: Generation, fallback_from: str
    ) -> ChatReply:
        side = _serving_side(route)
        if fallback_from:
            side = STRONG if side == WEAK else WEAK
        return ChatReply(
            request.id,
            gen.text,
            gen.tool_calls,
            gen.model,
            route.kind,
            route.reason,
            route.top_similarity,
            route.guide_id,
            self.router_version(),
            [Call(side, "serve", gen)],
            fallback_from=fallback_from,
            finish_reason="tool_calls" if gen.tool_calls else gen.finish_reason,
        )

    def _after_answer(
        self,
        reply: ChatReply,
        request: Request,
        route: Route,
        gen: Generation,
        tracer: Tracer | None,
    ) -> None:
        if route.kind != LEARN:
            return
        if reply.fallback_from:
            reply.learning = LEARNING_SKIPPED_FALLBACK
            return
        if request.chat.tools:
            # The judges compare final text answers, and a tool call is only good or bad once
            # the caller has run the tool; so tool-bound requests are never learned from.
            reply.learning = LEARNING_SKIPPED_TOOLS
            return
        if self.settings.serve.background_learning:
            reply.learning = LEARNING_BACKGROUND
            future = self._learner.submit(self._learn, request, route, gen, tracer)
            with self._pending_lock:
                self._pending = {f for f in self._pending if not f.done()} | {future}
            return
        served = self._learn(request, route, gen, tracer)
        reply.calls = list(served.calls)
        reply.learning = LEARNING_DONE
        reply.verdict = served.verdict
        reply.new_guide_id = served.new_guide_id

    def _learn(
        self, request: Request, route: Route, strong: Generation, tracer: Tracer | None
    ) -> Served:
        """Judge, guide and memory update for a learning route whose strong answer is given."""
        ctx = self.ctx
        steps = replace(
            _traced_steps(tracer, ctx),
            predict_route=lambda _ctx, _request: route,
            strong_answer=lambda _ctx, _request: strong,
        )
        try:
            served = serve_request(ctx, request, steps)
        except Exception as exc:
            log.error(
                "event=learning_failed request_id=%s error=%s detail=%s",
                request.id,
                type(exc).__name__,
                str(exc)[:200],
            )
            raise
        outcome = {
            "verdict": served.verdict,
            "new_guide_id": served.new_guide_id,
            "calls": [c.purpose + ":" + c.role for c in served.calls],
            "cost": served.cost,
        }
        with self._pending_lock:
            self._outcomes[request.id] = outcome
            while len(self._outcomes) > _KEEP_OUTCOMES:
                self._outcomes.popitem(last=False)
        return served

    def _log(self, reply: ChatReply, started: float) -> None:
        log.info(
            "event=chat_served request_id=%s route=%s model=%s learning=%s fallback_from=%s "
            "cost=%.6f wall_s=%.3f",
            reply.request_id,
            reply.route,
            reply.model,
            reply.learning,
            reply.fallback_from or "-",
            reply.cost,
            time.perf_counter() - started,
        )


def _serving_side(route: Route) -> str:
    return WEAK if route.kind == WEAK else STRONG


def _traced(
    tracer: Tracer | None,
    role: str,
    purpose: str,
    model: str,
    messages: list[dict],
    call: Callable[[], Generation],
) -> Generation:
    if tracer is None:
        return call()
    token = tracer.start(role, purpose, model, messages)
    try:
        gen = call()
    except BaseException as exc:
        tracer.error(token, exc)
        raise
    tracer.end(token, gen)
    return gen


def _traced_steps(tracer: Tracer | None, ctx: RARContext):
    """The light steps, with each model call of learning reported to `tracer`."""
    if tracer is None:
        return LIGHT
    settings = ctx.settings

    def weak_generate(ctx, request, guide=""):
        messages = answer_messages(request, guide)
        return _traced(
            tracer,
            WEAK,
            "learn",
            settings.weak.model,
            messages,
            lambda: LIGHT.weak_generate(ctx, request, guide),
        )

    def write_guide(ctx, request):
        out: dict = {}

        def call() -> Generation:
            out["result"] = LIGHT.write_guide(ctx, request)
            return out["result"][2]

        _traced(tracer, STRONG, "learn", settings.strong.model, guide_messages(request), call)
        return out["result"]

    def judge(ctx, request, weak, strong):
        if ctx.judge.name != "llm":
            return LIGHT.judge(ctx, request, weak, strong)
        out: dict = {}

        def call() -> Generation:
            out["result"] = LIGHT.judge(ctx, request, weak, strong)
            return out["result"].call

        messages = judge_messages(request, weak.text, strong.text)
        _traced(tracer, STRONG, "learn", settings.strong.model, messages, call)
        return out["result"]

    return replace(LIGHT, weak_generate=weak_generate, write_guide=write_guide, judge=judge)


_embedders: dict[str, Any] = {}
_embedders_lock = threading.Lock()


def _embedder(settings: Settings):
    """One embedder per embedder configuration per process (loading one takes seconds)."""
    from rar_tasks.embed import make_embedder

    key = repr(settings.embedder)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = make_embedder(settings.embedder)
        return _embedders[key]


def _registry_router(settings: Settings, alias: str, ctx: RARContext):
    """The registered router version `alias`, learning into this context's memory."""
    from registry.store import RegistryConfig, RouterRegistry

    registry = RouterRegistry(RegistryConfig.resolve(settings.data_dir()))
    return registry.load(alias, memory=ctx.memory)
