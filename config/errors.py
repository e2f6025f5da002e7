"""Errors raised while reading configuration.

    ConfigError                 any configuration problem; the message says which key and why
    ├── SettingsError           an environment variable is unknown, missing or malformed
    └── ConfigFileError         a taxonomy / routing / teams YAML file is unreadable or invalid
"""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; the process should stop and say why."""


class SettingsError(ConfigError):
    """An environment setting is unknown, missing or malformed."""


class ConfigFileError(ConfigError):
    """A YAML configuration file is unreadable or does not validate."""
