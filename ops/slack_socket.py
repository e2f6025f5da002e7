"""Socket Mode: the same Slack traffic as ``/slack/events``, over a WebSocket the desk opens to Slack.

For desks that cannot expose a public URL. slack_sdk's built-in client opens
the connection (``apps.connections.open`` with the ``xapp-`` token), reconnects
when Slack rotates it, and hands us each envelope. Events and card actions are
enqueued for the workers exactly as over HTTP, and acknowledged only after
Redis has them — an envelope we fail to enqueue is not acknowledged, so Slack
sends it again. Slash commands are answered in the acknowledgement.

Items are not converted here: the workers turn events into messages, and
quarantine (dead-letter, with the reason) an event they cannot convert. While the connection is
up the adapter's health record ``slack-socket`` gets a ``running`` heartbeat,
so ``helpdesk status`` can tell when it is down.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from config.desk import load_desk
from config.errors import SettingsError
from intake.slack import enqueue
from intake.state import AdapterHealth
from ops.runtime import Runtime
from ops.slack_web import SlashCommands
from workers.desk.operations import Desk
from workers.outbound.slack import make_client

log = structlog.get_logger("helpdesk.slack")
KINDS = {"events_api": "event", "interactive": "interactive"}
ADAPTER = "slack-socket"


class SocketModeIntake:
    def __init__(self, runtime: Runtime) -> None:
        settings, slack = runtime.settings, runtime.settings.slack
        missing = slack.missing_for_intake()
        if missing:
            raise SettingsError(f"Socket Mode needs {' and '.join(missing)}")
        self.runtime = runtime
        self.heartbeat_seconds = settings.adapter_heartbeat_seconds
        self.health = AdapterHealth(runtime.broker.client, settings.redis_namespace)
        self.commands = SlashCommands(runtime.engine, Desk(load_desk(settings), settings.ticket_prefix), runtime)
        self.client = SocketModeClient(app_token=slack.app_token, web_client=make_client(slack.bot_token, slack.api_url))  # type: ignore[arg-type]
        self.client.socket_mode_request_listeners.append(self._on_request)

    def _on_request(self, client: SocketModeClient, request: SocketModeRequest) -> None:
        payload: dict[str, Any] | None = None
        try:
            if request.type in KINDS:
                enqueue(self.runtime.broker, KINDS[request.type], request.payload)
            elif request.type == "slash_commands" and isinstance(request.payload, dict):
                payload = self.commands.answer({k: str(v) for k, v in request.payload.items()})
        except Exception as exc:  # noqa: BLE001 - not acknowledged: Slack delivers the envelope again
            log.error("slack envelope not taken", type=request.type, error=f"{type(exc).__name__}: {exc}")
            self.health.error(ADAPTER, f"{type(exc).__name__}: {exc}")
            return
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))
        self.health.success(ADAPTER, request.type)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: slack_sdk keeps the connection (and reconnects); we heartbeat while it is up."""
        self.client.connect()
        self.health.success(ADAPTER, "connected")
        try:
            while True:
                if self.client.is_connected():
                    self.health.beat(ADAPTER)
                if stop.wait(self.heartbeat_seconds):
                    break
        finally:
            self.health.stopped(ADAPTER)
            self.client.close()
