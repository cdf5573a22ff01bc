"""Step 2, weak-generate: the weak model answers, with the guide in its prompt when given."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rar_tasks.context import RARContext
from rar_tasks.llm import Generation, call_model, letter_grammar
from rar_tasks.prompts import answer_messages
from rar_tasks.requests import Request


def answer_with(ctx: RARContext, side: str, request: Request, guide: str = "") -> Generation:
    """Have the weak or strong model answer `request` (shared by steps 2 and 4)."""
    cfg = getattr(ctx.settings, side)
    grammar = letter_grammar(request.n_choices) if request.kind == "choice" else None
    max_tokens = 4 if request.kind == "choice" else None
    messages = answer_messages(request, guide)
    chat = request.chat
    if chat is None:
        return call_model(ctx.settings, cfg, messages, max_tokens, grammar)
    return call_model(
        ctx.settings, cfg, messages, chat.max_tokens, None, chat.tools, chat.tool_choice
    )


@task(name="weak-generate", cache_policy=NO_CACHE)
def weak_generate(ctx: RARContext, request: Request, guide: str = "") -> Generation:
    """The weak model's answer to `request`, guided by `guide` when it is not empty.

    Raises:
        ModelError: the weak model could not be called.
    """
    return answer_with(ctx, "weak", request, guide)
