"""Train / development / test splits of a replay dataset, by question or by held-out group.

Identical question texts always land on the same side (MMLU repeats about a hundred), so no
test question is ever seen in training. Test indices come in a seeded random order: the
order in which the stream reaches the routers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rar_tasks.errors import RequestError


@dataclass
class Split:
    """Index arrays into a dataset; `held_out` names the groups kept out of train and dev."""

    kind: str
    seed: int
    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    held_out: list[str] = field(default_factory=list)


def _text_groups(texts: list[str]) -> np.ndarray:
    """One integer per row; rows with the same text share it."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(t, len(ids)) for t in texts])


def _check_shares(dev: float, test: float) -> None:
    if not (0 < test < 1 and 0 <= dev < 1 and dev + test < 1):
        raise RequestError("split", f"dev={dev} and test={test} must be shares summing below 1")


def split_by_question(texts: list[str], seed: int, dev: float = 0.2, test: float = 0.4) -> Split:
    """Random split of distinct questions into train / dev / test shares.

    Raises:
        RequestError: field `split` for shares outside (0, 1) or summing to 1 or more.
    """
    _check_shares(dev, test)
    groups = _text_groups(texts)
    rng = np.random.default_rng(seed)
    distinct = rng.permutation(groups.max() + 1)
    n_test, n_dev = round(len(distinct) * test), round(len(distinct) * dev)
    side = np.empty(len(distinct), dtype=int)
    side[distinct[:n_test]] = 2
    side[distinct[n_test : n_test + n_dev]] = 1
    side[distinct[n_test + n_dev :]] = 0
    row_side = side[groups]
    return Split(
        "question", seed, *(_shuffled(np.flatnonzero(row_side == s), rng) for s in (0, 1, 2))
    )


def split_by_group(
    texts: list[str], groups: np.ndarray, seed: int, test: float = 0.25, dev: float = 0.2
) -> Split:
    """Hold out a random `test` share of the groups (subjects, categories) for testing; the
    other groups' questions are split into train and dev, with texts shared with the test
    side dropped so no question crosses over.

    Raises:
        RequestError: field `split` when fewer than two groups exist.
    """
    names = sorted(set(groups.tolist()))
    if len(names) < 2:
        raise RequestError("split", f"held-out groups need at least two groups, got {names}")
    rng = np.random.default_rng(seed)
    held = sorted(rng.permutation(names)[: max(1, round(len(names) * test))].tolist())
    is_test = np.isin(groups, held)
    text_ids = _text_groups(texts)
    test_texts = set(text_ids[is_test].tolist())
    rest = np.flatnonzero(~is_test & ~np.isin(text_ids, list(test_texts)))
    rest_groups = np.unique(text_ids[rest])
    dev_texts = set(rng.permutation(rest_groups)[: round(len(rest_groups) * dev)].tolist())
    on_dev = np.isin(text_ids[rest], list(dev_texts))
    return Split(
        "subject",
        seed,
        _shuffled(rest[~on_dev], rng),
        _shuffled(rest[on_dev], rng),
        _shuffled(np.flatnonzero(is_test), rng),
        held,
    )


def _shuffled(index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return index[rng.permutation(len(index))]
