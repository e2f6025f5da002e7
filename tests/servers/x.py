"""A local stand-in for the X API v2: the endpoints we use, in their documented request and response shapes.

tweepy's real ``Client`` talks to it over HTTP (its session routed here by
``intake.x_api.RoutedSession``); it runs as a ``LocalServer`` (tests/servers/base.py)
and the ``x`` fixture starts it. It keeps users, tweets and DM events with
snowflake ids, and answers:

- ``GET /2/users/:id/mentions`` — newest first, ``since_id``, ``max_results``,
  ``pagination_token``; only the newest 800 mentions are reachable;
- ``GET /2/users/:id/tweets`` — the account's own tweets (``start_time``, paging);
- ``GET /2/dm_events``, ``/2/dm_conversations/:id/dm_events``,
  ``/2/dm_conversations/with/:participant_id/dm_events`` — newest first, the last 30 days;
- ``POST /2/tweets`` (``reply.in_reply_to_tweet_id``; 280 weighted characters;
  duplicate content refused with 403) and ``POST /2/dm_conversations/…/messages``.

Bodies are ``{"data", "includes", "meta"}`` with ``result_count``,
``newest_id``, ``oldest_id`` and ``next_token``; the fields returned are the
ones asked for (``tweet.fields``, ``dm_event.fields``, ``user.fields``,
``expansions``). Every answer carries ``x-rate-limit-limit/-remaining/-reset``.
App-only calls need the bearer token; DM and posting calls need OAuth 1.0a user
context, whose HMAC-SHA1 signature is verified against the URL actually called.

Faults, injected per endpoint for the next N calls (after ``after`` calls
answered normally): ``ratelimit`` (429 with reset headers), ``last_call``
(answers, but says ``remaining: 0``), ``server_error`` (503), ``drop`` (does
the work, closes the connection without an answer), ``hang`` (does the work,
then stays silent for ``value`` seconds) and ``malformed`` (answers 200 with
``value`` as the body, whatever its shape).
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from tests.servers.http import HttpServer, RecordingHandler

ACCOUNT_ID = "1450000000000000001"
ACCOUNT_USERNAME = "osdshelp"
ANA, BEN = "2001", "2002"  # the enquirers of the `x` fixture
BEARER_TOKEN = "x-test-bearer"
CONSUMER_KEY, CONSUMER_SECRET = "x-consumer-key", "x-consumer-secret"
ACCESS_TOKEN, ACCESS_TOKEN_SECRET = "1450000000000000001-x-access-token", "x-access-secret"
EPOCH_MS = 1288834974657
MENTIONS_REACHABLE = 800
TIMELINE_REACHABLE = 3200
DM_DAYS = 30
WINDOW_SECONDS = 900
LIMITS = {"mentions": 180, "user_tweets": 900, "dm_events": 300, "create_tweet": 100, "create_dm": 200}
DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_DM_FIELDS = ("id", "event_type", "text")

ROUTES = [
    ("GET", re.compile(r"^/2/users/(?P<id>\d+)/mentions$"), "mentions"),
    ("GET", re.compile(r"^/2/users/(?P<id>\d+)/tweets$"), "user_tweets"),
    ("GET", re.compile(r"^/2/dm_events$"), "dm_events"),
    ("GET", re.compile(r"^/2/dm_conversations/with/(?P<participant>\d+)/dm_events$"), "dm_events"),
    ("GET", re.compile(r"^/2/dm_conversations/(?P<conversation>[\d-]+)/dm_events$"), "dm_events"),
    ("POST", re.compile(r"^/2/tweets$"), "create_tweet"),
    ("POST", re.compile(r"^/2/dm_conversations/with/(?P<participant>\d+)/messages$"), "create_dm"),
    ("POST", re.compile(r"^/2/dm_conversations/(?P<conversation>[\d-]+)/messages$"), "create_dm"),
]
USER_CONTEXT_ONLY = {"dm_events", "create_tweet", "create_dm"}


@dataclass
class Fault:
    kind: str  # ratelimit | last_call | server_error | drop | hang | malformed
    times: int
    value: Any = None
    after: int = 0  # calls to answer normally before this fault applies


class Answer(Exception):
    """An HTTP answer other than success, raised from deep inside a handler."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def problem(status: int, title: str, detail: str) -> Answer:
    """X's problem-details error body."""
    return Answer(status, {"title": title, "detail": detail, "type": "about:blank", "status": status})


def weighted_length(text: str) -> int:
    """twitter-text's count: most Latin and punctuation weigh 1, other characters 2, each link 23."""
    text = unicodedata.normalize("NFC", text)
    links = re.findall(r"https?://\S+", text)
    text = re.sub(r"https?://\S+", "", text)
    light = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
    return 23 * len(links) + sum(1 if any(a <= ord(ch) <= b for a, b in light) else 2 for ch in text)


