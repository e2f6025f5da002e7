"""The IMAP doorbell: a UDP port the mail server rings when mail arrives, so that the folder is read at once.

Dovecot tells an IDLE client of new mail 500 ms after it arrives: its mailbox watch waits a fixed
``NOTIFY_DELAY_MSECS`` before it reports (src/lib-storage/mailbox-watch.c; no setting changes it). Its
push-notification plugin, though, runs a script inside the delivery or APPEND itself:
``ops/dovecot/helpdesk-doorbell.lua`` sends one datagram, ``user<TAB>folder``, to ``HELPDESK_IMAP_DOORBELL``.
The watcher of that folder then leaves IDLE and syncs from its checkpoint, as it would have when IDLE spoke.

A datagram is a hint to look, never mail: nothing in it is read beyond whose folder to look at, so whoever can
reach the port can only make the adapter look sooner, and looks are bounded (``FolderWatcher`` looks at most
once per ``MIN_LOOK_INTERVAL`` for its bell; this thread reads at most ``MAX_PER_SECOND`` datagrams a second and
leaves the rest to the kernel to drop). A datagram lost, or never sent, costs only the wait it would have
saved: IDLE and polling still run. Bind it where only the mail server reaches it (loopback, or a firewall).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time

from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from intake.state import AdapterHealth

log = structlog.get_logger(__name__)

MAX_DATAGRAM = 512  # bytes read of a datagram: a user and a folder name (the script sends at most 401)
MAX_PER_SECOND = 1000  # datagrams read a second at most; a flood beyond it waits in (and overflows) the socket's buffer
MIN_LOOK_INTERVAL = 0.05  # seconds between two looks at a folder that its bell caused: at most 20 a second
MAX_USERS_WARNED = 10  # other users named in datagrams, each warned of once: then counted only
HEALTH_EVERY = 5.0  # seconds between two writes of the doorbell's health record (rings and ignored datagrams so far)


class Bell:
    """One folder watcher's bell: rung by the doorbell's thread, waited on beside the watcher's IMAP socket.

    A pipe whose read end a selector can watch; ringing writes a byte unless one is already waiting, so any
    number of rings before the watcher looks is one look. Once closed it neither rings nor reads: its
    descriptors' numbers may belong to another file by then.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self.closed = False

    def fileno(self) -> int:
        return self._read

    def ring(self) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                os.write(self._write, b"\0")
            except BlockingIOError:  # full: it has been rung already
                pass

    def clear(self) -> bool:
        """Forget the rings so far; whether there were any."""
        rung = False
        with self._lock:
            while not self.closed:
                try:
                    chunk = os.read(self._read, 4096)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                rung = True
        return rung

    def wait(self, timeout: float) -> bool:
        """Whether it rang within ``timeout`` seconds (the rings are left for ``clear``)."""
        if self.closed:
            return False
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000))

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            os.close(self._read)
            os.close(self._write)


class Doorbell:
    """The UDP port, and the bells of the account's folders it rings.

    ``user<TAB>folder`` rings that folder's bell when ``user`` is the account's (case aside). A datagram for another
    user of the same server (whose name Dovecot may spell otherwise than the login: warned of, once per name) or in
    any other form rings nothing.
    """

    def __init__(self, address: tuple[str, int], user: str) -> None:
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.socket.bind((host, port))
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.address = self.socket.getsockname()[:2]
        self.user = user.casefold()
        self.bells: dict[str, Bell] = {}
        self.rang = 0  # datagrams that rang a bell
        self.ignored = 0  # datagrams that rang nothing
        self.last_ignored = ""  # the user the last of them named (what the mail server calls the user, when misconfigured)
        self._warned: set[str] = set()

    def bell(self, folder: str) -> Bell:
        """The bell of ``folder`` (one per folder, made on first asking)."""
        key = _folder_key(folder)
        if key not in self.bells:
            self.bells[key] = Bell()
        return self.bells[key]

    def answer(self, datagram: bytes) -> bool:
        """Ring the bell ``datagram`` names; whether one rang."""
        user, tab, folder = datagram[:MAX_DATAGRAM].decode("utf-8", "replace").partition("\t")
        bell = self.bells.get(_folder_key(folder)) if tab and user.casefold() == self.user else None
        if bell is None:
            self.ignored += 1
            self.last_ignored = ascii(user[:100]) if tab else "(no user and folder)"
            if tab and user.casefold() != self.user and len(self._warned) < MAX_USERS_WARNED and user not in self._warned:
                self._warned.add(user)
                log.warning("imap doorbell rung for another user: ignored", user=ascii(user[:100]), expected=self.user,
                            hint="the mail server names users as it logs them in; set HELPDESK_IMAP_USER to that name")
            return False
        bell.ring()
        self.rang += 1
        return True

    def run(self, stop: threading.Event, health: AdapterHealth | None = None, record: str = "") -> None:
        """Until ``stop``: read datagrams (at most ``MAX_PER_SECOND``) and ring the bells they name; with ``health``, its
        ``record`` says when it last rang, or what it ignored (``helpdesk status``)."""
        log.info("imap doorbell listening", address=f"{self.address[0]}:{self.address[1]}")
        poller = select.poll()
        poller.register(self.socket.fileno(), select.POLLIN)
        window, read = time.monotonic(), 0
        told = (0, 0)  # (rang, ignored) as last written to the health record
        told_at = 0.0
        while not stop.is_set():
            if (self.rang, self.ignored) != told and time.monotonic() - told_at >= HEALTH_EVERY:
                told, told_at = (self.rang, self.ignored), time.monotonic()
                if health is not None:
                    self._tell(health, record, *told)
            if not poller.poll(500):
                continue
            while not stop.is_set():
                now = time.monotonic()
                if now - window >= 1.0:
                    window, read = now, 0
                if read >= MAX_PER_SECOND:
                    stop.wait(window + 1.0 - now)
                    break
                try:
                    datagram = self.socket.recv(MAX_DATAGRAM)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:  # an ICMP error reported on the socket: nothing to answer
                    continue
                read += 1
                self.answer(datagram)

    def _tell(self, health: AdapterHealth, record: str, rang: int, ignored: int) -> None:
        """A success per ring; an error while only datagrams that ring nothing come."""
        if ignored and not rang:
            health.error(record, f"{ignored} datagrams rang no folder of {self.user}; the last named {self.last_ignored}")
        else:
            health.success(record, f"rang {rang} times; ignored {ignored}")

    def close(self) -> None:
        self.socket.close()
        for bell in self.bells.values():
            bell.close()


def _folder_key(folder: str) -> str:
    # INBOX is case-insensitive in IMAP (RFC 3501 5.1); other names are compared as given
    return "INBOX" if folder.upper() == "INBOX" else folder
