"""Step 4, strong-guide: the strong model answers (the user gets that) and writes a guide.

The guide teaches the weak model how to approach this kind of request without giving away
this request's answer, so it can transfer to similar requests. It is asked for only when the
weak model was not good enough, as writing it is the most expensive call of all.
"""

from __future__ import annotations

import hashlib
import re

from prefect import task
from prefect.cache_policies import NO_CACHE

from rar_tasks.context import RARContext
from rar_tasks.llm import Generation, call_model
from rar_tasks.prompts import guide_messages
from rar_tasks.requests import Request
from rar_tasks.weak_generate import answer_with

# A guide must not hand over the answer: sentences that do are dropped.
_LEAK = re.compile(
    r"(correct|right|final)\s+(answer|option|choice)\s+(is|would be)|answer\s*(is|:)\s*\(?[A-J]\b",
    re.IGNORECASE,
)


@task(name="strong-answer", cache_policy=NO_CACHE)
def strong_answer(ctx: RARContext, request: Request) -> Generation:
    """The strong model's answer to `request`: what the user receives on a learning route."""
    return answer_with(ctx, "strong", request)


@task(name="strong-guide", cache_policy=NO_CACHE)
def write_guide(ctx: RARContext, request: Request) -> tuple[str, str, Generation]:
    """Ask the strong model for a reusable guide.

    Returns:
        (guide text, guide id, the call). The text is empty when nothing survives the
        answer-leak filter.
    """
    call = call_model(
        ctx.settings,
        ctx.settings.strong,
        guide_messages(request),
        max_tokens=ctx.settings.guide.max_tokens,
    )
    guide = clean_guide(call.text)
    guide_id = "g-" + hashlib.sha256(f"{request.id}\x00{guide}".encode()).hexdigest()[:16]
    return guide, guide_id if guide else "", call


def clean_guide(text: str) -> str:
    """Drop sentences that state an answer, and a sentence cut off by the token limit."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    if sentences and not re.search(r"[.!?]$", sentences[-1]):
        sentences = sentences[:-1]
    return " ".join(s for s in sentences if not _LEAK.search(s)).strip()
