"""Requests: validation, and the streams `rar run` serves (MMLU, GSM8K, a user's JSONL).

A request is what a user asks, plus optional metadata: a label (ground truth, as in
benchmarks), the answer kind (choice letter, number or free text) and a namespace that keeps
unrelated traffic apart in memory.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rar_tasks.answers import LETTERS, normalise_number
from rar_tasks.errors import RequestError

KINDS = ("choice", "number", "text")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@dataclass
class Chat:
    """The full chat form of a request (LangChain and HTTP use): the serving model sees these
    messages, with the guide added to the system prompt, instead of `Request.text` alone.

    `messages` are OpenAI-style dicts (system prompts and earlier turns kept as given);
    `tools` and `tool_choice` pass through to whichever model serves; `max_tokens` caps the
    answer (default: the model's configured `max_tokens`).
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_tokens: int | None = None


@dataclass
class Request:
    """One request to route. `text` is what the models see and what is embedded; for a chat
    request (`chat` set), `text` is what is embedded and remembered, and the models see `chat`.
    """

    id: str
    text: str
    namespace: str = "default"
    kind: str = "text"
    label: str | None = None
    n_choices: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    chat: Chat | None = None


def request_id_for(namespace: str, text: str) -> str:
    return hashlib.sha256(f"{namespace}\x00{text}".encode()).hexdigest()[:24]


def make_request(data: Any, max_chars: int = 12_000, default_namespace: str = "default") -> Request:
    """Validate a mapping (from JSON, HTTP or code) into a `Request`.

    Accepted fields: `text` (required), `id`, `namespace`, `kind`, `label`, `choices`
    (list of strings, appended to the text as lettered options), `meta`.

    Raises:
        RequestError: naming the field, for a missing, empty, mistyped or over-long value.
    """
    if not isinstance(data, dict):
        raise RequestError("request", f"must be an object, got {type(data).__name__}")
    unknown = set(data) - {"id", "text", "namespace", "kind", "label", "choices", "meta"}
    if unknown:
        raise RequestError(sorted(unknown)[0], "unknown field")
    text = data.get("text")
    if text is None:
        raise RequestError("text", "is required")
    if not isinstance(text, str):
        raise RequestError("text", f"must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RequestError("text", "must not be empty")
    namespace = data.get("namespace", default_namespace)
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise RequestError("namespace", "must be 1-64 characters of letters, digits, _ . : -")
    choices = data.get("choices")
    n_choices = 0
    if choices is not None:
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise RequestError("choices", "must be a list of strings")
        if not 2 <= len(choices) <= len(LETTERS):
            raise RequestError("choices", f"must hold 2 to {len(LETTERS)} options")
        n_choices = len(choices)
        text = format_choices(text, choices)
    if len(text) > max_chars:
        raise RequestError("text", f"is {len(text)} characters, over the limit of {max_chars}")
    kind = data.get("kind") or ("choice" if n_choices else "text")
    if kind not in KINDS:
        raise RequestError("kind", f"must be one of {KINDS}, got {kind!r}")
    if kind == "choice" and not n_choices:
        raise RequestError("choices", "are required when kind is 'choice'")
    label = _label(data.get("label"), kind, n_choices)
    rid = data.get("id")
    if rid is None:
        rid = request_id_for(namespace, text)
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or not str(rid).strip():
        raise RequestError("id", "must be a non-empty string")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise RequestError("meta", "must be an object")
    return Request(str(rid), text, namespace, kind, label, n_choices, meta)


def _label(label: Any, kind: str, n_choices: int) -> str | None:
    if label is None:
        return None
    if kind == "choice":
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < n_choices:
            return LETTERS[label]
        if isinstance(label, str) and label.strip().upper() in LETTERS[:n_choices]:
            return label.strip().upper()
        raise RequestError("label", f"must be a choice letter or index below {n_choices}")
    if kind == "number":
        value = normalise_number(str(label))
        if value is None:
            raise RequestError("label", f"must be a number, got {label!r}")
        return value
    if not isinstance(label, str):
        raise RequestError("label", "must be a string")
    return label


def format_choices(question: str, choices: list[str]) -> str:
    lines = [question.strip()] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    return "\n".join(lines)


def load_mmlu(root: Path, subjects: list[str], split: str = "test") -> list[Request]:
    """MMLU rows of the given subjects as choice requests; namespace `mmlu`.

    Raises:
        RequestError: field `subjects` for an unknown subject (listing a few known ones).
    """
    folder = root / "mmlu" / split
    if not folder.is_dir():
        raise RequestError("data_root", f"no MMLU folder at {folder}")
    out: list[Request] = []
    for subject in subjects:
        path = folder / f"{subject}_{split}.csv"
        if not path.exists():
            known = sorted(p.name.rsplit("_", 1)[0] for p in folder.glob("*.csv"))
            raise RequestError("subjects", f"unknown MMLU subject {subject!r}; e.g. {known[:5]}")
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                choices = [row[f"choice{j}"] for j in range(4)]
                out.append(
                    make_request(
                        {
                            "id": f"mmlu/{subject}/{i}",
                            "text": row["question"],
                            "choices": choices,
                            "label": int(row["answer"]),
                            "namespace": "mmlu",
                            "meta": {"subject": subject},
                        },
                        max_chars=100_000,
                    )
                )
    return out


def load_gsm8k(root: Path, split: str = "test") -> list[Request]:
    path = root / "gsm8k" / f"{split}.jsonl"
    if not path.exists():
        raise RequestError("data_root", f"no GSM8K file at {path}")
    out = []
    with path.open() as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            answer = row["answer"].split("####")[-1].strip()
            out.append(
                make_request(
                    {
                        "id": f"gsm8k/{i}",
                        "text": row["question"],
                        "kind": "number",
                        "label": answer,
                        "namespace": "gsm8k",
                    },
                    max_chars=100_000,
                )
            )
    return out


def load_jsonl(path: Path, max_chars: int, namespace: str = "default") -> list[Request]:
    """A user's JSONL of requests, one object a line (see `make_request`).

    Raises:
        RequestError: naming the line and field of the first bad line; nothing is served.
    """
    if not path.exists():
        raise RequestError("input", f"file {path} does not exist")
    if not path.is_file():
        raise RequestError("input", f"{path} is not a file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise RequestError("input", f"file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise RequestError("input", f"file {path} cannot be read: {exc.strerror}") from None
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RequestError(f"line {lineno}", f"is not valid JSON: {exc.msg}") from None
        try:
            out.append(make_request(data, max_chars=max_chars, default_namespace=namespace))
        except RequestError as exc:
            raise RequestError(
                f"line {lineno}.{exc.field}", str(exc).split(": ", 1)[1]
            ) from None
    if not out:
        raise RequestError("input", f"file {path} holds no requests")
    return out


def sample(requests: list[Request], limit: int | None, seed: int) -> list[Request]:
    """A seeded shuffle of the stream, cut to `limit`; subjects are interleaved by the shuffle."""
    order = list(requests)
    random.Random(seed).shuffle(order)
    return order[:limit] if limit else order


def iter_batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
