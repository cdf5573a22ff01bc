"""Judges decide whether the weak model's answer is good enough.

Three behind one interface: ground truth (the request's label), agreement with the strong
answer (final answers extracted and compared), and an LLM judge (the strong model grades the
weak answer against its own with a rubric). Agreement is the default for live traffic: it
needs no label and no extra call.

Ground truth comes in two modes. `ground_truth` asks "did the weak model answer right?";
`ground_truth_relative` asks what routing needs, "is the weak answer as good as the strong
one?": the weak answer is good enough when it is right, or when the strong answer is wrong
too (a strong call would then buy nothing). Agreement approximates the relative verdict
without a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rar_tasks.answers import extract_answer
from rar_tasks.errors import ConfigError, RequestError
from rar_tasks.requests import Request

if TYPE_CHECKING:
    from rar_tasks.config import Settings
    from rar_tasks.llm import Generation


@dataclass
class Judgement:
    good: bool
    judge: str
    weak_answer: str | None
    reference: str | None
    call: Generation | None = None


class Judge(Protocol):
    name: str

    def judge(self, request: Request, weak_text: str, strong_text: str | None) -> Judgement: ...


def label_answer(request: Request) -> str | None:
    """The request's label in the form `extract_answer` produces, or None without a label."""
    if request.label is None:
        return None
    if request.kind == "text":
        return extract_answer(request.label, "text")
    return request.label


def matches_label(request: Request, text: str | None) -> bool:
    """Whether a response's final answer equals the request's label."""
    answer = extract_answer(text, request.kind, request.n_choices)
    return answer is not None and answer == label_answer(request)


class GroundTruthJudge:
    """Good when the weak model's final answer equals the request's label.

    With `relative`, also good when the strong answer misses the label as well: the weak
    answer is then as good as the strong one. The relative mode needs the strong answer.
    """

    def __init__(self, relative: bool = False):
        self.relative = relative
        self.name = "ground_truth_relative" if relative else "ground_truth"

    def judge(self, request: Request, weak_text: str, strong_text: str | None) -> Judgement:
        if request.label is None:
            raise RequestError("label", "the ground-truth judge needs requests with a label")
        if self.relative and strong_text is None:
            raise RequestError(
                "strong_text", "the relative ground-truth judge needs the strong answer"
            )
        answer = extract_answer(weak_text, request.kind, request.n_choices)
        good = matches_label(request, weak_text)
        if self.relative and not good:
            good = not matches_label(request, strong_text)
        return Judgement(good, self.name, answer, label_answer(request))


class AgreementJudge:
    """Good when the weak and strong final answers agree (letter, number or normalised text)."""

    name = "agreement"

    def judge(self, request: Request, weak_text: str, strong_text: str | None) -> Judgement:
        if strong_text is None:
            raise RequestError("strong_text", "the agreement judge needs the strong answer")
        answer = extract_answer(weak_text, request.kind, request.n_choices)
        reference = extract_answer(strong_text, request.kind, request.n_choices)
        good = answer is not None and answer == reference
        return Judgement(good, self.name, answer, reference)


class LLMJudge:
    """The strong model grades the weak answer against its own answer with a rubric."""

    name = "llm"

    def __init__(self, settings: Settings):
        self.settings = settings

    def judge(self, request: Request, weak_text: str, strong_text: str | None) -> Judgement:
        from rar_tasks.llm import call_model
        from rar_tasks.prompts import judge_messages

        if strong_text is None:
            raise RequestError("strong_text", "the LLM judge needs the strong answer")
        call = call_model(
            self.settings,
            self.settings.strong,
            judge_messages(request, weak_text, strong_text),
            max_tokens=1,
            grammar="root ::= [YN]",
        )
        good = call.text.strip().upper().startswith("Y")
        answer = extract_answer(weak_text, request.kind, request.n_choices)
        reference = extract_answer(strong_text, request.kind, request.n_choices)
        return Judgement(good, self.name, answer, reference, call)


def make_judge(name: str, settings: Settings) -> Judge:
    if name == "agreement":
        return AgreementJudge()
    if name == "ground_truth":
        return GroundTruthJudge()
    if name == "ground_truth_relative":
        return GroundTruthJudge(relative=True)
    if name == "llm":
        return LLMJudge(settings)
    raise ConfigError(
        "config field 'judge' must be agreement, ground_truth, ground_truth_relative or llm; "
        f"got {name!r}"
    )
