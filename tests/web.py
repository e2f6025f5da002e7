"""Moved: serving an ASGI app for tests is ``tests.servers.asgi.serve`` (the shared server harness, tests/servers).

Kept only so that test modules written before the move still import; new code imports from tests.servers.asgi.
"""

from tests.servers.asgi import serve

__all__ = ["serve"]
