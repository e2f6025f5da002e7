"""Errors raised while reading configuration or reaching the services it names.

    ConfigError                 any configuration problem; the message says which key and why
    ├── SettingsError           an environment variable is unknown, missing or malformed
    └── ConfigFileError         a taxonomy / routing / teams YAML file is unreadable or invalid
    ServiceUnavailable          Redis or the database cannot be reached (transient: wait and retry)
"""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration cannot be used; the process should stop and say why."""


class SettingsError(ConfigError):
    """An environment setting is unknown, missing or malformed."""


class ConfigFileError(ConfigError):
    """A YAML configuration file is unreadable or does not validate."""


class ServiceUnavailable(Exception):
    """A service a message needs (``redis``, ``database``) cannot be reached: back-pressure, not bad input."""

    def __init__(self, component: str, detail: str) -> None:
        super().__init__(f"{component} unreachable: {detail}")
        self.component = component
        self.detail = detail
