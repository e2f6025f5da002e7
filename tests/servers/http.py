"""HTTP servers of the tests: ``http.server`` with a thread per request, every request recorded before it is handled."""

from __future__ import annotations

from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tests.servers.base import HOST, LocalServer


@dataclass(frozen=True)
class HttpRequest:
    """One request as it arrived (headers by name, the last one of a repeated name)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class RecordingHandler(BaseHTTPRequestHandler):
    """Reads the body (``self.body``) and records the request on its server before a ``do_*`` method runs."""

    server: _HTTPServer
    body: bytes = b""

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        self.server.owner.requests.append(HttpRequest(self.command, parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                                                      dict(self.headers.items()), self.body))
        return True

    def go_silent(self, seconds: float) -> None:
        """Say nothing for ``seconds`` (or until the server stops), then drop the connection unanswered."""
        self.server.owner.stopping.wait(seconds)
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(2)  # the work is done, but the caller never hears so
        except OSError:
            pass  # the caller gave up first (its timeout)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpServer


class HttpServer(LocalServer):
    """A ``LocalServer`` answering HTTP with ``handler`` (a ``RecordingHandler``); ``self`` is ``handler.server.owner``."""

    handler: ClassVar[type[RecordingHandler]]

    def __init__(self) -> None:
        super().__init__()
        self._httpd = _HTTPServer((HOST, 0), self.handler)
        self._httpd.owner = self

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def _serve(self, listening) -> None:  # noqa: ANN001
        listening()  # the socket listens since __init__: connections queue until serve_forever accepts them
        self._httpd.serve_forever(poll_interval=0.05)

    def _shutdown(self) -> None:
        self._httpd.shutdown()

    def _close(self) -> None:
        self._httpd.server_close()
