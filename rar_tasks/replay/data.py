"""Recorded outcomes of a weak and a strong model, ready to replay.

Three recordings of the pair Mixtral-8x7B-Instruct (weak) / GPT-4-1106-preview (strong):
MMLU (right or wrong per question), GSM8K (right or wrong, with both full responses) and
MT-Bench (GPT-4 judge scores 1-10 of both turns). Each becomes a `ReplayDataset`: requests in
file order plus one array per recorded fact, indexed like the requests.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from rar_tasks.answers import extract_number
from rar_tasks.config import GPT4_1106_PRICES, MIXTRAL_8X7B_PRICES
from rar_tasks.errors import RequestError
from rar_tasks.requests import Request

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
DATASETS = ("routellm-mmlu", "routellm-gsm8k", "routellm-mtbench")

# MMLU recordings hold no responses: the models answered with a choice letter, counted as one
# output token for both models.
MMLU_OUTPUT_TOKENS = 1


@dataclass
class ReplayDataset:
    """Requests and what each model did on them, index-aligned.

    `weak_quality` / `strong_quality` are what a request served by that model scores (1/0 for
    right/wrong, or a judge score); `weak_good` is the verdict the replay judge gives the weak
    answer (what RAR learns); `groups` are subjects or categories for held-out splits.
    """

    name: str
    requests: list[Request]
    weak_quality: np.ndarray
    strong_quality: np.ndarray
    weak_good: np.ndarray
    groups: np.ndarray
    input_tokens: np.ndarray
    weak_output_tokens: np.ndarray
    strong_output_tokens: np.ndarray
    judge: str
    sha256: str
    weak_texts: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def relative_good(self) -> np.ndarray:
        """Whether the weak answer is as good as the strong one (quality at least as high).

        With right/wrong quality (MMLU, GSM8K) this is the verdict the live
        `ground_truth_relative` judge gives on a learning route: weak right, or strong wrong
        too. It is also the oracle's routing target.
        """
        return self.weak_quality >= self.strong_quality

    @property
    def relative_judge(self) -> str:
        """Name of the judge `relative_good` stands for, stored with the memory records."""
        binary = (
            np.isin(self.weak_quality, (0.0, 1.0)).all()
            and np.isin(self.strong_quality, (0.0, 1.0)).all()
        )
        return "ground_truth_relative" if binary else "score_within_0"

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.requests]

    @property
    def weak_cost(self) -> np.ndarray:
        """Dollars of one weak call per request (Mixtral-8x7B list price)."""
        p_in, p_out = MIXTRAL_8X7B_PRICES
        return self.input_tokens * p_in + self.weak_output_tokens * p_out

    @property
    def strong_cost(self) -> np.ndarray:
        """Dollars of one strong call per request (GPT-4-1106 list price)."""
        p_in, p_out = GPT4_1106_PRICES
        return self.input_tokens * p_in + self.strong_output_tokens * p_out

    def subset(self, index: np.ndarray) -> ReplayDataset:
        """The requests at `index` (in that order) with their outcomes."""
        index = np.asarray(index, dtype=int)
        return ReplayDataset(
            self.name,
            [self.requests[i] for i in index],
            self.weak_quality[index],
            self.strong_quality[index],
            self.weak_good[index],
            self.groups[index],
            self.input_tokens[index],
            self.weak_output_tokens[index],
            self.strong_output_tokens[index],
            self.judge,
            self.sha256,
            [self.weak_texts[i] for i in index] if self.weak_texts is not None else None,
            list(self.notes),
        )


@lru_cache(maxsize=1)
def _encoding():
    """cl100k_base, read from the copy LiteLLM bundles so that no download is needed."""
    import importlib.util

    import tiktoken

    spec = importlib.util.find_spec("litellm")
    if spec and spec.origin and "TIKTOKEN_CACHE_DIR" not in os.environ:
        bundled = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
    return tiktoken.get_encoding("cl100k_base")


def count_tokens(texts: list[str]) -> np.ndarray:
    """Token counts with GPT-4's tokenizer (cl100k_base); used for both models' prices."""
    enc = _encoding()
    return np.array([len(t) for t in enc.encode_ordinary_batch(texts, num_threads=1)], dtype=float)


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _bool(value: str, where: str) -> bool:
    if value not in ("True", "False"):
        raise RequestError(where, f"must be True or False, got {value!r}")
    return value == "True"


def load_routellm_mmlu(root: Path, subjects: list[str] | None = None) -> ReplayDataset:
    """MMLU test questions with whether each model answered right; judge: ground truth.

    Args:
        root: the shared data folder (holding `routellm/`).
        subjects: MMLU subjects to load (default: all 57).

    Raises:
        RequestError: field `subjects` for an unknown subject, `data_root` for a missing folder.
    """
    folder = root / "routellm" / "mmlu_responses"
    if not folder.is_dir():
        raise RequestError("data_root", f"no RouteLLM MMLU responses at {folder}")
    known = sorted(p.stem.removeprefix("mmlu_") for p in folder.glob("mmlu_*.csv"))
    chosen = subjects or known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise RequestError("subjects", f"unknown MMLU subject {unknown[0]!r}; e.g. {known[:4]}")
    requests, weak, strong, groups = [], [], [], []
    paths = [folder / f"mmlu_{s}.csv" for s in chosen]
    for subject, path in zip(chosen, paths, strict=True):
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                # The recorded prompt ends with "Answer:"; live requests carry no such cue.
                text = row["prompt"].removesuffix("Answer:").rstrip()
                requests.append(
                    Request(
                        f"routellm-mmlu/{subject}/{i}",
                        text,
                        "routellm-mmlu",
                        "choice",
                        None,
                        4,
                        {"subject": subject},
                    )
                )
                weak.append(_bool(row[WEAK_MODEL], f"{path.name}:{i + 2}.weak"))
                strong.append(_bool(row[STRONG_MODEL], f"{path.name}:{i + 2}.strong"))
                groups.append(subject)
    weak_q, strong_q = np.array(weak, dtype=float), np.array(strong, dtype=float)
    n = len(requests)
    out_tokens = np.full(n, float(MMLU_OUTPUT_TOKENS))
    return ReplayDataset(
        "routellm-mmlu",
        requests,
        weak_q,
        strong_q,
        weak_q.astype(bool),
        np.array(groups),
        count_tokens([r.text for r in requests]),
        out_tokens,
        out_tokens.copy(),
        "ground_truth",
        _sha256(paths),
        notes=[
            f"output tokens: none recorded, counted as {MMLU_OUTPUT_TOKENS} (a choice "
            "letter) for both models"
        ],
    )


def load_routellm_gsm8k(root: Path, judge: str = "agreement") -> ReplayDataset:
    """GSM8K test questions with both models' responses and correctness.

    Args:
        root: the shared data folder.
        judge: `agreement` (the weak model's final number equals the strong model's, as the
            live agreement judge decides) or `ground_truth` (the weak answer was right).
    """
    if judge not in ("agreement", "ground_truth"):
        raise RequestError("judge", f"must be agreement or ground_truth, got {judge!r}")
    path = root / "routellm" / "gsm8k_responses.csv"
    if not path.exists():
        raise RequestError("data_root", f"no RouteLLM GSM8K responses at {path}")
    requests, weak, strong, agree, weak_texts, strong_texts = [], [], [], [], [], []
    with path.open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            requests.append(
                Request(
                    f"routellm-gsm8k/{i}", row["prompt"], "routellm-gsm8k", "number", None, 0, {}
                )
            )
            weak.append(_bool(row[WEAK_MODEL], f"row {i}.weak"))
            strong.append(_bool(row[STRONG_MODEL], f"row {i}.strong"))
            w_text, s_text = row[f"{WEAK_MODEL}_response"], row[f"{STRONG_MODEL}_response"]
            w_ans, s_ans = extract_number(w_text), extract_number(s_text)
            agree.append(w_ans is not None and w_ans == s_ans)
            weak_texts.append(w_text)
            strong_texts.append(s_text)
    weak_q, strong_q = np.array(weak, dtype=float), np.array(strong, dtype=float)
    good = np.array(agree) if judge == "agreement" else weak_q.astype(bool)
    return ReplayDataset(
        "routellm-gsm8k",
        requests,
        weak_q,
        strong_q,
        good,
        np.array(["gsm8k"] * len(requests)),
        count_tokens([r.text for r in requests]),
        count_tokens(weak_texts),
        count_tokens(strong_texts),
        judge,
        _sha256([path]),
        weak_texts,
        notes=["token counts: prompts and both recorded responses (cl100k_base)"],
    )


_ASSISTANT = re.compile(
    r"### Assistant A:\n(.*?)(?=\n\n### User:|\n\n<\|The End of Assistant)", re.DOTALL
)


def load_routellm_mtbench(root: Path, tolerance: float = 0.0) -> ReplayDataset:
    """MT-Bench's 80 two-turn questions; quality is the mean GPT-4 judge score of both turns.

    The weak answer counts as good enough when its mean score is at least the strong one's
    minus `tolerance`. Answer token counts come from the conversations the judge saw.
    """
    folder = root / "routellm" / "mt_bench"
    q_path, j_path = folder / "question.jsonl", folder / "judgements.jsonl"
    if not q_path.exists() or not j_path.exists():
        raise RequestError("data_root", f"no MT-Bench question/judgement files in {folder}")
    questions = [json.loads(line) for line in q_path.read_text().splitlines() if line.strip()]
    scores: dict[tuple[int, str], list[float]] = {}
    answers: dict[tuple[int, str], list[str]] = {}
    for line in j_path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        key = (int(row["question_id"]), row["model"])
        scores.setdefault(key, []).append(float(row["score"]))
        if row["turn"] == 2:
            answers[key] = _ASSISTANT.findall(row["user_prompt"])
    requests, weak, strong, groups, in_tok, w_out, s_out = [], [], [], [], [], [], []
    for q in questions:
        qid = int(q["question_id"])
        turns = q["turns"]
        w_key, s_key = (qid, WEAK_MODEL), (qid, STRONG_MODEL)
        if len(scores.get(w_key, [])) != 2 or len(scores.get(s_key, [])) != 2:
            raise RequestError("judgements", f"question {qid} lacks two turn scores per model")
        requests.append(
            Request(
                f"routellm-mtbench/{qid}",
                "\n\n".join(turns),
                "routellm-mtbench",
                "text",
                None,
                0,
                {"category": q["category"]},
            )
        )
        weak.append(np.mean(scores[w_key]))
        strong.append(np.mean(scores[s_key]))
        groups.append(q["category"])
        w_tokens = count_tokens(answers.get(w_key) or [""]).sum()
        s_tokens = count_tokens(answers.get(s_key) or [""]).sum()
        first = count_tokens([turns[0]])[0]
        # Turn two re-sends turn one and the first answer; the strong answer's length stands in.
        in_tok.append(2 * first + count_tokens(turns[1:])[0] + s_tokens / 2)
        w_out.append(w_tokens)
        s_out.append(s_tokens)
    weak_q, strong_q = np.array(weak), np.array(strong)
    return ReplayDataset(
        "routellm-mtbench",
        requests,
        weak_q,
        strong_q,
        weak_q >= strong_q - tolerance,
        np.array(groups),
        np.array(in_tok, dtype=float),
        np.array(w_out, dtype=float),
        np.array(s_out, dtype=float),
        f"score_within_{tolerance:g}",
        _sha256([q_path, j_path]),
        notes=[
            "quality: mean GPT-4 judge score (1-10) of both turns",
            "input tokens: both user turns plus turn one re-sent, approximated",
        ],
    )


def load_dataset(
    name: str, root: Path, subjects: list[str] | None = None, judge: str | None = None
) -> ReplayDataset:
    """Load one of `DATASETS` by name.

    Raises:
        RequestError: field `dataset` for an unknown name.
    """
    if name == "routellm-mmlu":
        return load_routellm_mmlu(root, subjects)
    if name == "routellm-gsm8k":
        return load_routellm_gsm8k(root, judge or "agreement")
    if name == "routellm-mtbench":
        return load_routellm_mtbench(root)
    raise RequestError("dataset", f"must be one of {', '.join(DATASETS)}, got {name!r}")
