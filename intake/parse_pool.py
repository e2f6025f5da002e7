"""Parsing raw e-mail with a hard bound on time and memory: helper processes that may die instead of the adapter.

``prescan`` rejects the hostile mail we know of; this module contains what
we do not know of yet — a parser bug that loops, recurses or allocates
without end. Each helper caps its own address space (``RLIMIT_AS``) and then
parses one item at a time; per item the adapter waits at most ``timeout_seconds``.
Nothing of the adapter is inherited but the socket a helper talks over: on
Linux the helpers are forked by a *zygote*, one fresh interpreter (``python -c``)
that imports the parser once and parses nothing but a canary mail, so that a
helper is ready in milliseconds instead of ≈ 0.3 s of CPU to import the parser
(at the start, and on every recycling); the zygote hands the adapter a pidfd of
each helper (to signal exactly it) and reports how each one ended. Elsewhere
(no pidfds) each helper is such a fresh interpreter itself.

What a poisoned item becomes (``RejectedInput``, so the item is quarantined):

    parse_timeout   no answer in time: the helper is killed
    parse_memory    MemoryError under the cap: the helper reports it and exits
    parse_crashed   the helper died (a signal, the OOM killer, a crash in C)
    parse_error     any other exception, RecursionError included ("ExcType: msg" and a short traceback)

A dead or stopped helper is replaced on the next item; a healthy one is
recycled after ``max_tasks_per_helper`` items (bounding slow leaks). A zygote
found gone is replaced once (the helpers it forked parse on: only how they end
is then unknown, ``parse_crashed``). A helper
found dead *before* it received an item (killed from outside while idle) is
replaced and the item sent again: only the item that was being parsed is
ever blamed. When no helper can be started at all the pool raises
``SinkError``: that is not the item's fault, and the source must retry.

``parse_many`` parses a batch (one IMAP fetch): one lane per helper, each
handing its helper a small window of items at once and reading the answers in
order, so that helpers parse back to back instead of waiting for a round trip
per item. The isolation is the same: each item is timed from when its answer is
awaited, and the items a failed helper had not answered go to another helper.

Results come back as the InboundMessage's JSON (the parent validates the
contract and never unpickles anything a helper produced) followed by one raw
frame per attachment blob, without copies through pickle.

``InProcessParser`` is the in-memory twin with the same interface and the same
translation of exceptions, for unit tests and the demo; it bounds nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from intake.archive import sha256_hex
from intake.errors import RejectedInput, SinkError
from intake.message import InboundMessage
from intake.mime import Limits, ParsedEmail, parse_email
from intake.quoting import ReplySplitter

if TYPE_CHECKING:
    from config.settings import Settings

ParseFunction = Callable[..., ParsedEmail]  # parse_email's signature
EXIT_MEMORY = 86  # a helper's exit status after a MemoryError it could not even report
EXIT_NOT_READY = 87  # … when it could not parse the canary mail under its cap
_CANARY = b"From: canary@helpdesk.invalid\r\nSubject: canary\r\nContent-Type: text/html\r\n\r\n<p>Is the parser alive?</p>\r\n"
_TRACEBACK_CHARS = 1500
_CONFIG_BYTES = 1 << 20  # the largest configuration a zygote reads (one message of its control socket)
_ZYGOTE_GRACE = 5.0  # seconds a closing zygote waits for its helpers before it kills them
EXIT_LOST = -1000  # a forked helper's exit status when its zygote died before it could tell


@dataclass(frozen=True)
class PoolOptions:
    """How many helpers, and the bounds of each. ``workers=0`` parses in-process (no isolation)."""

    workers: int = 2
    timeout_seconds: float = 30.0
    memory_mb: int = 1024  # address-space cap of each helper (0: none); includes the interpreter's own ~100 MB
    max_tasks_per_helper: int = 1000
    start_timeout_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> "PoolOptions":
        return cls(workers=settings.parse_workers, timeout_seconds=float(settings.parse_timeout_seconds),
                   memory_mb=settings.parse_memory_mb)


@dataclass(frozen=True)
class ParseRequest:
    """One item of ``EmailParser.parse_many``: ``parse``'s arguments."""

    raw: bytes
    received_at: datetime
    source: str
    raw_ref: str | None


