"""Exceptions of prefect-rar. Each message names the offending field or value and what to do."""

from __future__ import annotations


class RARError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(RARError):
    """The configuration (file, environment or arguments) is invalid."""


class RequestError(RARError, ValueError):
    """A request is malformed; `field` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class ModelError(RARError):
    """A model call failed (unknown model, provider error, missing local model)."""


class ModelInstallError(ModelError):
    """A local model could not be installed or found."""


class MemoryStoreError(RARError):
    """The memory store could not be read or written."""
