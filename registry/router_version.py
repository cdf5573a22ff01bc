"""A fitted router version: its files on disk and the `Router` that serves from them.

`registry.pyfunc_model` wraps the same files as an MLflow pyfunc model.

The files of a version are self-contained: the classifier, the guides it routes with (their
texts and embeddings, copied out of the memory snapshot) and a JSON configuration. Serving needs
neither the memory nor the training data to route as the version did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rar_tasks.memory import GUIDE_OK, Memory, MemoryRecord, Neighbour
from rar_tasks.requests import Request
from rar_tasks.routers import LEARN, WEAK, Route
from registry.classifier import WeakGoodClassifier
from registry.errors import ArtifactError

CLASSIFIER_FILE = "classifier.npz"
GUIDE_VECTORS_FILE = "guide_vectors.npy"
GUIDES_FILE = "guides.json"
CONFIG_FILE = "router_config.json"
FILES = (CLASSIFIER_FILE, GUIDE_VECTORS_FILE, GUIDES_FILE, CONFIG_FILE)


@dataclass
class VersionConfig:
    """What a router version needs besides its classifier, and what it was fitted with."""

    embedder: str
    dim: int
    target_strong_rate: float
    guide_min_similarity: float = 0.40
    low_route: str = LEARN
    weak_model: str = ""
    strong_model: str = ""
    judge: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GuideBank:
    """Guides that helped the weak model, with the embedding of the request each came from."""

    vectors: np.ndarray
    guide_ids: list[str]
    guides: list[str]
    namespaces: list[str]

    @classmethod
    def from_snapshot(cls, snapshot) -> GuideBank:
        """Take one row per guide id among entries whose verdict is `guide_ok`."""
        keep, seen = [], set()
        for i in range(len(snapshot)):
            gid = snapshot.guide_ids[i]
            if snapshot.verdicts[i] == GUIDE_OK and snapshot.guides[i] and gid not in seen:
                seen.add(gid)
                keep.append(i)
        dim = snapshot.vectors.shape[1] if snapshot.vectors.ndim == 2 else 0
        vectors = snapshot.vectors[keep] if keep else np.zeros((0, dim), dtype=np.float32)
        return cls(vectors, [snapshot.guide_ids[i] for i in keep],
                   [snapshot.guides[i] for i in keep], [snapshot.namespaces[i] for i in keep])

    def nearest(self, vector: np.ndarray, namespace: str, min_similarity: float
                ) -> Neighbour | None:
        if not self.guide_ids:
            return None
        sims = self.vectors @ np.asarray(vector, dtype=np.float32)
        sims = np.where(np.asarray(self.namespaces) == namespace, sims, -np.inf)
        best = int(np.argmax(sims))
        if not sims[best] >= min_similarity:
            return None
        return Neighbour("", float(sims[best]), GUIDE_OK, self.guides[best], self.guide_ids[best])


class FittedRouter:
    """A router version behind RAR's router interface.

    Routes `weak` when the classifier's score (P(weak good enough)) reaches the calibrated
    threshold, else `low_route` (`learn` by default, so memory keeps learning). The guide is
    that of the most similar guide-helped request in the version's guide bank.

    Args:
        classifier: a fitted and calibrated `WeakGoodClassifier`.
        guides: the version's guide bank.
        config: the version's configuration.
        version: a label for logs and route reasons (e.g. the registry version number).
        memory: where `learn` writes outcomes; None makes `learn` a no-op.
    """

    name = "router-version"

    def __init__(self, classifier: WeakGoodClassifier, guides: GuideBank, config: VersionConfig,
                 version: str = "", memory: Memory | None = None):
        self.classifier = classifier
        self.guides = guides
        self.config = config
        self.version = version
        self.memory = memory

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        return self.classifier.score(vectors)

    def route(self, request: Request, vector: np.ndarray) -> Route:
        score = float(self.classifier.score(np.asarray(vector)[None, :])[0])
        kind = WEAK if score >= self.classifier.threshold_ else self.config.low_route
        hit = self.guides.nearest(vector, request.namespace, self.config.guide_min_similarity)
        reason = f"router_version version={self.version} score={score:.3f}"
        if hit is None:
            return Route(kind, score, reason, vector=vector)
        return Route(kind, score, reason, hit.guide, hit.guide_id, [hit], vector)

    def learn(self, record: MemoryRecord) -> None:
        if self.memory is not None:
            self.memory.upsert([record])

    def save(self, folder: str | Path) -> Path:
        """Write the version's files into `folder` (created) and return it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.classifier.save(folder / CLASSIFIER_FILE)
        np.save(folder / GUIDE_VECTORS_FILE, self.guides.vectors.astype(np.float32))
        (folder / GUIDES_FILE).write_text(json.dumps({
            "guide_ids": self.guides.guide_ids, "guides": self.guides.guides,
            "namespaces": self.guides.namespaces}))
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, version: str = "",
             memory: Memory | None = None) -> FittedRouter:
        """Read the files written by `save`.

        Raises:
            ArtifactError: a file is missing, truncated or inconsistent with the others.
        """
        folder = Path(folder)
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise ArtifactError(
                f"router version {version or folder} lacks {', '.join(missing)} in {folder}; "
                "re-run retraining or pick another version"
            )
        classifier = WeakGoodClassifier.load(folder / CLASSIFIER_FILE)
        try:
            config = VersionConfig(**json.loads((folder / CONFIG_FILE).read_text()))
            meta = json.loads((folder / GUIDES_FILE).read_text())
            vectors = np.load(folder / GUIDE_VECTORS_FILE)
            guides = GuideBank(vectors, meta["guide_ids"], meta["guides"], meta["namespaces"])
        except (OSError, ValueError, TypeError, KeyError, EOFError) as exc:
            raise ArtifactError(f"router version {version or folder} has a corrupt file in "
                                f"{folder}: {exc}") from exc
        if classifier.coef_.shape != (config.dim,) or (
                len(guides.guide_ids) and vectors.shape[1] != config.dim):
            raise ArtifactError(
                f"router version {version or folder}: classifier has {classifier.coef_.shape} "
                f"weights and guides {vectors.shape}, config says dim={config.dim}"
            )
        return cls(classifier, guides, config, version, memory)
