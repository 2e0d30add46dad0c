"""API keys come from environment variables named in the settings, never from a config file."""

from __future__ import annotations

import os

from protector_models.errors import ConfigError


def api_key_from_env(name: str, *, what: str = "api_key_env") -> str:
    """The key in environment variable ``name``; a ConfigError when it is unset or blank, so nothing runs without
    the key it was told to use."""
    key = os.environ.get(name, "").strip()
    if not key:
        raise ConfigError(f"{what} names the environment variable {name}, which is unset or empty: set it to the key")
    return key
