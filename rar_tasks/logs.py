"""Logging: one event a line, `key=value` fields, no prompt text at INFO."""

from __future__ import annotations

import logging
import sys

NOISY = ("LiteLLM", "litellm", "httpx", "sentence_transformers", "prefect", "alembic")


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the event (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(level: str = "WARNING", stream=None) -> None:
    """Route our loggers to `stream` (default: the current stderr) as `key=value` lines, one
    event a line; quiet the noisy libraries."""
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.setFormatter(
        logging.Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger("rar")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
