"""Logging: one event a line, `key=value` fields, no prompt text at INFO."""

from __future__ import annotations

import logging
import sys

NOISY = ("LiteLLM", "litellm", "httpx", "sentence_transformers", "prefect", "alembic")


def setup_logging(level: str = "WARNING", stream=sys.stderr) -> None:
    """Route our loggers to `stream` as `time level logger message` lines; quiet the noisy ones."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger("rar")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