class EmailParser(ABC):
    """Raw bytes → ParsedEmail. ``parse`` raises RejectedInput for anything the item itself caused, never another
    exception for it; it raises SinkError only when the parser itself is unavailable (retry later)."""

    @abstractmethod
    def parse(self, raw: bytes, *, received_at: datetime, source: str, raw_ref: str | None) -> ParsedEmail: ...

    def parse_many(self, requests: Sequence[ParseRequest]) -> list[ParsedEmail | RejectedInput]:
        """Every request's ParsedEmail, or the RejectedInput that quarantines it, in order; one item's failure
        never touches another's. Raises SinkError only when the parser itself is unavailable."""
        return [self.parse_one(request) for request in requests]

    def parse_one(self, request: ParseRequest) -> ParsedEmail | RejectedInput:
        """``parse``, with whatever the item caused returned as a RejectedInput (an unexpected exception: parse_error)."""
        try:
            return self.parse(request.raw, received_at=request.received_at, source=request.source, raw_ref=request.raw_ref)
        except RejectedInput as exc:
            return exc
        except SinkError:
            raise
        except Exception as exc:  # noqa: BLE001 - one item's failure must never stop the others
            return RejectedInput("parse_error", describe(exc))

    def prestart(self) -> None:
        """Get ready in the background (start helpers, if any), so that the first parse need not wait; never raises."""

    def close(self) -> None:
        """Release helpers, if any."""

    def __enter__(self) -> "EmailParser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_parser(limits: Limits, splitter: ReplySplitter | None, options: PoolOptions) -> EmailParser:
    """The isolated pool, or the in-process parser when ``options.workers`` is 0."""
    if options.workers <= 0:
        return InProcessParser(limits, splitter)
    return ParsePool(limits, splitter, options)


