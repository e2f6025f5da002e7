"""Structured logging (structlog): console lines for people, JSON lines in production.

``configure_logging`` configures structlog at once when something has imported it already, and otherwise the moment
it is first imported: importing structlog costs a command 0.03 s (its console renderer brings rich's tracebacks,
pygments and attrs), and a short command that logs nothing (`helpdesk tickets`) need not pay it. Loggers are
made and used only after ``import structlog``, so none runs unconfigured.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec

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
    numeric = getattr(logging, level)
    _when_structlog_is_imported(lambda: _configure_structlog(fmt, numeric, secrets or []))
    # dramatiq and other libraries log through the standard library: keep their warnings and errors.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def _configure_structlog(fmt: str, numeric: int, secrets: list[str]) -> None:
    import structlog  # noqa: PLC0415 - imported by now (see the module's docstring)

    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _Redact(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=True,
    )


# -- configuring structlog when it is first imported --------------------------------------------------------
_pending: Callable[[], None] | None = None  # the newest configuration, while structlog is not imported
_pending_lock = threading.Lock()


def _when_structlog_is_imported(configure: Callable[[], None]) -> None:
    """Run ``configure`` now if structlog is imported, else right after its import (a later call replaces it)."""
    global _pending  # noqa: PLW0603 - one configuration per process
    with _pending_lock:
        if "structlog" not in sys.modules:
            if _pending is None:
                sys.meta_path.insert(0, _StructlogImport())
            _pending = configure
            return
        _pending = None  # structlog is imported (or being imported, by another thread): this one is the newest
    configure()


def _run_pending() -> None:
    global _pending  # noqa: PLW0603
    with _pending_lock:
        configure, _pending = _pending, None
    if configure is not None:
        configure()


class _StructlogImport:  # an importlib.abc.MetaPathFinder (importing that module costs more than this one)
    """Finds ``structlog`` as the other finders do, with a loader that — once the package has been executed — leaves
    ``sys.meta_path`` and runs the pending configuration. Every other name it leaves to the other finders."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> "ModuleSpec | None":
        if fullname != "structlog":
            return None
        for finder in sys.meta_path:  # the others, in order, as the import system asks them
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _ConfiguringLoader(spec.loader, self)
        return spec


class _ConfiguringLoader:  # an importlib.abc.Loader
    def __init__(self, loader: "Loader", finder: _StructlogImport) -> None:
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: "ModuleSpec") -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The package's own loader again, for whatever reads it later (resources, reloading).
        module.__loader__ = module.__spec__.loader = self.loader  # type: ignore[union-attr]
        self.loader.exec_module(module)
        with contextlib.suppress(ValueError):  # not there: a configuration given meanwhile found structlog imported
            sys.meta_path.remove(self.finder)
        _run_pending()


def command_settings(**overrides: Any) -> "Settings":
    """A command's settings (environment plus ``overrides``), with logging configured by them."""
    from config.settings import load_settings  # noqa: PLC0415

    from config.secrets import secret_values  # noqa: PLC0415

    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level, secret_values(settings))
    return settings
