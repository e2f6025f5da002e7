"""Slack's side of Socket Mode: a WebSocket server that says hello, sends envelopes and collects acknowledgements.

``apps.connections.open`` on the local Slack server hands out its URL; envelopes
have Slack's documented shape (envelope_id, type, payload, accepts_response_payload).
An envelope not acknowledged is sent again on the next connection, as Slack does.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


class SocketModeServer:
    def __init__(self) -> None:
        self.outgoing: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections = 0
        self._acked = threading.Condition()
        self.server = serve(self._handle, "127.0.0.1", 0, compression=None)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=test"

    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False) -> str:
        envelope_id = str(uuid.uuid4())
        self.outgoing.put({"envelope_id": envelope_id, "type": kind, "payload": payload,
                           "accepts_response_payload": accepts_response_payload, "retry_attempt": 0, "retry_reason": ""})
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        with self._acked:
            if not self._acked.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"envelope {envelope_id} not acknowledged within {timeout} s")
            return self.acks[envelope_id]

    def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0001"},
                            "debug_info": {"host": "local", "approximate_connection_time": 3600}}))
        pending: dict[str, dict[str, Any]] = {}
        try:
            while True:
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
                    with self._acked:
                        self.acks[reply["envelope_id"]] = reply
                        self._acked.notify_all()
        except ConnectionClosed:
            for envelope in pending.values():  # unacknowledged: sent again
                self.outgoing.put({**envelope, "retry_attempt": envelope["retry_attempt"] + 1, "retry_reason": "timeout"})

    def __enter__(self) -> "SocketModeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
