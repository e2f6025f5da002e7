"""Local servers for the tests, one harness for all of them (tests/servers/base.py).

| module | server | speaks | fixture (tests/conftest.py) |
|---|---|---|---|
| ``slack`` | ``SlackServer`` | Slack's Web API | ``slack`` |
| ``slack_socket`` | ``SocketModeServer`` | Slack's Socket Mode WebSocket | ``slack_socket`` |
| ``x`` | ``XServer`` | the X API v2 | ``x`` |
| ``smtp`` | ``SmtpServer`` | SMTP (aiosmtpd) | ``smtp`` |
| ``asgi`` | ``AsgiServer`` / ``serve(app)`` | our web app under uvicorn | (``site`` in tests/dashboard) |

Only ``base`` is imported here: each server's module (and the library it needs) is
imported by the fixture that starts it.
"""

from tests.servers.base import HOST, LocalServer, Recorder, ServerDidNotStart, free_port, listening_socket

__all__ = ["HOST", "LocalServer", "Recorder", "ServerDidNotStart", "free_port", "listening_socket"]
