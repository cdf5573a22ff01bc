"""The prompts RAR sends: answering (with or without a guide), writing a guide, judging."""

from __future__ import annotations

from rar_tasks.requests import Request

ANSWER_SYSTEM = {
    "choice": "Answer the multiple-choice question with the letter of the correct choice only.",
    "number": "Solve the problem. End with a line 'Answer: <number>'.",
    "text": "Answer the request accurately and concisely.",
}

GUIDE_INSTRUCTION = (
    "Write a short guide (at most {sentences} sentences) that teaches a less capable model how "
    "to approach questions of this kind: the concepts to recall, the method, the common traps. "
    "It must help with similar questions too, so do NOT state the answer or the correct letter "
    "of this particular question."
)

GUIDE_HEADING = "Guide for questions of this kind:\n"

JUDGE_RUBRIC = (
    "You grade a candidate answer against a reference answer from a stronger model. Reply Y "
    "if the candidate reaches the same final answer and is not wrong or misleading; otherwise "
    "reply N. Reply with the single letter Y or N."
)


def answer_messages(request: Request, guide: str = "") -> list[dict]:
    """Messages for the weak or strong model to answer `request`, with an optional guide.

    A chat request keeps its own messages; the guide is appended to its first system prompt,
    or goes in a system prompt of its own placed first.
    """
    if request.chat is not None:
        return chat_messages(request.chat.messages, guide)
    system = ANSWER_SYSTEM[request.kind]
    if guide:
        system += "\n\n" + GUIDE_HEADING + guide.strip()
    user = request.text + ("\nAnswer:" if request.kind == "choice" else "")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def chat_messages(messages: list[dict], guide: str = "") -> list[dict]:
    """A copy of chat `messages` with `guide` added to the system prompt (unchanged without)."""
    out = [dict(m) for m in messages]
    if not guide:
        return out
    note = GUIDE_HEADING + guide.strip()
    for message in out:
        if message.get("role") == "system" and isinstance(message.get("content"), str):
            message["content"] = message["content"] + "\n\n" + note
            return out
    return [{"role": "system", "content": note}] + out


def guide_messages(request: Request, sentences: int = 3) -> list[dict]:
    return [
        {"role": "system", "content": GUIDE_INSTRUCTION.format(sentences=sentences)},
        {"role": "user", "content": "Question:\n" + request.text},
    ]


def judge_messages(request: Request, candidate: str, reference: str) -> list[dict]:
    user = (
        f"Question:\n{request.text}\n\nReference answer:\n{reference}\n\n"
        f"Candidate answer:\n{candidate}\n\nIs the candidate good enough (Y/N)?"
    )
    return [{"role": "system", "content": JUDGE_RUBRIC}, {"role": "user", "content": user}]
