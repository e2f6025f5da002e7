"""Structured logging (structlog): console lines for people, JSON lines in production."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import Settings


class _StderrLogger:
    """Writes each line to the *current* ``sys.stderr`` (a process, a test runner or a daemon may replace it)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _Redact:
    """Takes every configured secret out of a log event's text (values and rendered tracebacks alike)."""

    def __init__(self, secrets: list[str]) -> None:
        from config.secrets import redact  # noqa: PLC0415 - once per configuration, not per event

        self.secrets = secrets
        self.redact = redact

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if not self.secrets:
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.redact(value, self.secrets)
            elif isinstance(value, BaseException):
                event[key] = self.redact(f"{type(value).__name__}: {value}", self.secrets)
        return event


def configure_logging(fmt: str = "console", level: str = "INFO", secrets: list[str] | None = None) -> None:
    import structlog  # noqa: PLC0415 - a command that logs pays for it; `helpdesk --help` does not

    numeric = getattr(logging, level)
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _Redact(secrets or []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=True,
    )
    # dramatiq and other libraries log through the standard library: keep their warnings and errors.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def command_settings(**overrides: Any) -> "Settings":
    """A command's settings (environment plus ``overrides``), with logging configured by them."""
    from config.settings import load_settings  # noqa: PLC0415

    from config.secrets import secret_values  # noqa: PLC0415

    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level, secret_values(settings))
    return settings
