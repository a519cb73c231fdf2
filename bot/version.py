"""The release this code is: `version` in pyproject.toml, as installed."""

from __future__ import annotations

from importlib import metadata


def release() -> str:
    try:
        return metadata.version("escalation-bot")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"
