"""Errors of the router registry; each message says what went wrong and what to do instead."""

from __future__ import annotations

from rar_tasks.errors import RARError


class RegistryError(RARError):
    """Base of every error the router registry raises on purpose."""


class RegistryUnavailableError(RegistryError):
    """The MLflow tracking or registry store cannot be reached or opened."""


class UnknownVersionError(RegistryError, LookupError):
    """No router version or alias of that name exists in the registry."""


class ArtifactError(RegistryError):
    """A router version's files are missing or unreadable."""


class NotEnoughDataError(RegistryError):
    """Memory holds too few usable entries to fit or evaluate a router version."""
