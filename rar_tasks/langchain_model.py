"""`RARChatModel`: RAR as a LangChain chat model, for use in chains and agents unchanged.

Each call is routed by RAR between the weak and the strong model (see `rar_tasks.chat`); the
answer's `response_metadata` says which model answered, why, what every model call cost and
whether memory learned. Inner model calls are reported to LangChain callbacks as child runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManager, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from rar_tasks.chat import ChatReply, ChatService
from rar_tasks.llm import Generation


class RARChatModel(BaseChatModel):
    """A LangChain chat model that routes each call between a weak and a strong model.

    Args:
        weak_model: LiteLLM name of the weak model (default: configuration's `weak.model`).
        strong_model: LiteLLM name of the strong model (default: `strong.model`).
        memory_dir: folder of RAR's memory (default: configuration's data folder).
        registry_alias: route with this registered router version, e.g. `champion`.
        namespace: memory namespace of these requests (default: `memory.namespace`).
        config_path: TOML configuration file (default: `RAR_CONFIG` or `./rar.toml`).
        overrides: further configuration, e.g. `{"serve": {"background_learning": False}}`.
        max_tokens: cap on answer tokens (default: `serve.max_tokens`).

    Routing reads the last user turn plus a short window of the turns before it; the model
    that serves sees every message, system prompts included, with the routing guide added to
    the system prompt. Tools bound with `bind_tools` go to whichever model serves; a request
    with tools is routed as usual but never learned from (the answer is a tool call whose
    worth is known only once the tool has run). `stop` sequences are not passed on.

    Async calls (`ainvoke`, `astream`, `abatch`) run the same code in worker threads;
    calls to one local model are serialised by its lock either way.

    Example:
        >>> from langchain_core.prompts import ChatPromptTemplate
        >>> from langchain_core.output_parsers import StrOutputParser
        >>> chain = ChatPromptTemplate.from_template("Define {word}.") | RARChatModel(
        ...     weak_model="gguf/qwen2.5-0.5b", strong_model="gguf/qwen2.5-1.5b"
        ... ) | StrOutputParser()
        >>> chain.invoke({"word": "entropy"})
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    weak_model: str | None = None
    strong_model: str | None = None
    memory_dir: str | None = None
    registry_alias: str | None = None
    namespace: str | None = None
    config_path: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    max_tokens: int | None = None

    _service: ChatService | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "rar"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        settings = self.service.settings
        return {
            "weak_model": settings.weak.model,
            "strong_model": settings.strong.model,
            "registry_alias": self.registry_alias,
            "namespace": self.namespace or settings.memory.namespace,
        }

    @property
    def service(self) -> ChatService:
        """The chat service of this configuration (shared by every model configured alike)."""
        if self._service is None:
            from rar_tasks.config import load_settings

            self._service = ChatService.shared(
                load_settings(self.config_path, self._overrides()), self.registry_alias
            )
        return self._service

    def wait_for_learning(self, timeout: float | None = None) -> int:
        """Block until background learning is done; return how many jobs are still pending."""
        return self.service.wait_for_learning(timeout)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable:
        """Bind tools (OpenAI form after conversion) for whichever model serves.

        Args:
            tools: tool definitions: dicts, pydantic models, functions or LangChain tools.
            tool_choice: a tool's name (forces that tool), "auto", "none", "any"/"required",
                True (the only tool), or an OpenAI tool-choice dict.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        choice = _tool_choice(tool_choice, formatted)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return super().bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        service = self.service
        request = self._request(messages, kwargs)
        reply = service.reply(request, _CallbackTracer.of(run_manager))
        message = AIMessage(
            content=reply.text,
            tool_calls=_lc_tool_calls(reply.tool_calls),
            response_metadata=_response_metadata(reply),
            usage_metadata=_usage(reply.serving_call),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        service = self.service
        request = self._request(messages, kwargs)
        for item in service.stream(request, _CallbackTracer.of(run_manager)):
            if isinstance(item, ChatReply):
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(
                        content="",
                        tool_call_chunks=[
                            {
                                "name": call["function"]["name"],
                                "args": call["function"]["arguments"],
                                "id": call["id"],
                                "index": i,
                            }
                            for i, call in enumerate(item.tool_calls)
                        ],
                        response_metadata=_response_metadata(item),
                        usage_metadata=_usage(item.serving_call),
                        chunk_position="last",
                    )
                )
            else:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
                if run_manager:
                    run_manager.on_llm_new_token(item, chunk=chunk)
            yield chunk

    def _request(self, messages: list[BaseMessage], kwargs: dict[str, Any]):
        return self.service.request_for(
            convert_to_openai_messages(messages),
            tools=kwargs.get("tools"),
            tool_choice=kwargs.get("tool_choice"),
            max_tokens=kwargs.get("max_tokens") or self.max_tokens,
            namespace=self.namespace,
        )

    def _overrides(self) -> dict[str, Any]:
        overrides = json.loads(json.dumps(self.overrides))  # a deep copy
        if self.weak_model:
            overrides.setdefault("weak", {})["model"] = self.weak_model
        if self.strong_model:
            overrides.setdefault("strong", {})["model"] = self.strong_model
        if self.memory_dir:
            overrides.setdefault("memory", {})["data_dir"] = self.memory_dir
        return overrides


class _CallbackTracer:
    """Reports RAR's inner model calls as child runs of the chat model's run."""

    def __init__(self, run_manager: CallbackManagerForLLMRun):
        self.run_manager = run_manager

    @classmethod
    def of(cls, run_manager: CallbackManagerForLLMRun | None) -> _CallbackTracer | None:
        return cls(run_manager) if run_manager is not None else None

    def start(self, role: str, purpose: str, model: str, messages: list[dict]):
        parent = self.run_manager
        children = CallbackManager(handlers=[], parent_run_id=parent.run_id)
        children.set_handlers(parent.inheritable_handlers)
        children.add_tags(parent.inheritable_tags)
        children.add_tags([f"rar:{role}", f"rar:{purpose}"], inherit=False)
        children.add_metadata(parent.inheritable_metadata)
        try:
            lc_messages = convert_to_messages(messages)
        except (ValueError, TypeError, KeyError):
            lc_messages = []
        runs = children.on_chat_model_start(
            {"name": f"rar-{role}"},
            [lc_messages],
            name=f"rar-{role}-{purpose}",
            invocation_params={"model": model, "role": role, "purpose": purpose},
        )
        return runs[0]

    def end(self, run, generation: Generation) -> None:
        message = AIMessage(
            content=generation.text,
            tool_calls=_lc_tool_calls(generation.tool_calls),
            usage_metadata=_usage(generation),
            response_metadata={"model_name": generation.model, "cost": generation.cost},
        )
        run.on_llm_end(
            LLMResult(
                generations=[[ChatGeneration(message=message)]],
                llm_output={"model_name": generation.model, "cost": generation.cost},
            )
        )

    def error(self, run, exc: BaseException) -> None:
        run.on_llm_error(exc)


def _tool_choice(choice: str | dict | bool | None, tools: list[dict]) -> str | dict | None:
    if choice is None or isinstance(choice, dict):
        return choice
    if choice is True:
        if len(tools) != 1:
            raise ValueError(f"tool_choice=True needs exactly one tool, got {len(tools)}")
        choice = tools[0]["function"]["name"]
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    names = [t["function"]["name"] for t in tools]
    if choice not in names:
        raise ValueError(f"tool_choice {choice!r} names no bound tool; bound: {names}")
    return {"type": "function", "function": {"name": choice}}


def _lc_tool_calls(calls: list[dict]) -> list[dict]:
    out = []
    for call in calls:
        raw = call["function"]["arguments"] or "{}"
        try:
            args = json.loads(raw)
        except json.JSONDecodeError:
            args = {"__raw__": raw}  # a model broke JSON; the caller still sees what it wrote
        if not isinstance(args, dict):
            args = {"__raw__": raw}
        out.append(
            {"name": call["function"]["name"], "args": args, "id": call["id"], "type": "tool_call"}
        )
    return out


def _usage(generation: Generation) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=generation.input_tokens,
        output_tokens=generation.output_tokens,
        total_tokens=generation.input_tokens + generation.output_tokens,
    )


def _response_metadata(reply: ChatReply) -> dict[str, Any]:
    return {"model_name": reply.model, "finish_reason": reply.finish_reason, **reply.metadata()}
