"""Final-answer extraction: multiple-choice letter, number, or normalised text.

Used by the judges (agreement, ground truth) and by accuracy accounting. Extraction returns
None when no answer can be found, and a None answer never agrees with anything.
"""

from __future__ import annotations

import re
import string

LETTERS = "ABCDEFGHIJ"

# The letter must be upper case unless in parentheses: "the answer is a currency" names no
# choice, while "answer: (b)" does.
_ANSWER_IS = re.compile(
    r"(?i:answer|option|choice)\s*(?i:is|:)?\s*[:\-]?\s*(?:\(([A-Ja-j])\)|\**([A-J])\b)"
)
_LEADING = re.compile(r"^\s*\(?\**([A-J])\**\)?(?:[.):\s]|$)")
_PAREN = re.compile(r"\(([A-J])\)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def extract_choice(text: str | None, n_choices: int = 4) -> str | None:
    """The choice letter a response gives, or None.

    Looks for "answer is X" / "Answer: X" first (last occurrence wins, as reasoning may
    mention other letters first), then a leading letter ("B", "B.", "(B)"), then a lone "(X)".
    Letters beyond `n_choices` are ignored.
    """
    if not text:
        return None
    allowed = LETTERS[:n_choices]
    found = [(m.group(1) or m.group(2)).upper() for m in _ANSWER_IS.finditer(text)]
    found = [c for c in found if c in allowed]
    if found:
        return found[-1]
    lead = _LEADING.match(text)
    if lead and lead.group(1).upper() in allowed:
        return lead.group(1).upper()
    paren = [c.upper() for c in _PAREN.findall(text) if c.upper() in allowed]
    return paren[-1] if len(set(paren)) == 1 else None


def normalise_number(raw: str) -> str | None:
    cleaned = raw.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if value.is_integer():
        return str(int(value))
    return repr(round(value, 6))


def extract_number(text: str | None) -> str | None:
    """The final number of a response: after '####' (GSM8K style), 'answer is', else the last."""
    if not text:
        return None
    if "####" in text:
        tail = _NUMBER.findall(text.split("####")[-1])
        if tail:
            return normalise_number(tail[0])
    marker = re.split(r"answer is|answer:", text, flags=re.IGNORECASE)
    if len(marker) > 1:
        tail = _NUMBER.findall(marker[-1])
        if tail:
            return normalise_number(tail[0])
    numbers = _NUMBER.findall(text)
    return normalise_number(numbers[-1]) if numbers else None


def normalise_text(text: str | None) -> str | None:
    """Lower case, no punctuation or articles, single spaces; None when empty."""
    if not text:
        return None
    lowered = text.lower().translate(str.maketrans("", "", string.punctuation))
    words = [w for w in lowered.split() if w not in ("a", "an", "the")]
    return " ".join(words) or None


def extract_answer(text: str | None, kind: str, n_choices: int = 4) -> str | None:
    """Dispatch on the request kind: 'choice', 'number' or 'text'."""
    if kind == "choice":
        return extract_choice(text, n_choices)
    if kind == "number":
        return extract_number(text)
    return normalise_text(text)