class InProcessParser(EmailParser):
    """Parses in the calling thread: no bound on time or memory, same exception translation as the pool."""

    def __init__(self, limits: Limits = Limits(), splitter: ReplySplitter | None = None, parse: ParseFunction = parse_email) -> None:
        self.limits, self.splitter, self._parse = limits, splitter, parse

    def parse(self, raw: bytes, *, received_at: datetime, source: str, raw_ref: str | None) -> ParsedEmail:
        try:
            return self._parse(raw, received_at=received_at, source=source, raw_ref=raw_ref, limits=self.limits, splitter=self.splitter)
        except RejectedInput:
            raise
        except MemoryError as exc:
            raise RejectedInput("parse_memory", describe(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - every parser failure is the item's, and quarantines it
            raise RejectedInput("parse_error", describe(exc)) from exc


def describe(exc: BaseException) -> str:
    """``ExcType: message`` and the innermost frames of the traceback, short enough for a quarantine record."""
    head = f"{type(exc).__name__}: {str(exc)[:300]}"
    frames = traceback.format_tb(exc.__traceback__)[-4:]
    return (head + "\n" + "".join(frames)[-_TRACEBACK_CHARS:]).strip() if frames else head


def _readable(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` is readable within ``timeout`` seconds (None: wait as long as it takes); for a pidfd: the process ended."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def _forking_works() -> bool:
    """Whether helpers can be forked from a zygote here: Linux's pidfds and passing descriptors over a socket."""
    if not (hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal") and hasattr(socket, "send_fds")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel older than 5.3, or a sandbox that refuses it
        return False
    return True


class _Zygote:
    """The adapter's end of a zygote (``zygote_main``): asks it to fork helpers and hears how each one ended.

    Thread-safe: one request at a time, and its control socket read by whichever thread holds the lock (records
    of helpers' exits arrive between answers and are kept until asked for)."""

    def __init__(self, config: bytes, env: dict[str, str], timeout: float) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", f"from intake.parse_pool import zygote_main; zygote_main({child.fileno()})"],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
            )
        except OSError as exc:
            parent.close()
            raise SinkError(f"cannot start the parse zygote: {exc}") from exc
        finally:
            child.close()
        self.control, self.lock, self.exits = parent, threading.Lock(), {}
        self.gone = False
        try:
            self.control.send(config)
            if _readable(self.control.fileno(), timeout) and self.control.recv(64) == b"ready":
                return
        except OSError:
            pass
        self.close()
        raise SinkError(f"the parse zygote did not start (exit status {self.process.poll()}); see its stderr")

    def fork(self, conn: socket.socket, timeout: float) -> "_Forked":
        """A new helper serving ``conn``'s other end; raises OSError when the zygote cannot make one (``gone``
        when it has ended, or did not answer in time and was killed: its helpers live on)."""
        with self.lock:
            try:
                socket.send_fds(self.control, [b"fork"], [conn.fileno()])
            except OSError:
                self.gone = True
                raise
            deadline = time.monotonic() + timeout
            while True:
                try:
                    record, fds = self._read(deadline)
                except OSError:
                    self.gone = True
                    self.process.kill()
                    raise
                if record.startswith(b"forked") and fds:
                    return _Forked(self, int.from_bytes(record[6:10], "big"), fds[0])
                for fd in fds:
                    os.close(fd)
                if not record.startswith(b"exit"):  # an exit is some other helper's, kept for it
                    raise OSError(f"the parse zygote could not fork a helper ({record[:20]!r})")

    def exit_status(self, pid: int, timeout: float) -> int:
        """How helper ``pid`` (already ended) exited, as ``Popen.returncode`` has it; ``EXIT_LOST`` if the zygote cannot tell."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while pid not in self.exits:
                try:
                    record, fds = self._read(deadline)
                except OSError:
                    return EXIT_LOST
                for fd in fds:
                    os.close(fd)
            return self.exits.pop(pid)

    def _read(self, deadline: float) -> tuple[bytes, list[int]]:
        """The next record, under the lock (an exit's is also kept in ``self.exits``); OSError if none comes in time."""
        if self.gone or not _readable(self.control.fileno(), deadline - time.monotonic()):
            raise OSError("the parse zygote did not answer")
        record, fds, _, _ = socket.recv_fds(self.control, 64, 1)
        if not record:
            self.gone = True
            raise OSError("the parse zygote is gone")
        if record.startswith(b"exit"):
            self.exits[int.from_bytes(record[4:8], "big")] = int.from_bytes(record[8:12], "big", signed=True)
        return record, fds

    def close(self) -> None:
        """Let the zygote go (it ends after its helpers); kill it if it outstays the grace."""
        self.gone = True
        self.control.close()
        try:
            self.process.wait(_ZYGOTE_GRACE + 2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Forked:
    """A helper forked by the zygote, with what the pool uses of ``subprocess.Popen``: ``pid``, ``poll``, ``wait``,
    ``kill``. Its pidfd tells when it ended and signals exactly it (never a later process given the same pid);
    the zygote, its parent, says how it ended."""

    def __init__(self, zygote: _Zygote, pid: int, pidfd: int) -> None:
        self.zygote, self.pid, self.pidfd = zygote, pid, pidfd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and _readable(self.pidfd, 0):
            self._ended()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not _readable(self.pidfd, timeout):
                raise subprocess.TimeoutExpired("parse helper", timeout or 0)
            self._ended()
        return self.returncode  # type: ignore[return-value] - set by _ended

    def kill(self) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it had ended already

    def _ended(self) -> None:
        self.returncode = self.zygote.exit_status(self.pid, timeout=5.0)
        os.close(self.pidfd)


class _Helper:
    """One helper process and the parent's end of its socket."""

    def __init__(self, process: "subprocess.Popen | _Forked", conn: Connection) -> None:
        self.process, self.conn, self.tasks = process, conn, 0
        self.retired_at = 0.0

    def stop(self, grace: float = 2.0) -> None:
        """Close the socket (an idle helper exits on EOF); kill it if it does not go."""
        self.conn.close()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def gone(self, grace: float) -> bool:
        """Whether a retired helper has exited (and is reaped); one that outstays ``grace`` is killed."""
        if self.process.poll() is not None:
            return True
        if time.monotonic() - self.retired_at > grace:
            self.kill()
            return True
        return False

    def kill(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        self.conn.close()
        return self.process.wait()

    def exit_status(self) -> int | None:
        try:
            return self.process.wait(5)
        except subprocess.TimeoutExpired:
            return None


class _Helpers:
    """The pool's helpers, shared with its finalizer (which must not hold the pool itself)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.idle: list[_Helper] = []
        self.live: set[_Helper] = set()
        self.retired: list[_Helper] = []  # told to go (socket closed), not yet reaped
        self.starting = 0
        self.closed = False
        self.zygote: _Zygote | None = None  # forks the helpers, where that works (else each is a fresh interpreter)
        self.zygote_lock = threading.Lock()

    def retire(self, helper: _Helper) -> None:
        """Let a helper go without waiting for it: it exits on EOF; ``reap`` collects it later."""
        helper.conn.close()
        helper.retired_at = time.monotonic()
        with self.changed:
            self.retired.append(helper)

    def reap(self, grace: float = 5.0) -> None:
        with self.changed:
            retired, self.retired = self.retired, []
        waiting = [helper for helper in retired if not helper.gone(grace)]
        with self.changed:
            self.retired.extend(waiting)

    def shutdown(self) -> None:
        with self.changed:
            self.closed = True
            helpers, self.idle, self.live = list(self.live), [], set()
            self.changed.notify_all()
        for helper in helpers:
            helper.stop(grace=0.5)
        self.reap(grace=0.0)
        with self.zygote_lock:
            zygote, self.zygote = self.zygote, None
        if zygote is not None:
            zygote.close()


class _Timeout(Exception):
    pass


class ParsePool(EmailParser):
    """A small pool of helper processes, started on demand; thread-safe (IMAP folders parse concurrently)."""

    WINDOW_ITEMS = 16  # parse_many: items handed to one helper at once
    WINDOW_BYTES = 64 * 1024  # … and their bytes, well inside a socket's buffer: sending never waits for the helper

    def __init__(
        self,
        limits: Limits = Limits(),
        splitter: ReplySplitter | None = None,
        options: PoolOptions = PoolOptions(),
        parse: ParseFunction = parse_email,
    ) -> None:
        if options.workers < 1:
            raise ValueError("a ParsePool needs at least one worker; use InProcessParser for none")
        self.limits, self.options = limits, options
        self._target = f"{parse.__module__}:{parse.__qualname__}"
        if "<" in self._target:
            raise ValueError(f"the parse function must be importable by name, not {self._target}")
        self._config = pickle.dumps({
            "sys_path": list(sys.path), "parse": self._target, "limits": limits, "splitter": splitter,
            "memory_bytes": options.memory_mb * 1024 * 1024, "cpu_seconds": options.timeout_seconds,
        })
        self._max_frame = max(limits.max_raw_bytes, limits.max_attachment_bytes) + 16 * 1024 * 1024
        self._helpers = _Helpers()
        self._finalizer = weakref.finalize(self, self._helpers.shutdown)

    def close(self) -> None:
        self._finalizer()

    def prestart(self) -> None:
        """Start every helper now, each on a thread of its own (the first one starts the zygote, ≈ 0.3 s; the others are forked from it)."""

        def start() -> None:
            try:
                helper = self._acquire()
            except SinkError as exc:  # the first parse raises it again, to the source, which retries
                import structlog  # noqa: PLC0415 - not in the helpers, which import this module too

                structlog.get_logger("helpdesk.parse_pool").warning("a parse helper did not start", error=str(exc))
                return
            self._release(helper, True)

        for _ in range(self.options.workers):
            threading.Thread(target=start, name="parse-prestart", daemon=True).start()

    @property
    def helper_pids(self) -> list[int]:
        """Process ids of the live helpers (for operators and tests)."""
        with self._helpers.changed:
            return sorted(h.process.pid for h in self._helpers.live)

    def parse(self, raw: bytes, *, received_at: datetime, source: str, raw_ref: str | None) -> ParsedEmail:
        meta = pickle.dumps((received_at, source, raw_ref))
        header = len(meta).to_bytes(4, "big") + meta
        tries = self.options.workers + 1  # every idle helper may have been killed: the last try is on a new one
        for attempt in range(1, tries + 1):
            helper = self._acquire()
            healthy = False
            try:
                try:
                    helper.conn.send_bytes(header + raw)
                except OSError:
                    if attempt == tries:
                        raise RejectedInput(*self._death(helper)) from None
                    continue  # it died while idle: not this item's fault, try another helper
                outcome, healthy = self._answer(helper)
                helper.tasks += 1
            finally:
                self._release(helper, healthy)
            if isinstance(outcome, RejectedInput):
                raise outcome
            return outcome
        raise AssertionError("unreachable")

    def parse_many(self, requests: Sequence[ParseRequest]) -> list[ParsedEmail | RejectedInput]:
        """The requests parsed in parallel, one lane per helper; each lane hands its helper a window of items at
        once (``WINDOW_ITEMS``, ``WINDOW_BYTES``) and reads the answers in order, so that a helper parses them back
        to back instead of waiting for a round trip (and a scheduler wake-up) per item.

        Isolation is ``parse``'s: an item gets its own deadline from the moment its answer is awaited; a helper
        that times out, runs out of memory or fails is replaced and the items it had not answered yet go to
        another one, unblamed. A helper found dead behind an earlier item of its window (it may have been killed
        between two items) is not taken as the item's fault until the item crashes one alone, as ``parse`` does.
        """
        results: list[ParsedEmail | RejectedInput | None] = [None] * len(requests)
        frames = [self._frame(request) for request in requests]
        order = iter(range(len(requests)))
        taking = threading.Lock()
        failures: list[BaseException] = []
        resent: dict[int, int] = {}  # item → how many helpers were found dead before they could read it

        def lane() -> None:
            again: list[int] = []  # items to send once more (their helper went away), ahead of new ones
            try:
                while True:
                    with taking:
                        window = self._window(again, order, frames)
                    if not window:
                        return
                    again = self._exchange(window, frames, results, resent) + again
            except BaseException as exc:  # noqa: BLE001 - SinkError (no helper can start): raised below, in the caller
                failures.append(exc)

        others = [threading.Thread(target=lane, name="parse-lane", daemon=True) for _ in range(min(self.options.workers, len(requests)) - 1)]
        for thread in others:
            thread.start()
        lane()
        for thread in others:
            thread.join()
        if failures:
            raise failures[0]
        return results  # type: ignore[return-value] - every item was answered by a lane that returned normally

    def _window(self, again: list[int], order: Iterator[int], frames: list[bytes]) -> list[int]:
        """The next items for one helper: those to send again first, then new ones; a large item goes alone."""
        window: list[int] = []
        size = 0
        while len(window) < self.WINDOW_ITEMS:
            if again:
                index = again[0]
            else:
                index = next(order, None)
                if index is None:
                    break
                again.insert(0, index)
            if window and size + len(frames[index]) > self.WINDOW_BYTES:
                break
            window.append(again.pop(0))
            size += len(frames[index])
        return window

    def _exchange(self, window: list[int], frames: list[bytes], results: list, resent: dict[int, int]) -> list[int]:
        """Send ``window`` to one helper and record its answers; returns the items to send again elsewhere."""
        helper = self._acquire()
        healthy, sent = False, 0
        try:
            for index in window:
                try:
                    helper.conn.send_bytes(frames[index])
                except OSError:
                    if sent == 0:  # every idle helper may have been killed: only after more tries than helpers
                        resent[index] = resent.get(index, 0) + 1  # … is a helper dead on arrival the item's doing
                        if resent[index] > self.options.workers:
                            results[index] = RejectedInput(*self._death(helper))
                            return window[1:]
                    break  # it died: what was sent is answered below (or blamed on the item it died on)
                sent += 1
            for position, index in enumerate(window[:sent]):
                outcome, healthy = self._answer(helper)
                helper.tasks += 1
                if not healthy and position > 0 and isinstance(outcome, RejectedInput) and outcome.reason == "parse_crashed":
                    return window[position:]  # perhaps killed between two items: this one is tried again, first in line
                results[index] = outcome
                if not healthy:
                    return window[position + 1 :]
            healthy = healthy and sent == len(window)  # a helper that could not take the whole window is gone
            return window[sent:]
        finally:
            self._release(helper, healthy)

    def _frame(self, request: ParseRequest) -> bytes:
        meta = pickle.dumps((request.received_at, request.source, request.raw_ref))
        return len(meta).to_bytes(4, "big") + meta + request.raw

    # -- one exchange ---------------------------------------------------------------------------------------
    def _answer(self, helper: _Helper) -> tuple[ParsedEmail | RejectedInput, bool]:
        """The helper's verdict on the item just sent, and whether the helper may parse another one."""
        deadline = time.monotonic() + self.options.timeout_seconds
        try:
            status_line, _, message_json = self._receive(helper, deadline).partition(b"\n")
            status = json.loads(status_line)
            if status["status"] == "ok":
                message = InboundMessage.from_json(message_json)
                blobs = {}
                for _ in range(int(status["blobs"])):
                    data = self._receive(helper, deadline)
                    blobs[sha256_hex(data)] = data
                return ParsedEmail(message=message, blobs=blobs), True
            return RejectedInput(str(status["reason"])[:100], str(status.get("detail", ""))), status["status"] == "rejected"
        except _Timeout:
            helper.kill()
            return RejectedInput("parse_timeout", f"no result within {self.options.timeout_seconds:g} s; the parse helper was killed"), False
        except (EOFError, OSError):
            return RejectedInput(*self._death(helper)), False
        except Exception as exc:  # noqa: BLE001 - an answer that breaks the contract (invalid message JSON, …)
            helper.kill()
            return RejectedInput("parse_error", describe(exc)), False

    def _receive(self, helper: _Helper, deadline: float) -> bytes:
        if not helper.conn.poll(max(0.0, deadline - time.monotonic())):
            raise _Timeout
        return helper.conn.recv_bytes(self._max_frame)

    def _death(self, helper: _Helper) -> tuple[str, str]:
        helper.conn.close()
        status = helper.exit_status()
        if status is None:
            helper.kill()
            return "parse_crashed", "the parse helper stopped answering and was killed"
        if status == EXIT_LOST:
            return "parse_crashed", "the parse helper ended; how was lost with its zygote"
        if status == EXIT_MEMORY:
            return "parse_memory", f"the parse helper ran out of memory (cap {self.options.memory_mb} MB)"
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            if -status == signal.SIGXCPU:
                return "parse_timeout", f"the parse helper exceeded its CPU time ({name})"
            return "parse_crashed", f"the parse helper was killed by {name} (the out-of-memory killer sends SIGKILL)"
        return "parse_crashed", f"the parse helper exited with status {status}"

    # -- helpers: start on demand, hand out one per caller, replace the dead -----------------------------------
    def _acquire(self) -> _Helper:
        helpers = self._helpers
        with helpers.changed:
            while True:
                if helpers.closed:
                    raise SinkError("the parse pool is closed")
                if helpers.idle:
                    return helpers.idle.pop()
                if len(helpers.live) + helpers.starting < self.options.workers:
                    helpers.starting += 1
                    break
                helpers.changed.wait()
        helper = None
        try:
            helper = self._start()
        finally:
            with helpers.changed:
                helpers.starting -= 1
                if helper is not None:
                    helpers.live.add(helper)
                helpers.changed.notify()
        return helper

    def _release(self, helper: _Helper, healthy: bool) -> None:
        helpers = self._helpers
        with helpers.changed:
            keep = healthy and not helpers.closed and helper.tasks < self.options.max_tasks_per_helper
            if keep:
                helpers.idle.append(helper)
            else:
                helpers.live.discard(helper)
            helpers.changed.notify()
        if not keep:
            helpers.retire(helper)
        helpers.reap()

    def _start(self) -> _Helper:
        parent, child = socket.socketpair()
        try:
            process, forked = self._launch(child)
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        helper = _Helper(process, Connection(parent.detach()))
        try:
            if not forked:  # a forked helper has the configuration from its zygote
                helper.conn.send_bytes(self._config)
            if helper.conn.poll(self.options.start_timeout_seconds) and helper.conn.recv_bytes(64) == b"ready":
                return helper
        except (EOFError, OSError):
            pass
        status = helper.kill()
        raise SinkError(f"a parse helper did not start (exit status {status}); see its stderr")

    def _launch(self, child: socket.socket) -> tuple["subprocess.Popen | _Forked", bool]:
        """A helper process serving ``child``'s other end: forked by the zygote where that works (a fresh
        interpreter imports the parser, ≈ 0.3 s of CPU; a fork is ready in milliseconds), else started afresh."""
        if _FORKING:
            for _ in range(2):  # a zygote found gone is replaced, once
                zygote = self._zygote()
                try:
                    return zygote.fork(child, self.options.start_timeout_seconds), True
                except OSError as exc:
                    if not zygote.gone:  # it could not fork now (a limit of processes or memory): retry later
                        raise SinkError(f"the parse zygote could not fork a helper: {exc}") from exc
            raise SinkError("the parse zygote ended twice in a row")
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", f"from intake.parse_pool import helper_main; helper_main({child.fileno()})"],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=_helper_env(),
            )
        except OSError as exc:
            raise SinkError(f"cannot start a parse helper: {exc}") from exc
        return process, False

    def _zygote(self) -> _Zygote:
        """The live zygote, started (or replaced) when there is none; SinkError when it cannot start."""
        helpers = self._helpers
        with helpers.zygote_lock:
            if helpers.closed:
                raise SinkError("the parse pool is closed")
            if helpers.zygote is not None and helpers.zygote.gone:
                helpers.zygote.close()
                helpers.zygote = None
            if helpers.zygote is None:
                helpers.zygote = _Zygote(self._config, _helper_env(), self.options.start_timeout_seconds)
            return helpers.zygote


def _helper_env() -> dict[str, str]:
    """The adapter's environment, with the project importable (the helpers import the parser by name)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


_FORKING = _forking_works()


# -- the helper process ---------------------------------------------------------------------------------------
def helper_main(fd: int) -> None:
    """Entry point of a helper started as a fresh interpreter: read the configuration, cap memory, then parse items until the socket closes."""
    _quiet_signals()
    conn = Connection(fd)
    config = pickle.loads(conn.recv_bytes())
    _serve_items(conn, _load_parser(config), config)


def _quiet_signals() -> None:
    import faulthandler  # noqa: PLC0415

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the adapter's to handle; it stops us
    faulthandler.enable()


def _load_parser(config: dict) -> ParseFunction:
    """The parse function named in the configuration, imported with everything it may import lazily."""
    import importlib  # noqa: PLC0415

    sys.path[:] = [*config["sys_path"], *(p for p in sys.path if p not in config["sys_path"])]
    module, _, name = config["parse"].partition(":")
    parse = importlib.import_module(module)
    for part in name.split("."):
        parse = getattr(parse, part)
    try:
        importlib.import_module("inscriptis")  # imported lazily by HTML-only mail: load it before the cap
    except ImportError:
        pass
    return parse  # type: ignore[return-value]


def _canary(parse: ParseFunction, config: dict) -> None:
    """Parse the simplest mail; a process that cannot is not ready (and no mail is blamed for it): it exits."""
    try:
        parse(_CANARY, received_at=datetime.now(timezone.utc), source="canary", raw_ref=None,
              limits=config["limits"], splitter=config["splitter"])
    except BaseException:  # noqa: BLE001
        os._exit(EXIT_NOT_READY)


def _serve_items(conn: Connection, parse: ParseFunction, config: dict) -> None:
    """Cap memory, prove the parser alive under the cap, then parse one item at a time until the socket closes."""
    import resource  # noqa: PLC0415

    if config["memory_bytes"] > 0:
        resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"], resource.RLIM_INFINITY))
    _canary(parse, config)
    conn.send_bytes(b"ready")
    while True:
        try:
            frame = conn.recv_bytes()
        except (EOFError, OSError):
            return
        except MemoryError:
            os._exit(EXIT_MEMORY)  # the raw item alone does not fit under the cap
        size = int.from_bytes(frame[:4], "big")
        header, raw = pickle.loads(frame[4 : 4 + size]), frame[4 + size :]
        del frame
        _limit_cpu(resource, config["cpu_seconds"])
        _serve(conn, parse, raw, header, config)
        del raw


# -- the zygote: one interpreter that imports the parser once and forks every helper ------------------------------
def zygote_main(fd: int) -> None:
    """Entry point of the zygote: import the parser once (and parse the canary, warming its caches), then fork a
    helper for each socket the adapter sends, report each helper's pid (with a pidfd, so that the adapter can
    signal exactly it) and, when it exits, its exit status. Ends when the adapter closes the control socket,
    after its helpers (each ends when its own socket closes; those that outstay ``_ZYGOTE_GRACE`` are killed)."""
    import gc  # noqa: PLC0415

    _quiet_signals()
    control = socket.socket(fileno=fd)
    config = pickle.loads(control.recv(_CONFIG_BYTES))
    parse = _load_parser(config)
    _canary(parse, config)  # uncapped here: the zygote parses nothing else, its helpers cap themselves
    gc.collect()
    gc.freeze()  # what every helper shares stays out of their collections, and its pages unwritten
    control.send(b"ready")
    children: dict[int, int] = {}  # pidfd → pid
    poller = select.poll()
    poller.register(control, select.POLLIN)
    while True:
        for ready, _ in poller.poll():
            if ready != control.fileno():
                pid = children.pop(ready)
                poller.unregister(ready)
                os.close(ready)
                code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                _tell(control, b"exit" + pid.to_bytes(4, "big") + code.to_bytes(4, "big", signed=True))
                continue
            try:
                request, fds, _, _ = socket.recv_fds(control, 64, 1)
            except OSError:
                request, fds = b"", []
            if not request:  # the adapter is done (or gone)
                _end_children(children)
                os._exit(0)
            if not fds:
                continue
            try:
                pid = os.fork()
            except OSError:
                os.close(fds[0])
                _tell(control, b"failed")
                continue
            if pid == 0:
                control.close()
                for pidfd in children:
                    os.close(pidfd)
                try:
                    _serve_items(Connection(fds[0]), parse, config)
                finally:
                    os._exit(0)
            os.close(fds[0])
            pidfd = os.pidfd_open(pid)
            children[pidfd] = pid
            poller.register(pidfd, select.POLLIN)
            try:
                socket.send_fds(control, [b"forked" + pid.to_bytes(4, "big")], [pidfd])
            except OSError:
                pass  # the adapter is gone: the next poll reads the end


def _tell(control: socket.socket, record: bytes) -> None:
    try:
        control.send(record)
    except OSError:
        pass  # the adapter is gone: the next poll reads the end


def _end_children(children: dict[int, int]) -> None:
    """Wait for the helpers to end (their sockets are closed too), kill those that outstay the grace, reap them all."""
    deadline = time.monotonic() + _ZYGOTE_GRACE
    for pidfd, pid in children.items():
        if not _readable(pidfd, deadline - time.monotonic()):
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(pidfd)


_RESERVE = [bytearray(1024 * 1024)]  # given back on MemoryError, so that the failure can still be reported


def _serve(conn: Connection, parse: ParseFunction, raw: bytes, header: tuple, config: dict) -> None:
    received_at, source, raw_ref = header
    try:
        try:
            parsed = parse(raw, received_at=received_at, source=source, raw_ref=raw_ref,
                           limits=config["limits"], splitter=config["splitter"])
            status = json.dumps({"status": "ok", "blobs": len(parsed.blobs)}).encode()
            frames = [status + b"\n" + parsed.message.to_json().encode(), *parsed.blobs.values()]
        except RejectedInput as exc:
            frames = [json.dumps({"status": "rejected", "reason": exc.reason, "detail": exc.detail}).encode()]
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - RecursionError and every parser bug: the item's failure
            frames = [json.dumps({"status": "failed", "reason": "parse_error", "detail": describe(exc)}).encode()]
        for frame in frames:
            conn.send_bytes(frame)
    except MemoryError:
        _RESERVE.clear()  # room to report the failure
        parsed = frames = None  # noqa: F841 - free what the parse held
        try:
            conn.send_bytes(b'{"status": "failed", "reason": "parse_memory", "detail": "MemoryError: the parse helper hit its memory cap"}')
        finally:
            os._exit(EXIT_MEMORY)


def _limit_cpu(resource: object, seconds: float) -> None:
    """SIGXCPU if this item uses far more CPU than the adapter waits for: a backstop should the adapter be gone."""
    usage = resource.getrusage(resource.RUSAGE_SELF)  # type: ignore[attr-defined]
    soft = int(usage.ru_utime + usage.ru_stime + 2 * seconds + 10)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))  # type: ignore[attr-defined]