def dm_conversation(a: str, b: str) -> str:
    low, high = sorted((int(a), int(b)))
    return f"{low}-{high}"


@dataclass
class FakeX:
    account_id: str = ACCOUNT_ID
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    tweets: dict[int, dict[str, Any]] = field(default_factory=dict)
    dm_events: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)  # endpoint → (reset at, calls used)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _last_id: int = 0
    _sequence: int = 0

    def __post_init__(self) -> None:
        self.add_user(self.account_id, ACCOUNT_USERNAME, "OSDS Helpdesk")

    # -- test controls -------------------------------------------------------------------
    def add_user(self, user_id: str, username: str, name: str) -> str:
        self.users[user_id] = {"id": user_id, "username": username, "name": name}
        return user_id

    def new_id(self, at: float | None = None) -> int:
        """A snowflake: milliseconds since X's epoch in the top bits, so ids grow with time (``at`` backdates one)."""
        with self._lock:
            stamp = (int((at if at is not None else time.time()) * 1000) - EPOCH_MS) << 22
            self._sequence += 1
            if at is not None:
                return stamp | (self._sequence & 0x3FFFFF)
            self._last_id = max(self._last_id + 1, stamp)
            return self._last_id

    def tweet(self, author: str, text: str, *, reply_to: str | None = None, retweet_of: str | None = None,
              at: float | None = None) -> str:
        with self._lock:
            tweet_id = self.new_id(at)
            parent = self.tweets.get(int(reply_to)) if reply_to else None
            refs = []
            if parent is not None:
                refs.append({"type": "replied_to", "id": parent["id"]})
            if retweet_of is not None:
                refs.append({"type": "retweeted", "id": retweet_of})
            self.tweets[tweet_id] = {
                "id": str(tweet_id), "text": text, "author_id": author, "edit_history_tweet_ids": [str(tweet_id)],
                "conversation_id": parent["conversation_id"] if parent is not None else str(tweet_id),
                "created_at": _iso(tweet_id), "lang": "en",
                **({"in_reply_to_user_id": parent["author_id"]} if parent is not None else {}),
                **({"referenced_tweets": refs} if refs else {}),
            }
            return str(tweet_id)

    def mention(self, author: str, text: str, **kwargs: Any) -> str:
        """A tweet by ``author`` that mentions the helpdesk account (the handle is put in front when missing)."""
        if f"@{ACCOUNT_USERNAME}" not in text.lower():
            text = f"@{ACCOUNT_USERNAME} {text}"
        return self.tweet(author, text, **kwargs)

    def retweet(self, author: str, original: str) -> str:
        source = self.tweets[int(original)]
        handle = self.users[source["author_id"]]["username"]
        return self.tweet(author, f"RT @{handle}: {source['text']}"[:280], retweet_of=original)

    def dm(self, sender: str, text: str, *, to: str | None = None, at: float | None = None) -> str:
        """A DM event from ``sender`` to ``to`` (default: between the enquirer and the helpdesk account)."""
        with self._lock:
            other = to or self.account_id
            event_id = self.new_id(at)
            conversation = dm_conversation(sender, other)
            self.dm_events[event_id] = {
                "id": str(event_id), "event_type": "MessageCreate", "text": text, "sender_id": sender,
                "dm_conversation_id": conversation, "participant_ids": [sender, other], "created_at": _iso(event_id),
            }
            return str(event_id)

    def inject(self, endpoint: str, kind: str, times: int = 1, value: Any = None, *, after: int = 0) -> None:
        with self._lock:
            self.faults[endpoint].append(Fault(kind, times, value, after))

    def sent_tweets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [t for _, t in sorted(self.tweets.items()) if t["author_id"] == self.account_id]

    def sent_dms(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for _, e in sorted(self.dm_events.items()) if e["sender_id"] == self.account_id]

    def endpoint_calls(self, endpoint: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["endpoint"] == endpoint]

    # -- the API -------------------------------------------------------------------------
    def handle(self, endpoint: str, args: dict[str, str], params: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            return getattr(self, f"api_{endpoint}")(args, params, body)

    def api_mentions(self, args: dict[str, str], params: dict[str, str], _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if args["id"] not in self.users:
            raise problem(404, "Not Found Error", f"Could not find user with id: [{args['id']}].")
        handle = f"@{self.users[args['id']]['username']}"
        mentions = sorted((t for t in self.tweets.values() if handle in t["text"].lower()), key=lambda t: -int(t["id"]))
        return 200, self._tweet_page(mentions[:MENTIONS_REACHABLE], params)

    def api_user_tweets(self, args: dict[str, str], params: dict[str, str], _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        own = sorted((t for t in self.tweets.values() if t["author_id"] == args["id"]), key=lambda t: -int(t["id"]))[:TIMELINE_REACHABLE]
        if "start_time" in params:
            start = datetime.fromisoformat(params["start_time"].replace("Z", "+00:00"))
            own = [t for t in own if datetime.fromisoformat(t["created_at"].replace("Z", "+00:00")) >= start]
        return 200, self._tweet_page(own, params)

    def _tweet_page(self, tweets: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
        if "since_id" in params:
            tweets = [t for t in tweets if int(t["id"]) > int(params["since_id"])]
        page, next_token = _paginate(tweets, params, default=10, low=5)
        fields = {*DEFAULT_TWEET_FIELDS, *_list(params.get("tweet.fields"))}
        data = [{k: v for k, v in t.items() if k in fields} for t in page]
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            body["data"] = data
            body["meta"].update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
            if "author_id" in _list(params.get("expansions")):
                body["includes"] = {"users": self._users({t["author_id"] for t in page}, params)}
        if next_token:
            body["meta"]["next_token"] = next_token
        return body

    def api_dm_events(self, args: dict[str, str], params: dict[str, str], _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        cutoff = time.time() - DM_DAYS * 86400
        conversation = args.get("conversation") or (dm_conversation(self.account_id, args["participant"]) if "participant" in args else None)
        events = sorted((e for e in self.dm_events.values() if self.account_id in e["participant_ids"]
                         and _stamp(int(e["id"])) >= cutoff and conversation in (None, e["dm_conversation_id"])),
                        key=lambda e: -int(e["id"]))
        if params.get("event_types"):
            events = [e for e in events if e["event_type"] in _list(params["event_types"])]
        page, next_token = _paginate(events, params, default=100, low=1)
        fields = {*DEFAULT_DM_FIELDS, *_list(params.get("dm_event.fields"))}
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            body["data"] = [{k: v for k, v in e.items() if k in fields} for e in page]
            if "sender_id" in _list(params.get("expansions")):
                body["includes"] = {"users": self._users({e["sender_id"] for e in page}, params)}
        if next_token:
            body["meta"]["next_token"] = next_token
        return 200, body

    def api_create_tweet(self, _args: dict[str, str], _params: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = body.get("text") or ""
        if not text or weighted_length(text) > 280:
            raise Answer(400, {"errors": [{"message": f"text is empty or longer than 280 ({weighted_length(text)})"}],
                               "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if reply_to is not None and int(reply_to) not in self.tweets:
            raise problem(403, "Forbidden", "You attempted to reply to a Tweet that is deleted or not visible to you.")
        if any(t["author_id"] == self.account_id and t["text"] == text for t in self.tweets.values()):
            raise problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        tweet_id = self.tweet(self.account_id, text, reply_to=reply_to)
        return 201, {"data": {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}}

    def api_create_dm(self, args: dict[str, str], _params: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = body.get("text") or ""
        if not text or len(text) > 10_000:
            raise problem(400, "Invalid Request", "text is empty or longer than 10000 characters")
        if "participant" in args:
            other = args["participant"]
        else:
            members = args["conversation"].split("-")
            if self.account_id not in members:
                raise problem(403, "Forbidden", "You are not a participant of this conversation.")
            other = next((m for m in members if m != self.account_id), self.account_id)
        if other not in self.users:
            raise problem(403, "Forbidden", "You cannot send messages to this user.")
        event_id = self.dm(self.account_id, text, to=other)
        return 201, {"data": {"dm_conversation_id": dm_conversation(self.account_id, other), "dm_event_id": event_id}}

    def _users(self, ids: set[str], params: dict[str, str]) -> list[dict[str, str]]:
        fields = {"id", "name", "username", *_list(params.get("user.fields"))}
        return [{k: v for k, v in self.users[i].items() if k in fields} for i in sorted(ids) if i in self.users]

    # -- rate limits -----------------------------------------------------------------------
    def rate_headers(self, endpoint: str, exhausted_for: float | None = None) -> dict[str, str]:
        with self._lock:
            now = time.time()
            reset, used = self.windows.get(endpoint, (0.0, 0))
            if now >= reset:
                reset, used = now + WINDOW_SECONDS, 0
            used += 1
            if exhausted_for is not None:
                reset, used = now + exhausted_for, LIMITS[endpoint]
            self.windows[endpoint] = (reset, used)
            limit = LIMITS[endpoint]
            return {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(max(0, limit - used)),
                    "x-rate-limit-reset": str(int(reset))}

    def take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(endpoint)
            if not queue:
                return None
            fault = queue[0]
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                queue.pop(0)
            return fault


def _stamp(item_id: int) -> float:
    return ((item_id >> 22) + EPOCH_MS) / 1000


def _iso(item_id: int) -> str:
    return datetime.fromtimestamp(_stamp(item_id), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _list(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _paginate(items: list[Any], params: dict[str, str], *, default: int, low: int) -> tuple[list[Any], str | None]:
    size = int(params.get("max_results", default))
    if not low <= size <= 100:
        raise problem(400, "Invalid Request", f"max_results must be between {low} and 100")
    token = params.get("pagination_token")
    start = int(token.removeprefix("page-")) if token else 0
    page = items[start:start + size]
    return page, (f"page-{start + size}" if start + size < len(items) else None)


class _Handler(RecordingHandler):
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeX:
        return self.server.owner.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve("GET", {})

    def do_POST(self) -> None:
        self._serve("POST", json.loads(self.body or b"{}"))

    def _serve(self, method: str, body: dict[str, Any]) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        endpoint, args = self._route(method, parts.path)
        if endpoint is None:
            self._reply(404, {"title": "Not Found", "detail": f"no route {method} {parts.path}", "type": "about:blank", "status": 404}, {})
            return
        auth = self._auth(method, endpoint)
        with self.fake._lock:
            self.fake.calls.append({"endpoint": endpoint, "method": method, "path": parts.path, "params": params, "json": body,
                                    "auth": auth, "at": time.time()})
        if auth is None:
            self._reply(401, {"title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank", "status": 401}, {})
            return
        if auth == "app" and endpoint in USER_CONTEXT_ONLY:
            self._reply(403, {"title": "Unsupported Authentication", "type": "https://api.twitter.com/2/problems/unsupported-authentication",
                              "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.", "status": 403}, {})
            return
        fault = self.fake.take_fault(endpoint)
        if fault is not None and fault.kind == "ratelimit":
            headers = self.fake.rate_headers(endpoint, exhausted_for=float(fault.value or 60))
            self._reply(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}, headers)
            return
        if fault is not None and fault.kind == "malformed":
            self._reply(200, fault.value, self.fake.rate_headers(endpoint))
            return
        if fault is not None and fault.kind == "server_error":
            self._reply(503, {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503},
                        self.fake.rate_headers(endpoint))
            return
        try:
            status, payload = self.fake.handle(endpoint, args, params, body)
        except Answer as answer:
            self._reply(answer.status, answer.body, {**self.fake.rate_headers(endpoint), **answer.headers})
            return
        if fault is not None and fault.kind == "drop":
            self.go_silent(0)
            return
        if fault is not None and fault.kind == "hang":  # done, then silence: the caller is still waiting when it dies (or times out)
            self.go_silent(float(fault.value or 30))
            return
        exhausted = float(fault.value or 60) if fault is not None and fault.kind == "last_call" else None
        self._reply(status, payload, self.fake.rate_headers(endpoint, exhausted_for=exhausted))

    def _route(self, method: str, path: str) -> tuple[str | None, dict[str, str]]:
        for verb, pattern, endpoint in ROUTES:
            match = pattern.match(path)
            if verb == method and match is not None:
                return endpoint, match.groupdict()
        return None, {}

    def _auth(self, method: str, endpoint: str) -> str | None:
        """"app" for the bearer token, "user" for a valid OAuth 1.0a signature of the helpdesk account, else None."""
        header = self.headers.get("Authorization") or ""
        if header == f"Bearer {BEARER_TOKEN}":
            return "app"
        if not header.startswith("OAuth "):
            return None
        fields = {k: unquote(v) for k, v in re.findall(r'(\w+)="([^"]*)"', header)}
        if fields.get("oauth_consumer_key") != CONSUMER_KEY or fields.get("oauth_token") != ACCESS_TOKEN:
            return None
        uri = f"http://{self.headers.get('Host')}{self.path}"
        request = OAuthRequest(uri, http_method=method, headers={"Authorization": header})
        request.params = oauth_signature.collect_parameters(uri_query=urlsplit(uri).query, headers=request.headers,
                                                            exclude_oauth_signature=True)
        request.signature = fields.get("oauth_signature", "")
        return "user" if oauth_signature.verify_hmac_sha1(request, CONSUMER_SECRET, ACCESS_TOKEN_SECRET) else None

    def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class XServer(HttpServer):
    """A FakeX served on 127.0.0.1:<free port>; ``url`` is what HELPDESK_X_API_URL takes."""

    handler = _Handler

    def __init__(self) -> None:
        self.fake = FakeX()
        super().__init__()
