"""An OpenAI-compatible HTTP endpoint for RAR, so any OpenAI client can use the router.

`POST /v1/chat/completions` (plain and streamed), `GET /v1/models`, `GET /health`. The router
is the model named `serve.model_name` (`rar`). Every answer carries a `rar` object beside the
OpenAI fields: routed model, route and reason, memory similarity, guide id, router version,
learning state, cost, and tokens and cost of each model call (see `ChatReply.metadata`).
Errors use OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rar_tasks.chat import ChatReply, ChatService
from rar_tasks.config import Settings
from rar_tasks.errors import ModelError, RequestError

log = logging.getLogger("rar.http")

# Fields of OpenAI's chat completion request that RAR reads; others are accepted and ignored
# (temperature, top_p, n > 1 and the like: RAR answers at temperature 0, one choice).
_READ = (
    "model",
    "messages",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "tools",
    "tool_choice",
    "user",
    "stream_options",
)


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None):
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, kind, param, code), status_code=status)


def create_app(settings: Settings, service: ChatService | None = None) -> FastAPI:
    """The FastAPI app serving RAR under `settings` (service built on first request).

    Args:
        settings: models, memory and the `serve` section (model name, API key, limits).
        service: an existing chat service (tests pass one to share a loaded embedder).

    Example:
        >>> import uvicorn
        >>> uvicorn.run(create_app(load_settings()), host="127.0.0.1", port=8765)
    """
    cfg = settings.serve
    app = FastAPI(title="prefect-rar", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.service = service or ChatService.shared(settings)
    api_key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
    if cfg.api_key_env and not api_key:
        from rar_tasks.errors import ConfigError

        raise ConfigError(
            f"config field 'serve.api_key_env' names {cfg.api_key_env!r}, which is not set; "
            "export it or leave serve.api_key_env empty to serve without a key"
        )

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(
                    401,
                    "missing or wrong API key; send 'Authorization: Bearer <key>'",
                    "authentication_error",
                    code="invalid_api_key",
                )
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cfg.max_body_bytes:
            return _error(
                413,
                f"request body of {length} bytes is over the limit of {cfg.max_body_bytes} bytes",
                code="request_too_large",
            )
        return await call_next(request)

    @app.get("/health")
    def health() -> dict[str, Any]:
        svc: ChatService = app.state.service
        return {
            "status": "ok",
            "model": cfg.model_name,
            "weak_model": settings.weak.model,
            "strong_model": settings.strong.model,
            "learning_pending": svc.pending_learning(),
        }

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": cfg.model_name, "object": "model", "created": 0, "owned_by": "prefect-rar"}
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await request.body()
        if len(body) > cfg.max_body_bytes:
            return _error(
                413,
                f"request body of {len(body)} bytes is over the limit of "
                f"{cfg.max_body_bytes} bytes",
                code="request_too_large",
            )
        try:
            data = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        svc: ChatService = app.state.service
        try:
            stream, chat_request = _parse(data, cfg.model_name, svc)
        except UnknownModel as exc:
            return _error(404, str(exc), param="model", code="model_not_found")
        except RequestError as exc:
            return _error(400, str(exc), param=exc.field)
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        if stream:
            pieces = svc.stream(chat_request)
            try:
                first = await run_in_threadpool(next, pieces)
            except ModelError as exc:
                return _upstream_error(exc)
            events = _sse(first, pieces, completion_id, cfg.model_name, _usage_wanted(data))
            return StreamingResponse(events, media_type="text/event-stream")
        try:
            reply = await run_in_threadpool(svc.reply, chat_request)
        except ModelError as exc:
            return _upstream_error(exc)
        return JSONResponse(_completion(reply, completion_id, cfg.model_name))

    return app


class UnknownModel(RequestError):
    def __init__(self, model: str, model_name: str):
        super().__init__("model", f"the model {model!r} does not exist; use {model_name!r}")


def _parse(data: Any, model_name: str, svc: ChatService):
    """Validate an OpenAI chat completion request into (stream?, RAR chat request)."""
    if not isinstance(data, dict):
        raise RequestError("body", f"must be a JSON object, got {type(data).__name__}")
    if "messages" not in data:
        raise RequestError("messages", "is required")
    model = data.get("model")
    if not isinstance(model, str):
        raise RequestError("model", f"must be a string naming {model_name!r}, got {model!r}")
    if model != model_name:
        raise UnknownModel(model, model_name)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream", f"must be a boolean, got {type(stream).__name__}")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    tools = data.get("tools")
    choice = data.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise RequestError("tool_choice", "must be a string or an object")
    return stream, svc.request_for(data["messages"], tools, choice, max_tokens)


def _usage_wanted(data: dict) -> bool:
    options = data.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _upstream_error(exc: ModelError) -> JSONResponse:
    log.warning("event=upstream_failed error=%s", str(exc)[:200])
    return _error(
        502,
        f"the upstream model failed and no fallback answered: {exc}",
        "upstream_error",
        code="upstream_failed",
    )


def _usage(reply: ChatReply) -> dict[str, int]:
    gen = reply.serving_call
    return {
        "prompt_tokens": gen.input_tokens,
        "completion_tokens": gen.output_tokens,
        "total_tokens": gen.input_tokens + gen.output_tokens,
    }


def _completion(reply: ChatReply, completion_id: str, model_name: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    elif message["content"] is None:
        message["content"] = ""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        ],
        "usage": _usage(reply),
        "rar": reply.metadata(),
    }


def _chunk(
    completion_id: str, model_name: str, delta: dict, finish: str | None = None, **extra: Any
) -> str:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        **extra,
    }
    return f"data: {json.dumps(body)}\n\n"


def _sse(
    first, pieces: Iterator, completion_id: str, model_name: str, include_usage: bool
) -> Iterator[str]:
    """Server-sent events of one streamed answer; the last chunk carries `rar`.

    Starlette runs this generator in a worker thread, so the blocking model stream is fine.
    A failure after the first event cannot change the status code any more: it ends the
    stream with an error event.
    """
    yield _chunk(completion_id, model_name, {"role": "assistant", "content": ""})
    item = first
    try:
        while not isinstance(item, ChatReply):
            yield _chunk(completion_id, model_name, {"content": item})
            item = next(pieces)
    except ModelError as exc:
        body = error_body(
            f"the upstream model failed mid-stream: {exc}", "upstream_error", code="upstream_failed"
        )
        yield f"data: {json.dumps(body)}\n\n"
        return
    finally:
        # A client that hangs up leaves the model stream open; closing it frees the model.
        if not isinstance(item, ChatReply):
            pieces.close()
    reply: ChatReply = item
    delta: dict[str, Any] = {}
    if reply.tool_calls:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(reply.tool_calls)]
    yield _chunk(completion_id, model_name, delta, reply.finish_reason, rar=reply.metadata())
    if include_usage:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model_name,
            "choices": [],
            "usage": _usage(reply),
        }
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the endpoint with uvicorn until interrupted (`rar serve`)."""
    import uvicorn

    app = create_app(settings)
    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    log.info("event=http_serving host=%s port=%d model=%s", host, port, settings.serve.model_name)
    # Load the embedder and open memory before the first request, not during it.
    app.state.service.ctx  # noqa: B018
    uvicorn.run(app, host=host, port=port, log_level="warning")
