"""A real SMTP server for the tests (aiosmtpd on a loopback port) that keeps every message it accepts.

``hold_next(seconds)`` makes the server take the next message (it is in
``received`` at once) and then wait before answering ``250`` — the window in
which a sending worker can be killed after the send and before its record.
``refuse(address)`` answers ``550`` to that recipient; ``tempfail(n)`` answers ``451`` n times.
"""

from __future__ import annotations

import email
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


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
    def __init__(self, server: "SmtpServer") -> None:
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
        import asyncio  # noqa: PLC0415

        with self.server.lock:
            self.server.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content)))
            hold, self.server.hold = self.server.hold, 0.0
        if hold:
            await asyncio.sleep(hold)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused: set[str] = set()
        self.hold = 0.0
        self.tempfails = 0
        self.lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def hold_next(self, seconds: float) -> None:
        self.hold = seconds

    def tempfail(self, times: int = 1) -> None:
        """Answer the next ``times`` recipients with ``451`` (greylisting, a full queue)."""
        self.tempfails = times

    def refuse(self, address: str) -> None:
        self.refused.add(address.lower())

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"the SMTP server received {len(self.received)} message(s), not {count}")
