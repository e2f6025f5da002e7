"""``helpdesk worker --processes N``: N worker processes under one parent, as dramatiq's own command runs them.

The GIL lets one process use one core; a desk scales out with processes, each
running ``--threads`` worker threads. The parent waits for Redis and the
database (and migrates) once, so the children never race to migrate; it keeps
the embedded Redis, when there is one, up while children come and go. It
imports the worker's code and loads what is read-only (``workers.ops.preload``)
once, then forks the children — as gunicorn's ``--preload`` does — so that a
child starts without paying the imports again and shares those pages with its
siblings. Each child builds its own broker, engine and services and runs the
worker. The parent watches them:

- SIGTERM or Ctrl-C: every child is asked to stop (SIGTERM; each finishes the
  messages in hand), and killed if it has not within ``STOP_GRACE_SECONDS``;
- a child that ends on its own while the pool runs is started again, after a
  pause that doubles while children keep failing (one second up to a minute);
- with ``--until-idle`` each child ends when the queues are drained; the pool
  ends when they all have, with the worst exit status among them.

Every message is handled by one child at a time (Redis hands it to one
consumer) and every effect is idempotent by key, so N processes store what one
would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

STOP_GRACE_SECONDS = 60.0
POLL_SECONDS = 0.2
RESTART_PAUSE_SECONDS = (1.0, 60.0)
log = structlog.get_logger("helpdesk.worker")


class Forked:
    """A child made with ``os.fork``: the part of ``subprocess.Popen`` the pool uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)  # killed by a signal: its negative, as Popen's
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker process {self.pid}", timeout or 0.0)
            time.sleep(0.02)
        return status


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def forking(run: Callable[[int, threading.Event], int]) -> Callable[[int], Forked]:
    """Start a child by forking this process: the child runs ``run(index, stop)`` and ends with its status, never
    returning. ``stop`` is set when the child is asked to stop (SIGTERM, SIGINT) — from its first instant: the
    signals are held back across the fork until the child's own handlers are in place, so a stop sent the moment
    it started is not taken by the parent's handler (whose event the child would never look at).

    The parent must hold no thread but its own and no open connection when it forks (``workers.ops.preload``).
    """

    def start(index: int) -> Forked:
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            return Forked(pid)
        status = 1
        try:
            stop = threading.Event()
            for signum in STOP_SIGNALS:
                signal.signal(signum, lambda _signum, _frame: stop.set())
            signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a stop sent meanwhile arrives now, at the child's handler
            status = run(index, stop)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - whatever ends a child is logged; the parent starts another
            log.exception("worker process failed", process=index)
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)  # not the parent's exit handlers: they shut down what the parent still uses

    return start


@dataclass
class Child:
    index: int
    process: Forked
    started: float = field(default_factory=time.monotonic)


class WorkerPool:
    def __init__(self, processes: int, start: Callable[[int], Forked], *, until_idle: bool, stop: threading.Event) -> None:
        if processes < 1:
            raise ValueError("a pool has at least one process")
        self.processes = processes
        self.start = start
        self.until_idle = until_idle
        self.stop = stop
        self.children: dict[int, Child] = {}
        self.statuses: list[int] = []
        self._pause = RESTART_PAUSE_SECONDS[0]

    def run(self) -> int:
        """Start the children, watch them until stopped (or, with ``until_idle``, until all are done); the exit status."""
        try:
            for index in range(self.processes):
                self._start(index)
            while self.children and not self.stop.wait(POLL_SECONDS):
                self._reap()
        finally:
            self._stop_all()
        return max(self.statuses, default=0) if self.until_idle else 0

    def _start(self, index: int) -> None:
        process = self.start(index)
        self.children[index] = Child(index, process)
        log.info("worker process started", process=index, pid=process.pid, of=self.processes)

    def _reap(self) -> None:
        for index, child in list(self.children.items()):
            status = child.process.poll()
            if status is None:
                continue
            del self.children[index]
            if self.until_idle:
                self.statuses.append(status)
                log.info("worker process done", process=index, pid=child.process.pid, status=status)
                continue
            ran = time.monotonic() - child.started
            self._pause = RESTART_PAUSE_SECONDS[0] if ran > RESTART_PAUSE_SECONDS[1] else min(self._pause * 2, RESTART_PAUSE_SECONDS[1])
            log.warning("worker process ended; starting it again", process=index, pid=child.process.pid, status=status,
                        ran_seconds=round(ran, 1), restart_in=self._pause)
            if self.stop.wait(self._pause):
                return
            self._start(index)

    def _stop_all(self) -> None:
        for child in self.children.values():
            _signal(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children.values():
            try:
                status = child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process did not stop; killed", process=child.index, pid=child.process.pid)
                _signal(child.process, signal.SIGKILL)
                status = child.process.wait()
            self.statuses.append(status if status >= 0 else 128 - status)
        self.children.clear()


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        pass
