"""A real SMTP server for the tests (aiosmtpd's protocol on an asyncio loop of its own) that keeps every message it accepts.

It runs as a ``LocalServer`` (tests/servers/base.py); the ``smtp`` fixture starts it.
``received`` (the server's ``requests``) holds each accepted message, in order;
``wait_for(n)`` waits until n have arrived. ``hold_next(seconds)`` makes the server
take the next message (it is in ``received`` at once) and then wait before answering
``250`` — the window in which a sending worker can be killed after the send and before
its record. ``refuse(address)`` answers ``550`` to that recipient; ``tempfail(n)``
answers ``451`` n times.
"""

from __future__ import annotations

import asyncio
import email
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.smtp import SMTP

from tests.servers.base import LocalServer, Recorder, listening_socket


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=default)  # type: ignore[return-value]

    def header_lines(self) -> dict[str, str]:
        """The raw header lines as sent (unfolded, undecoded): name → value."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        lines: dict[str, str] = {}
        name = ""
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and name:
                lines[name] += line
            else:
                name, _, value = line.partition(":")
                lines[name] = value.lstrip(" ")
        return lines


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:  # noqa: N802
        if address.lower() in self.server.refused:
            return "550 5.1.1 mailbox unavailable"
        with self.server.lock:
            if self.server.tempfails:
                self.server.tempfails -= 1
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.server.lock:
            hold, self.server.hold = self.server.hold, 0.0
        self.server.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content)))
        if hold:
            await asyncio.sleep(hold)  # the slow peer being played; cancelled when the server stops
        return "250 Message accepted for delivery"


class SmtpServer(LocalServer):
    scheme = "smtp"

    def __init__(self) -> None:
        super().__init__()
        self.received: Recorder[Received] = self.requests
        self.refused: set[str] = set()
        self.hold = 0.0
        self.tempfails = 0
        self.lock = threading.Lock()
        self._socket = listening_socket()
        self._loop = asyncio.new_event_loop()

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def hold_next(self, seconds: float) -> None:
        self.hold = seconds

    def tempfail(self, times: int = 1) -> None:
        """Answer the next ``times`` recipients with ``451`` (greylisting, a full queue)."""
        self.tempfails = times

    def refuse(self, address: str) -> None:
        self.refused.add(address.lower())

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """Every message received, once there are at least ``count``; AssertionError after ``timeout``."""
        try:
            return self.received.wait_for(count, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"the SMTP server received {len(self.received)} message(s), not {count}") from None

    # -- LocalServer ------------------------------------------------------------------------------
    def _serve(self, listening: Callable[[], None]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        handler = _Handler(self)
        server = loop.run_until_complete(loop.create_server(
            lambda: SMTP(handler, hostname="127.0.0.1", decode_data=False, enable_SMTPUTF8=True), sock=self._socket))
        listening()
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(server.wait_closed())
            loop.close()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _close(self) -> None:
        self._socket.close()
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()
