"""A local stand-in for Slack's Web API: the methods we call, in their documented request and response shapes.

slack_sdk's WebClient talks to it over real HTTP (``base_url``); it runs as a
``LocalServer`` (tests/servers/base.py) and the ``slack`` fixture starts it. It keeps channels
and messages (with message metadata), answers GET and POST (form or JSON), checks
the bearer token, and can be told to answer the next calls of a method with a
rate limit (429 + Retry-After), an error, a 5xx, or — after carrying the call
out — no response at all (a lost response).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers.http import HttpServer, RecordingHandler

TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-token"


@dataclass
class Fault:
    kind: str  # ratelimit | error | server_error | drop | hang
    times: int
    value: Any = None


@dataclass
class FakeSlack:
    channels: dict[str, str] = field(default_factory=dict)  # name → id
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))  # channel id → messages
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    socket_url: str | None = None  # what apps.connections.open hands out (a SocketModeServer's url)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _clock: float = 0.0

    # -- test controls ------------------------------------------------------------------
    def channel(self, name: str) -> str:
        name = name.lstrip("#")
        with self._lock:
            if name not in self.channels:
                self.channels[name] = f"C{len(self.channels) + 1:08d}"
            return self.channels[name]

    def add_user(self, user_id: str, name: str, email: str | None = None) -> None:
        self.users[user_id] = {"id": user_id, "name": name.lower().replace(" ", "."), "real_name": name,
                               "profile": {"real_name": name, "display_name": name, **({"email": email} if email else {})}}

    def inject(self, method: str, kind: str, times: int = 1, value: Any = None) -> None:
        self.faults[method].append(Fault(kind, times, value))

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Top-level messages posted (oldest first), in one channel or all."""
        with self._lock:
            if channel is not None:
                return list(self.messages.get(self.channel(channel) if channel.startswith("#") else channel, []))
            return [m for ms in self.messages.values() for m in ms]

    def method_calls(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    # -- the API -------------------------------------------------------------------------
    def _ts(self) -> str:
        with self._lock:
            self._clock = max(self._clock + 0.000100, time.time())
            return f"{self._clock:.6f}"

    def _resolve(self, channel: str) -> str | None:
        if channel.startswith("#"):
            return self.channel(channel)
        if channel in self.channels.values() or channel.startswith(("C", "D", "G")):
            return channel
        return None

    def handle(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((method, args))
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(args)

    def api_auth_test(self, args: dict) -> dict:
        return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "helpdesk", "team_id": "T0001",
                "user_id": "UBOT", "bot_id": "BBOT"}

    def api_chat_postMessage(self, args: dict) -> dict:
        channel = self._resolve(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        message = {"type": "message", "user": "UBOT", "bot_id": "BBOT", "ts": self._ts(), "text": args.get("text", ""),
                   "blocks": _json(args.get("blocks")), "metadata": _json(args.get("metadata")), "channel": channel}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        with self._lock:
            self.messages[channel].append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def api_chat_update(self, args: dict) -> dict:
        channel = self._resolve(str(args.get("channel", "")))
        with self._lock:
            for message in self.messages.get(channel or "", []):
                if message["ts"] == args.get("ts"):
                    message.update(text=args.get("text", message["text"]), blocks=_json(args.get("blocks")) or message["blocks"],
                                   edited={"user": "UBOT", "ts": self._ts()})
                    return {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}
        return {"ok": False, "error": "message_not_found"}

    def api_chat_postEphemeral(self, args: dict) -> dict:
        return {"ok": True, "message_ts": self._ts()}

    def api_conversations_history(self, args: dict) -> dict:
        channel = self._resolve(str(args.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [dict(m) for m in reversed(self.messages.get(channel, [])) if float(m["ts"]) >= oldest and "thread_ts" not in m]
        if not with_metadata:
            for message in found:
                message.pop("metadata", None)
        limit = int(args.get("limit") or 100)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit, "response_metadata": {"next_cursor": ""}}

    def api_conversations_replies(self, args: dict) -> dict:
        channel = self._resolve(str(args.get("channel", "")))
        ts = args.get("ts")
        with self._lock:
            found = [m for m in self.messages.get(channel or "", []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"ok": True, "messages": found}

    def api_conversations_list(self, args: dict) -> dict:
        with self._lock:
            channels = [{"id": cid, "name": name, "is_channel": True} for name, cid in self.channels.items()]
        return {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}}

    def api_users_info(self, args: dict) -> dict:
        user = self.users.get(str(args.get("user")))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def api_apps_connections_open(self, args: dict) -> dict:
        return {"ok": True, "url": self.socket_url} if self.socket_url else {"ok": False, "error": "not_allowed_token_type"}

    def api_views_open(self, args: dict) -> dict:
        return {"ok": True, "view": {"id": "V0001", **(_json(args.get("view")) or {})}}


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _Handler(RecordingHandler):
    @property
    def fake(self) -> FakeSlack:
        return self.server.owner.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve(dict((k, v[0]) for k, v in parse_qs(urlsplit(self.path).query).items()))

    def do_POST(self) -> None:
        body = self.body.decode()
        if "json" in (self.headers.get("Content-Type") or ""):
            args = json.loads(body or "{}")
        else:
            args = {k: v[0] for k, v in parse_qs(body).items()}
        args.update({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
        self._serve(args)

    def _serve(self, args: dict[str, Any]) -> None:
        method = urlsplit(self.path).path.rsplit("/", 1)[-1]
        token = APP_TOKEN if method == "apps.connections.open" else TOKEN  # Socket Mode opens with the app-level token
        if self.headers.get("Authorization") != f"Bearer {token}":
            self._reply(200, {"ok": False, "error": "invalid_auth"})
            return
        fault = self._fault(method)
        if fault is not None and fault.kind == "ratelimit":
            self._reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.value or 1)})
            return
        if fault is not None and fault.kind == "server_error":
            self._reply(500, {"ok": False, "error": "internal_error"})
            return
        if fault is not None and fault.kind == "error":
            self._reply(200, {"ok": False, "error": fault.value})
            return
        result = self.fake.handle(method, args)
        if fault is not None and fault.kind == "drop":
            self.go_silent(0)
            return
        if fault is not None and fault.kind == "hang":  # done, then silence: the caller is still waiting when it dies
            self.go_silent(float(fault.value or 30))
            return
        self._reply(200, result)

    def _fault(self, method: str) -> Fault | None:
        queue = self.fake.faults.get(method)
        if not queue:
            return None
        with self.fake._lock:
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
        return fault

    def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class SlackServer(HttpServer):
    """A FakeSlack served on 127.0.0.1:<free port>; ``api_url`` is what WebClient(base_url=…) takes."""

    handler = _Handler

    def __init__(self) -> None:
        self.fake = FakeSlack()
        super().__init__()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"
