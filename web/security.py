"""What every page shares for safety: security headers, CSRF tokens, rate limits, server-side sessions.

- ``SecurityHeaders``: a strict Content-Security-Policy (scripts and styles from this origin only, no
  inline script, no framing, forms post only here) and the usual companions, on every response.
- CSRF: one random token per session (in the signed session cookie); every form carries it as
  ``csrf_token`` and every POST compares it in constant time. The JSON APIs take no cookies and need none.
- ``RateLimiter``: fixed-window counters in Redis (``INCR`` with an expiry), shared by every web process.
- ``Sessions``: a signed cookie names a session id that must also be alive in Redis, so signing out (or
  an expiry) ends it on the server, not only in the browser.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

import redis
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), interest-cohort=()",
    b"cross-origin-opener-policy": b"same-origin",
}


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers above (and no-store for signed-in pages) to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS.items() if k not in present]
                if not static and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Pure ASGI middleware: a request body larger than ``max_bytes`` is answered 413 before it is all read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await _too_large(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge()
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except _TooLarge:
            if not started:
                await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = b"request body too large"
    await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                                                         (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# -- CSRF ---------------------------------------------------------------------------------------
CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, given: object) -> bool:
    expected = request.session.get("csrf")
    return isinstance(expected, str) and isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode()[:200])


# -- rate limits ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: int


class RateLimiter:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def _key(self, scope: str, ident: str) -> str:
        digest = hmac.new(b"rate", ident.encode("utf-8", "replace"), "sha256").hexdigest()[:32]
        return f"{self.namespace}:web:rate:{scope}:{digest}"

    def hit(self, scope: str, ident: str, limit: int, window: int) -> Verdict:
        """Count one more in the window; allowed while the count stays within ``limit``."""
        key = self._key(scope, ident)
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
        return Verdict(count <= limit, count, max(int(ttl), 1))

    def over(self, scope: str, ident: str, limit: int) -> int:
        """Seconds to wait when ``ident`` already used up its ``limit`` (without counting), else 0."""
        key = self._key(scope, ident)
        count = int(self.client.get(key) or 0)
        return max(int(self.client.ttl(key)), 1) if count >= limit else 0

    def reset(self, scope: str, ident: str) -> None:
        self.client.delete(self._key(scope, ident))


# -- server-side sessions ------------------------------------------------------------------------------
class Sessions:
    def __init__(self, client: redis.Redis, namespace: str, lifetime_seconds: int) -> None:
        self.client = client
        self.namespace = namespace
        self.lifetime = lifetime_seconds

    def _key(self, sid: str) -> str:
        return f"{self.namespace}:web:session:{sid}"

    def start(self, request: Request, staff_key: str) -> None:
        """A fresh session (a new id and CSRF token: nothing from before sign-in survives)."""
        request.session.clear()
        sid = secrets.token_urlsafe(32)
        self.client.set(self._key(sid), staff_key, ex=self.lifetime)
        request.session.update({"sid": sid, "user": staff_key, "csrf": secrets.token_urlsafe(32)})

    def user(self, request: Request) -> str | None:
        sid, user = request.session.get("sid"), request.session.get("user")
        if not isinstance(sid, str) or not isinstance(user, str) or len(sid) > 100:
            return None
        alive = self.client.get(self._key(sid))
        return user if alive is not None and alive.decode("utf-8", "replace") == user else None

    def end(self, request: Request) -> None:
        sid = request.session.get("sid")
        if isinstance(sid, str) and len(sid) <= 100:
            self.client.delete(self._key(sid))
        request.session.clear()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
