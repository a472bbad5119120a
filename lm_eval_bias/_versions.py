"""The installed version of a distribution: one lookup for the scorers, the quantizers and the
submission record."""

from __future__ import annotations

import importlib.metadata


def package_version(dist: str) -> str | None:
    """Installed version of distribution `dist`, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
