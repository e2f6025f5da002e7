"""How the command line's processes take SIGTERM."""

from __future__ import annotations


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM ends the process as Ctrl-C does — unwinding, closing, running atexit — so that an
    embedded Redis it started is shut down with it (the default action would kill it on the spot).
    Long-running commands replace this with their own stop handler while they run."""
    import signal  # noqa: PLC0415

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
