"""Our own ASGI app (the web process: ``ops.web.build_app``) served by uvicorn on a real socket, as a ``LocalServer``.

``start()`` returns when uvicorn has finished its start-up (the app's lifespan has run
and the socket accepts): uvicorn's ``startup`` is extended to set the event the
harness waits on. Each request's method, path, query and headers are recorded in
``requests`` (bodies are the app's business and are not read here).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from tests.servers.base import LocalServer, listening_socket
from tests.servers.http import HttpRequest


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, started: Callable[[], None]) -> None:
        super().__init__(config)
        self._started = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._started()


class AsgiServer(LocalServer):
    def __init__(self, app: Any) -> None:  # noqa: ANN401 - any ASGI application
        super().__init__()
        self.app = app
        self._socket = listening_socket()
        self._uvicorn: _Uvicorn | None = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    async def _recording(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: ANN401
        if scope["type"] == "http":
            query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            self.requests.append(HttpRequest(scope["method"], scope["path"], query, headers, b""))
        await self.app(scope, receive, send)

    def _serve(self, listening: Callable[[], None]) -> None:
        config = uvicorn.Config(self._recording, interface="asgi3", log_level="error", access_log=False)
        self._uvicorn = _Uvicorn(config, started=listening)
        self._uvicorn.run(sockets=[self._socket])

    def _shutdown(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def _close(self) -> None:
        self._socket.close()


@contextmanager
def serve(app: Any) -> Iterator[str]:  # noqa: ANN401 - any ASGI application
    """``app`` on a free loopback port for the block; yields its base URL."""
    with AsgiServer(app) as server:
        yield server.url
