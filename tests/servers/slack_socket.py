"""Slack's side of Socket Mode: a WebSocket server that says hello, sends envelopes and collects acknowledgements.

``apps.connections.open`` on the local Slack server hands out its URL (the
``slack_socket`` fixture wires the two together); envelopes have Slack's documented
shape (envelope_id, type, payload, accepts_response_payload). An envelope not
acknowledged is sent again on the next connection, as Slack does. Every reply the
app sends back is recorded in ``requests``.
"""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.servers.base import HOST, LocalServer


class SocketModeServer(LocalServer):
    scheme = "ws"

    def __init__(self) -> None:
        super().__init__()
        self.outgoing: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connections = 0
        self._ws = serve(self._handle, HOST, 0, compression=None)

    @property
    def port(self) -> int:
        return self._ws.socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"{super().url}/link/?ticket=test"

    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False) -> str:
        envelope_id = str(uuid.uuid4())
        self.outgoing.put({"envelope_id": envelope_id, "type": kind, "payload": payload,
                           "accepts_response_payload": accepts_response_payload, "retry_attempt": 0, "retry_reason": ""})
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        """The app's acknowledgement of one envelope, once it arrives; AssertionError after ``timeout``."""
        try:
            [reply] = self.requests.wait_for(where=lambda r: r.get("envelope_id") == envelope_id, timeout=timeout)[-1:]
        except AssertionError:
            raise AssertionError(f"envelope {envelope_id} not acknowledged within {timeout} s") from None
        return reply

    # -- LocalServer ------------------------------------------------------------------------------
    def _serve(self, listening: Callable[[], None]) -> None:
        listening()  # the socket listens since __init__
        self._ws.serve_forever()

    def _shutdown(self) -> None:
        self._ws.shutdown()

    def _close(self) -> None:
        self._ws.socket.close()

    def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"},
                            "debug_info": {"host": "local", "approximate_connection_time": 3600}}))
        pending: dict[str, dict[str, Any]] = {}
        try:
            while not self.stopping.is_set():
                try:
                    envelope = self.outgoing.get(timeout=0.05)
                    pending[envelope["envelope_id"]] = envelope
                    ws.send(json.dumps(envelope))
                except queue.Empty:
                    pass
                try:
                    reply = json.loads(ws.recv(timeout=0.05))
                except TimeoutError:
                    continue
                if "envelope_id" in reply:
                    pending.pop(reply["envelope_id"], None)
                    self.requests.append(reply)
        except ConnectionClosed:
            for envelope in pending.values():  # unacknowledged: sent again
                self.outgoing.put({**envelope, "retry_attempt": envelope["retry_attempt"] + 1, "retry_reason": "timeout"})
