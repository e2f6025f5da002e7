"""The one way a test server runs: on a loopback port of its own, in a thread of the test process.

Every local stand-in for the outside world is a ``LocalServer``::

    LocalServer                      start / stop / context manager, port, url, requests, stopping
    ├── HttpServer                   http.server, one thread per request (tests/servers/http.py)
    │   ├── SlackServer              Slack's Web API (tests/servers/slack.py)
    │   └── XServer                  the X API v2 (tests/servers/x.py)
    ├── SocketModeServer             Slack's Socket Mode WebSocket (tests/servers/slack_socket.py)
    ├── SmtpServer                   SMTP, aiosmtpd on an asyncio loop (tests/servers/smtp.py)
    └── AsgiServer                   our own ASGI app under uvicorn (tests/servers/asgi.py)

The contract:

- A server binds its listening socket when it is made (port 0: the kernel picks a free
  port, so parallel test workers never race for one); ``port`` and ``url`` are known from then on.
- ``start()`` returns only once the serving thread has signalled that it accepts
  connections: it waits on an event, never sleeps. A server that cannot start raises
  ``ServerDidNotStart`` with the cause.
- ``stop()`` ends the serving thread and frees the port. It is idempotent and safe on a
  server that never started. Used as a context manager (``with SlackServer() as slack:``)
  a server is started on entry and stopped on exit, also when the test failed.
- ``stopping`` is set as soon as ``stop()`` begins: a handler that plays a silent peer
  waits on it rather than sleeping, so stopping is never held up by a simulated hang.
- ``requests`` records what arrived, in order (a ``Recorder``); a test reads it or waits on it.

The pytest fixtures that start these servers live in tests/conftest.py.
"""

from __future__ import annotations

import abc
import random
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, Self, TypeVar

HOST = "127.0.0.1"
T = TypeVar("T")


class ServerDidNotStart(RuntimeError):
    """A local server's thread did not signal that it accepts connections (the cause is chained when there is one)."""


def listening_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port and listening: connections queue from now on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


def free_port() -> int:
    """A loopback port nobody listens on at this moment.

    Only for servers in other processes (Dovecot, redis-server, PostgreSQL), which must be
    told a number, and for "nothing listens here" tests; a ``LocalServer`` binds port 0 itself.

    Never one of the kernel's ephemeral ports (the ones port 0 hands out): a client that keeps connecting to a
    server not yet started there — a worker waiting for its Redis — may be given that very port as its own source
    port, connect to itself, and hold it, so the server cannot bind it when it starts.
    """
    low, high = _ephemeral_ports()
    candidates = [port for port in range(20000, 32768) if not low <= port <= high] or list(range(10000, 20000))
    for port in random.sample(candidates, 200):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue  # taken
            return port
    raise RuntimeError("no free loopback port outside the ephemeral range")


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


class Recorder(Generic[T]):
    """What a server received, oldest first; safe to append to from server threads and to wait on from the test."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._changed = threading.Condition()

    def append(self, item: T) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    def snapshot(self) -> list[T]:
        with self._changed:
            return list(self._items)

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.snapshot())

    def __eq__(self, other: object) -> bool:
        """Equal to a list (or Recorder) of the same items: ``assert smtp.received == []``."""
        if isinstance(other, Recorder):
            other = other.snapshot()
        return self.snapshot() == other if isinstance(other, list) else NotImplemented

    __hash__ = None  # type: ignore[assignment] - mutable

    def __getitem__(self, index: int) -> T:
        with self._changed:
            return self._items[index]

    def wait_for(self, count: int = 1, *, where: Callable[[T], bool] | None = None, timeout: float = 20.0) -> list[T]:
        """The items (those ``where`` accepts, if given) once there are at least ``count``; AssertionError after ``timeout``."""

        def matching() -> list[T]:
            return [item for item in self._items if where is None or where(item)]

        with self._changed:
            if not self._changed.wait_for(lambda: len(matching()) >= count, timeout):
                raise AssertionError(f"{len(matching())} matching item(s) arrived within {timeout:g} s, not {count}")
            return matching()


class LocalServer(abc.ABC):
    """A server on ``HOST``:``port`` run by a thread of this process; see the module docstring for the contract."""

    scheme = "http"

    def __init__(self) -> None:
        self.requests: Recorder = Recorder()
        self.stopping = threading.Event()
        self._listening = threading.Event()
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- what a kind of server provides ---------------------------------------------------------
    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The port bound when the server was made."""

    @abc.abstractmethod
    def _serve(self, listening: Callable[[], None]) -> None:
        """Serve until ``_shutdown()``; call ``listening()`` once connections are accepted."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Make ``_serve`` return (called from the test's thread, only while the server runs)."""

    def _close(self) -> None:
        """Free what the server holds (its socket); called once, whether or not it ever ran."""

    # -- the common life cycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        if not self._listening.wait(timeout):
            self.stop()
            raise ServerDidNotStart(f"{type(self).__name__} was not accepting connections after {timeout:g} s")
        if self._failure is not None:
            self.stop()
            raise ServerDidNotStart(f"{type(self).__name__} failed to start: {self._failure!r}") from self._failure
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._shutdown()
            self._thread.join(timeout)
        self._close()

    def _run(self) -> None:
        try:
            self._serve(self._listening.set)
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it in the test's thread
            self._failure = exc
        finally:
            self._listening.set()  # start() must not wait out its timeout for a thread that already died

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
