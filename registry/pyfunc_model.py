"""MLflow pyfunc of a router version (logged as model code): request text in; route, score and
guide id out.

The embedder named in the version's configuration is loaded on the first `predict`, so loading
the model to read its router (`unwrap_python_model().router`) stays cheap.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from rar_tasks.requests import Request
from registry.errors import ArtifactError
from registry.router_version import FittedRouter


class RouterVersionModel(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with `text` (and optionally `namespace`). Output: `route`, `score`,
    `guide_id` per row."""

    def load_context(self, context) -> None:
        self.router = FittedRouter.load(Path(context.artifacts["router"]))
        self._embedder = None

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        from rar_tasks.config import EmbedderConfig
        from rar_tasks.embed import make_embedder

        if "text" not in model_input.columns:
            raise ArtifactError("model input needs a 'text' column of request texts")
        texts = [str(t) for t in model_input["text"].tolist()]
        namespaces = (
            [str(n) for n in model_input["namespace"].tolist()]
            if "namespace" in model_input.columns else ["default"] * len(texts)
        )
        if self._embedder is None and texts:
            self._embedder = make_embedder(EmbedderConfig(model=self.router.config.embedder))
        vectors = self._embedder.embed(texts) if texts else np.zeros((0, self.router.config.dim))
        rows = []
        for text, namespace, vector in zip(texts, namespaces, vectors, strict=True):
            route = self.router.route(Request("", text, namespace), vector)
            rows.append({"route": route.kind, "score": route.score, "guide_id": route.guide_id})
        return pd.DataFrame(rows, columns=["route", "score", "guide_id"])


mlflow.models.set_model(RouterVersionModel())
